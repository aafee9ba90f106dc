# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Logistic regression vs fine-tuning vs training from scratch (Figures 6, 7, 17, 18)
#
# Sections 4.2, 4.4 and 4.5, Appendices E and G; at the end, settings studies (Section 4.1,
# Appendix C: Figures 3, 4, 5 generalised). Settings are compared only within one source:
# each figure is drawn for the paper's Table 6 and, beside it, for the store's results (when
# the store has the settings it needs); titles say which.

# %%
import itertools
import os
import warnings

from IPython.display import Markdown, display

from featurestore.checkpoints.families import report_studies
from probes.analysis import figures as F
from probes.analysis import report_data as R
from probes.analysis import tables as T

# %%
# timm (imported for the built-in study's list of recipes) pulls in tqdm.auto, which warns in a
# kernel without ipywidgets; the report has no progress bars to show
warnings.filterwarnings("ignore", message="IProgress not found")

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")
# A settings-study file (TOML/JSON) beside the built-in studies; `featurestore report --study`
STUDY_FILE = os.environ.get("FEATURESTORE_STUDY") or None

# %%
rt = T.results_tables(STORE_URL)
by_source = rt.by_source()
display(Markdown(f"Store: `{STORE_URL}`. Sources: " + "; ".join(
    f"**{src}**: " + ", ".join(T.setting_label(s) for s in tabs)
    for src, tabs in by_source.items())))

# %% [markdown]
# ## Figure 6: accuracy per dataset and setting
#
# Bars: mean accuracy across models, with its standard error across models. Points: models.
# Dashed lines (paper panel): the previous state of the art (Table 4), where transcribed.

# %%
sota = R.previous_sota()
for src, tabs in by_source.items():
    F.show(F.fig_settings_bars(
        T.settings_summary(tabs), tabs, f"Figure 6: settings compared per dataset ({src})",
        previous_sota=sota if src == "paper" else None,
    ))

# %% [markdown]
# ## Figure 7: fine-tuning vs training from random initialization
#
# Each point is a model on one dataset; above the dashed line, fine-tuning wins.

# %%
for src, tabs in by_source.items():
    if {"finetune", "scratch"} <= set(tabs):
        F.show(F.fig_setting_scatter_by_dataset(
            tabs["scratch"], tabs["finetune"], "scratch", "finetune",
            f"Figure 7: fine-tuned vs from scratch ({src})",
        ))
    else:
        display(Markdown(f"Figure 7 ({src}): no fine-tune and from-scratch results to pair."))

# %% [markdown]
# ## Figure 17: every pair of settings

# %%
for src, tabs in by_source.items():
    pairs = list(itertools.combinations(tabs, 2))
    F.show(F.fig_setting_pairs(tabs, pairs, f"Figure 17: pairs of settings ({src})"))

# %% [markdown]
# ## Figure 18: SVM and logistic regression with augmentation (store)
#
# Appendix G: the paper prints no table for these settings, so they come from the store alone.
# Top: SVM; bottom: logistic regression with data augmentation. Per dataset against ImageNet
# top-1 (A, E), against logistic regression without augmentation (C, G) and fine-tuning (D, H).

# %%
store = by_source.get("store", {})
drawn = False
for setting in ("svm", "logreg_aug"):
    if setting not in store:
        continue
    drawn = True
    F.show(F.fig_transfer_vs_imagenet(
        store[setting], rt.top1["store"],
        f"Figure 18: {T.setting_label(setting)} vs ImageNet top-1 (store)"))
    pairs = [(a, b) for a, b in (("logreg", setting), (setting, "finetune"))
             if a in store and b in store]
    F.show(F.fig_setting_pairs(store, pairs,
                               f"Figure 18: {T.setting_label(setting)} vs other settings (store)"))
if not drawn:
    display(Markdown("The store has no SVM or augmented logistic-regression results "
                     "(`featurestore probe --solver svm`, `featurestore logreg-aug`)."))

# %% [markdown]
# ## How often one setting beats another (Sections 4.2, 4.5)
#
# Counts over (model, dataset) cells, and per dataset the Wilcoxon signed-rank test across
# models on log odds. The paper: fine-tuning beats logistic regression in 179 of 192 cells
# (significant on every dataset but Caltech-101) and training from scratch in 189 of 192.

# %%
for src, tabs in by_source.items():
    for better, worse in [("finetune", "logreg"), ("finetune", "scratch"), ("logreg", "svm")]:
        if better not in tabs or worse not in tabs:
            continue
        cmp = T.setting_comparison(tabs[better], tabs[worse])
        display(Markdown(
            f"({src}) **{T.setting_label(better)} > {T.setting_label(worse)}** in "
            f"{cmp['a_better']} of {cmp['pairs']} cells ({cmp['ties']} ties)."
        ))
        if cmp["wilcoxon"] is not None:
            display(cmp["wilcoxon"])

# %% [markdown]
# ## Settings studies: training recipes and transfer (Figures 3, 5, 12, 14, 15 generalised)
#
# Section 4.1 and Appendix C: the paper retrains one architecture with and without label
# smoothing, dropout, auxiliary heads and weight decay, and finds that the settings that help
# ImageNet hurt the penultimate-layer features. A *settings study* is any named family of
# checkpoints of one architecture that differ only in their training recipe: the built-in
# `resnet50_recipes` (timm's ResNet-50 recipes: `resnet50.a1_in1k`, `.a2_in1k`, `.a3_in1k`,
# `.tv_in1k`, `.tv2_in1k`, ...) applies whenever its members are in the store, and a study file
# adds your own (`featurestore report --study FILE`). Per study: each dataset's log odds per
# recipe and the mean over the datasets every recipe has (Morey standard errors), ImageNet
# top-1 in the inset, for logistic regression and fine-tuning; then Figure 4's t-SNE per recipe.
# The data is `data/settings_study.csv`.

# %%
studies = report_studies(STUDY_FILE)
study_frame = T.settings_studies_frame(rt.results, studies)
if study_frame.empty:
    display(Markdown(
        "No settings study has two or more members with results in the store (studies looked "
        "for: " + ", ".join(f"`{n}`" for n in studies) + "). Extract and probe a study's "
        "members, e.g. `featurestore extract --ckpt resnet50.a1_in1k,resnet50.tv_in1k ...`."))
for name, frame in study_frame.groupby("study", sort=False):
    study = studies[str(name)]
    summary = T.settings_study_summary(frame)
    display(Markdown(f"### Settings study `{name}` ({study.arch}; source: store)\n\n"
                     + (study.description or "")))
    F.show(F.fig_settings_study(frame, summary, f"Settings study {name}: transfer per recipe "
                                "(store)"))
    display(summary)
    tsne_dataset, tsne = T.study_tsne(STORE_URL, study)
    if tsne:
        F.show(F.fig_tsne(tsne, f"Figure 4 per recipe ({name}): t-SNE of "
                                f"{T.dataset_label(str(tsne_dataset))} (store)"))
    else:
        display(Markdown(f"No dataset has features of two or more `{name}` recipes, so no "
                         "t-SNE per recipe."))

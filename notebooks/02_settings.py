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
# # Logistic regression vs fine-tuning vs training from scratch (Figures 6, 7, 17)
#
# Sections 4.2 and 4.5. Settings are compared only within one source: the store's results when
# it has at least two settings, otherwise the paper's Table 6.

# %%
import itertools
import os

from IPython.display import Markdown, display

from probes.analysis import figures as F
from probes.analysis import tables as T

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")

# %%
rt = T.results_tables(STORE_URL)
tabs, source = rt.comparable(list(rt.tables))
display(Markdown(f"Store: `{STORE_URL}`. Settings compared here come from the **{source}**: "
                 + ", ".join(T.setting_label(s) for s in tabs) + "."))

# %% [markdown]
# ## Figure 6: accuracy per dataset and setting
#
# Bars: mean accuracy across models, with its standard error across models. Points: models.

# %%
F.show(F.fig_settings_bars(
    T.settings_summary(tabs), tabs, f"Figure 6: settings compared per dataset ({source})"
))

# %% [markdown]
# ## Figure 7: fine-tuning vs training from random initialization
#
# Each point is a model on one dataset; above the dashed line, fine-tuning wins.

# %%
if {"finetune", "scratch"} <= set(tabs):
    F.show(F.fig_setting_scatter_by_dataset(
        tabs["scratch"], tabs["finetune"], "scratch", "finetune",
        f"Figure 7: fine-tuned vs from scratch ({source})",
    ))
else:
    F.show(F.empty_figure(
        "Figure 7: fine-tuned vs from scratch",
        f"the {source} has no fine-tune and from-scratch results to pair",
    ))

# %% [markdown]
# ## Figure 17: every pair of settings

# %%
pairs = list(itertools.combinations(tabs, 2))
F.show(F.fig_setting_pairs(tabs, pairs, f"Figure 17: pairs of settings ({source})"))

# %% [markdown]
# ## How often one setting beats another (Sections 4.2, 4.5)
#
# Counts over (model, dataset) cells, and per dataset the Wilcoxon signed-rank test across
# models on log odds. The paper: fine-tuning beats logistic regression in 179 of 192 cells
# (significant on every dataset but Caltech-101) and training from scratch in 189 of 192.

# %%
for better, worse in [("finetune", "logreg"), ("finetune", "scratch"), ("logreg", "svm")]:
    if better not in tabs or worse not in tabs:
        continue
    cmp = T.setting_comparison(tabs[better], tabs[worse])
    display(Markdown(
        f"**{T.setting_label(better)} > {T.setting_label(worse)}** in {cmp['a_better']} of "
        f"{cmp['pairs']} cells ({cmp['ties']} ties)."
    ))
    if cmp["wilcoxon"] is not None:
        display(cmp["wilcoxon"])

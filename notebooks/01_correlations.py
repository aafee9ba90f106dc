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
# # ImageNet accuracy vs transfer accuracy (Figures 1 and 2, Table 2)
#
# Kornblith, Shlens & Le, *Do Better ImageNet Models Transfer Better?*, Sections 3 and 4.1-4.3.
# Every accuracy is analysed in log odds and plotted on logit-scaled axes. Each setting comes
# from the feature store's results table when the store has results for it, otherwise from the
# paper's Table 6 (the table below says which); ImageNet top-1 is the paper's retrained-model
# column for paper tables and the checkpoint's own published top-1 for store results.
#
# Set the store with the `FEATURESTORE_URL` environment variable, or edit `STORE_URL`
# (`featurestore report --store URL` injects it).

# %%
import os

from IPython.display import Markdown, display

from probes.analysis import figures as F
from probes.analysis import tables as T

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")
N_BOOT = 10_000  # bootstrap resamples for the regression band

# %%
rt = T.results_tables(STORE_URL)
display(Markdown(f"Store: `{STORE_URL}` — {len(rt.results)} result rows."))
rt.describe()

# %% [markdown]
# ## Figure 1 / Figure 2 (right): mean log odds across datasets
#
# Per model, the mean log odds over the datasets of a complete model x dataset block (models or
# datasets with missing results are dropped until none is missing), against ImageNet top-1.
# Error bars: standard error with dataset difficulty removed (Morey 2008).
# Green: not significantly below the best model (paired t-test across datasets, p > 0.05).
# Blue: least-squares line and 95% bootstrap band.

# %%
panels = {
    s: (f"{T.setting_label(s, short=True)} ({rt.source[s]})", t, rt.top1_for(s))
    for s, t in rt.tables.items()
}
F.show(F.fig_mean_log_odds(
    [panels[s] for s in ("logreg", "finetune") if s in panels],
    "Figure 1: average transfer accuracy vs ImageNet top-1",
    n_boot=N_BOOT,
))
F.show(F.fig_mean_log_odds(
    list(panels.values()), "Figure 2 (right): average log odds vs ImageNet top-1", n_boot=N_BOOT
))

# %% [markdown]
# ## Figure 2 (left): each dataset
#
# Green marks models not significantly worse than the best on that dataset (exact McNemar test
# for top-1, permutation test for mean per-class accuracy), computed from the per-example test
# predictions stored with each result. The paper's tables carry no per-example predictions, so
# for settings taken from the paper, and for datasets that cannot be tested, points stay blue.

# %%
for setting, table in rt.tables.items():
    green, skipped = (
        T.green_per_dataset(STORE_URL, rt.results, setting)
        if rt.source[setting] == "store"
        else (None, {})
    )
    if green is None:
        display(Markdown(f"**{T.setting_label(setting)}** (paper, Table 6): no per-example "
                         "predictions, so no per-dataset significance colouring."))
    for dataset, reason in skipped.items():
        display(Markdown(f"**{T.setting_label(setting)}**, {T.dataset_label(dataset)}: "
                         f"no per-dataset test ({reason})."))
    F.show(F.fig_transfer_vs_imagenet(
        table, rt.top1_for(setting),
        f"Figure 2 (left): {T.setting_label(setting)} ({rt.source[setting]})",
        green=green, n_boot=N_BOOT,
    ))

# %% [markdown]
# ## Table 2: correlation of ImageNet top-1 with mean transfer accuracy
#
# Pearson r (and r²) and Spearman ρ between logit ImageNet top-1 and mean log odds across
# datasets; `p` is the two-sided p-value of r. The paper reports r = 0.99 (logistic
# regression), 0.96 (fine-tuned) and 0.55 (from scratch).

# %%
T.correlation_table(rt)

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
# # ImageNet accuracy vs transfer accuracy (Figures 1, 2, 10, 11, 16; Table 2; Section 4.3)
#
# Kornblith, Shlens & Le, *Do Better ImageNet Models Transfer Better?*, Sections 3 and 4.1-4.3,
# Appendices B and D. Every accuracy is analysed in log odds and plotted on logit-scaled axes.
# Every figure shows the paper's panels (Table 6, against the authors' *retrained* ImageNet
# top-1 of Table 3) and, beside them, one panel per setting the store has results for
# (against each checkpoint's own top-1). Each panel's title says its source; the two are
# never merged, because a store checkpoint and a paper network are different models even
# when they share a name.
#
# Set the store with the `FEATURESTORE_URL` environment variable, or edit `STORE_URL`
# (`featurestore report --store URL` injects it; it also writes the data of every figure to
# `data/<id>.csv`).

# %%
import os

from IPython.display import Markdown, display

from probes.analysis import figures as F
from probes.analysis import printed_tables as P
from probes.analysis import report_data as R
from probes.analysis import tables as T

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")
N_BOOT = 10_000  # bootstrap resamples for the regression band

# %%
rt = T.results_tables(STORE_URL)
store_settings = list(rt.store_tables)
display(Markdown(
    f"Store: `{STORE_URL}` — {len(rt.results)} result rows; settings with store results: "
    + (", ".join(T.setting_label(s) for s in store_settings) or "none")
    + ". The paper's panels are always shown."))


def sources_of(panels: list[T.Panel]) -> str:
    """'paper', 'store' or 'paper and store side by side', for a figure title."""
    found = sorted({p.source for p in panels})
    return " and ".join(found) + (" side by side" if len(found) > 1 else "")


# %% [markdown]
# ## Figure 1 / Figure 2 (right): mean log odds across datasets
#
# Per model, the mean log odds over the datasets of a complete model x dataset block (models or
# datasets with missing results are dropped until none is missing), against ImageNet top-1.
# Error bars: standard error with dataset difficulty removed (Morey 2008).
# Green: not significantly below the best model (paired t-test across datasets, p > 0.05).
# Blue: least-squares line and 95% bootstrap band.

# %%
fig1 = rt.panels(["logreg", "finetune"])
F.show(F.fig_mean_log_odds(
    [(p.label, p.table, p.top1) for p in fig1],
    f"Figure 1: average transfer accuracy vs ImageNet top-1 ({sources_of(fig1)})",
    n_boot=N_BOOT,
))
fig2 = rt.panels()
F.show(F.fig_mean_log_odds(
    [(p.label, p.table, p.top1) for p in fig2],
    f"Figure 2 (right): average log odds vs ImageNet top-1 ({sources_of(fig2)})", n_boot=N_BOOT,
))

# %% [markdown]
# ## Figure 2 (left): each dataset
#
# Green marks models not significantly worse than the best on that dataset (exact McNemar test
# for top-1, permutation test for mean per-class accuracy), computed from the per-example test
# predictions stored with each result. The paper's tables carry no per-example predictions, so
# in the paper's panels, and for datasets that cannot be tested, points stay blue.

# %%
for p in rt.panels():
    green, skipped = (
        T.green_per_dataset(STORE_URL, rt.results, p.setting)
        if p.source == "store"
        else (None, {})
    )
    if green is None:
        display(Markdown(f"**{T.setting_label(p.setting)}** (paper, Table 6): no per-example "
                         "predictions, so no per-dataset significance colouring."))
    for dataset, reason in skipped.items():
        display(Markdown(f"**{T.setting_label(p.setting)}**, {T.dataset_label(dataset)}: "
                         f"no per-dataset test ({reason})."))
    F.show(F.fig_transfer_vs_imagenet(
        p.table, p.top1, f"Figure 2 (left): {T.setting_label(p.setting)} ({p.source})",
        green=green, n_boot=N_BOOT,
    ))

# %% [markdown]
# ## Table 2: correlation of ImageNet top-1 with mean transfer accuracy
#
# Pearson r (and r²) and Spearman ρ between logit ImageNet top-1 and mean log odds across
# datasets; `p` is the two-sided p-value of r. The paper reports r = 0.99 (logistic
# regression), 0.96 (fine-tuned) and 0.55 (from scratch).

# %%
for table in P.table2(rt):
    display(table)

# %% [markdown]
# ## Section 4.3: small vs large datasets
#
# Table 2's correlation over the datasets with fewer than 10,000 training examples and over
# the rest. The paper, from scratch: r = 0.29 over its 7 small datasets, 0.86 over the 5 large.

# %%
T.small_vs_large(rt)

# %% [markdown]
# ## Figure 16: the correlation per dataset against training-set size
#
# Per dataset, the Pearson correlation between logit ImageNet top-1 and logit accuracy across
# models (Fisher z scale) against the training-set size (log scale); each panel's title gives
# r and p between log size and z. The paper: significant from scratch (p = 0.0002) only.

# %%
points, fit = T.size_correlation_frame(rt)
F.show(F.fig_size_correlation(
    points, fit, f"Figure 16: correlation with ImageNet vs dataset size ({sources_of(fig2)})"))

# %% [markdown]
# ## Appendix D: dataset size and the predictive power of ImageNet accuracy
#
# Figure 16's numbers per panel: each dataset's training-set size, the correlation across
# models between logit ImageNet top-1 and logit accuracy on it, and that correlation's Fisher z;
# the caption gives r and p between log size and z. The paper: larger datasets make ImageNet
# accuracy a better predictor when training from scratch (p = 0.0002), with no significant
# relationship in the transfer settings — perhaps because ImageNet accuracy measures both
# inductive bias and capacity, and on small datasets trained from scratch the bias matters more.
# A store panel needs 3 or more checkpoints with a known top-1 on a dataset to appear.

# %%
for table in P.appendix_d(rt):
    display(table)

# %% [markdown]
# ## Figures 10 and 11: logistic regression on public checkpoints
#
# The store's checkpoints are public ones (Figure 10 is the store's logistic-regression panel
# of Figure 2 above). Figure 11: for each store checkpoint that is one of the paper's networks,
# its mean log odds over the datasets it was probed on, beside the paper's retrained model of
# the same network on the same datasets.

# %%
cells = R.cells(rt)
fig11 = R.public_vs_retrained(rt, cells)
if fig11.empty:
    display(Markdown("No store checkpoint maps to one of the paper's networks with logistic "
                     "regression results, so there is no Figure 11 comparison."))
else:
    F.show(F.fig_public_vs_retrained(fig11, "Figure 11: public checkpoints (store) vs "
                                     "retrained models (paper)"))
    display(fig11)

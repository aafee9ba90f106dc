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
# # Choosing a checkpoint
#
# The paper ranks ImageNet networks by how well they transfer *on average* over 12 datasets; a
# user with one new dataset wants the best checkpoint for *theirs*, without fine-tuning every
# candidate. Transferability estimators answer from the features the store already caches, in
# seconds: LogME (You et al., 2021), H-score (Bao et al., 2019), cosine kNN and leave-one-out
# nearest-centroid accuracy from the train(+val) features, LEEP (Nguyen et al., 2020) and NCE
# (Tran et al., 2019) from the checkpoint's own ImageNet logits (`extract --with-logits`).
# This page checks each estimate against what the store measured: the logistic-regression
# probe (`featurestore sweep`) and fine-tuning, per dataset with at least three checkpoints.
# `featurestore rank --dataset D` prints the same numbers for one dataset.

# %%
import os

from IPython.display import Markdown, display

from probes.analysis import figures as F
from probes.analysis import tables as T
from probes.transfer.choice import MIN_CKPTS, choice_data
from probes.transfer.choice_figures import fig_estimate_vs_measured, fig_timing

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")
DEVICE = "auto"

# %%
data = choice_data(STORE_URL, min_ckpts=MIN_CKPTS, device=DEVICE)
few = ", ".join(f"{T.dataset_label(d)} ({n})" for d, n in data.too_few.items())
if data.datasets:
    display(Markdown(
        f"Store: `{STORE_URL}` — {len(data.datasets)} dataset(s) with at least {MIN_CKPTS} "
        f"checkpoints: {', '.join(T.dataset_label(d) for d in data.datasets)}."
        + (f" Too few checkpoints to rank: {few}." if few else "")))
else:
    display(Markdown(
        f"Store: `{STORE_URL}` has no dataset with at least {MIN_CKPTS} extracted checkpoints"
        + (f" (checkpoints per dataset: {few})" if few else "")
        + ", so there is no ranking to check and no figure. Extract more candidates with "
        "`featurestore extract --ckpt A --ckpt B --ckpt C --dataset D --with-logits`, then "
        "`featurestore sweep --dataset D --solver logreg`."))
if data.skipped:
    display(Markdown("Left out (unreadable): " + "; ".join(f"`{s}`" for s in data.skipped)))

# %% [markdown]
# ## Estimate vs measured transfer
#
# One panel per estimator: each point a checkpoint, its estimate on x, its measured test
# accuracy on y (log-odds scale, labelled in accuracy). Kendall's tau in the panel title.

# %%
for dataset in data.datasets:
    F.show(fig_estimate_vs_measured(data.scatter, data.correlations, dataset))

# %% [markdown]
# ## Rank correlation
#
# Kendall tau and Spearman rho (scipy) of each estimator against each measured setting, per
# dataset and pooled over datasets (measured accuracies averaged in log odds, estimates
# standardised within each dataset; only checkpoints present on every dataset). `n` is the
# number of checkpoints compared; with a handful of checkpoints the p-values are large.

# %%
if data.datasets:
    shown = data.correlations[data.correlations["n"] > 0]
    if shown.empty:
        display(Markdown("No logistic-regression or fine-tune results for these checkpoints "
                         "yet: run `featurestore sweep` to check the estimates."))
    else:
        display(shown.drop(columns="source").round(3).reset_index(drop=True))

# %% [markdown]
# ## Time to estimate vs time to measure
#
# Seconds to compute each estimator from features in memory, beside the recorded seconds of the
# probe or fine-tune job whose outcome it predicts (extraction, which both need, excluded).

# %%
if data.datasets:
    F.show(fig_timing(data.timing))
    summary = (data.timing.groupby(["dataset", "kind", "method"])["seconds"]
               .agg(["median", "min", "max", "count"]).round(3))
    display(summary)

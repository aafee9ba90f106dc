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
# # Dataset size and convergence (Figures 9 and 8)
#
# Sections 4.6 and 4.7. Both figures need runs the paper does not tabulate, so they come from
# the store alone: subsets of k examples per class (result variants `k=K,subset_seed=S`) and
# independent runs of increasing step budgets (`featurestore finetune --steps
# 1000,2500,5000,10000`). With no such results the figures say so instead of showing
# invented data.

# %%
import os

from IPython.display import Markdown, display

from probes.analysis import figures as F
from probes.analysis import tables as T

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")

# %%
results = T.load_results(STORE_URL)
display(Markdown(f"Store: `{STORE_URL}` — {len(results)} result rows."))

# %% [markdown]
# ## Figure 9: accuracy against examples per class (store)
#
# Logistic regression, fine-tuning and training from scratch on subsets of k examples per
# class; mean over the seeded subsets, error bars the standard error over subsets. No setting
# refits on the validation split here (Appendix A.2), so `n_train` is k x classes.

# %%
sizes = T.data_size_frame(results)
F.show(F.fig_data_size(sizes, "Figure 9: accuracy vs examples per class (store)"))
display(sizes)

# %% [markdown]
# ## Figure 8: accuracy against training steps (store)
#
# Each point is an independent run (its own grid search and train+val run) trained for that
# many steps; fine-tuned vs trained from random initialization. The hollow circle marks the
# smallest budget reaching 90% of the maximum odds of correct classification over budgets;
# Section 4.6 compares these by their geometric mean (the paper: fine-tuning gets there 17
# times sooner than training from scratch).

# %%
budgets = T.step_budget_frame(results)
F.show(F.fig_step_budgets(budgets, "Figure 8: accuracy vs training steps (store)"))
if budgets.empty:
    display(Markdown("No step-budget runs in the store, so no convergence statistics."))
else:
    display(budgets)
    curves = budgets.rename(columns={"steps": "step", "test_metric": "val_metric"})
    speed = T.convergence_speedup(T.convergence_summary(curves.assign(variant=curves["family"])))
    display(speed)

# %% [markdown]
# ## The validation curve of the chosen run (not Figure 8)
#
# Validation accuracy recorded along training of each result's chosen grid point (one run,
# cosine schedule over its whole budget: a point here is not what a run of that many steps
# would reach).

# %%
curves = T.convergence_frame(results)
F.show(F.fig_convergence(curves, T.convergence_summary(curves),
                         "Validation curve along one run (store; not Figure 8)"))

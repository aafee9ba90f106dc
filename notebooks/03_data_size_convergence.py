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
# Sections 4.6 and 4.7. Both figures need runs the paper does not tabulate: subsets of k
# examples per class (result variants `k=K,subset_seed=S`) and accuracy recorded along
# training (`curve_steps` of fine-tune and from-scratch results). Only what the store holds is
# drawn; with no such results the figures say so instead of showing invented data.

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
# ## Figure 9: accuracy against examples per class
#
# Mean over the random subsets; error bars are the standard error over subsets.

# %%
sizes = T.data_size_frame(results)
F.show(F.fig_data_size(sizes, "Figure 9: accuracy vs examples per class"))
display(sizes)

# %% [markdown]
# ## Figure 8: accuracy against training steps
#
# The hollow circle marks the first step at which a run reaches 90% of its maximum odds of
# correct classification; Section 4.6 compares these step counts by their geometric mean
# (the paper: fine-tuning gets there 17 times sooner than training from scratch).

# %%
curves = T.convergence_frame(results)
summary = T.convergence_summary(curves)
F.show(F.fig_convergence(curves, summary, "Figure 8: accuracy vs training steps"))
if summary.empty:
    display(Markdown("No per-step accuracy in the store, so no convergence statistics."))
else:
    display(summary)
    display(T.convergence_speedup(summary))

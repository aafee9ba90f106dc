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
# # Our results beside the paper's
#
# Every result in the store next to the paper's Table 6 number for the same network, dataset
# and setting, where the paper has one. A store checkpoint is matched to a paper network by the
# checkpoint registry (`extra["paper_model"]`, the `paper16` preset) or by name; store dataset
# names map to the paper's (`cars` is Stanford Cars, `aircraft` FGVC Aircraft, `pets`
# Oxford-IIIT Pets). Expect differences: the paper's networks are the authors' retrained,
# unregularised models, while the store's are public checkpoints (Appendix B).

# %%
import os

from IPython.display import Markdown, display

from probes.analysis import figures as F
from probes.analysis import tables as T

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")

# %%
results = T.load_results(STORE_URL)
comparison = T.ours_vs_paper(results)
matched = int(comparison["paper"].notna().sum())
display(Markdown(f"Store: `{STORE_URL}` — {len(comparison)} results, {matched} with a paper "
                 "counterpart." + ("" if len(comparison) else
                                   " Run probes (`featurestore` sweeps) to fill the store.")))

# %%
F.show(F.fig_ours_vs_paper(comparison, "Ours vs the paper (Table 6)"))

# %% [markdown]
# ## Checkpoints and the paper's networks

# %%
T.checkpoint_mapping(results)

# %% [markdown]
# ## Every result
#
# `diff` is ours minus the paper in accuracy (fractions); `diff_log_odds` the same in log odds.

# %%
display(comparison)

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
from probes.analysis import printed_tables as P
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

# %% [markdown]
# ## The paper's tables (Tables 1, 3, 4 and 6)
#
# Each table's caption names its source: the paper's numbers as printed (`data/paper`), or the
# store's results. The store's Table 6 colours, per dataset, the best checkpoint (bold) and
# every checkpoint not significantly worse than it (green, p > 0.05) by the paper's test for
# the dataset's metric, computed from the per-example test predictions stored with each
# result: exact McNemar for top-1, a permutation test (10,000 permutations) for mean per-class
# accuracy, and for VOC 2007 the exact McNemar test on the accuracy of the thresholded
# predictions across labels (the paper's footnote 2), difficult objects left out. Table 2 and
# Appendix D are on the correlations page.

# %%
rt = T.results_tables(STORE_URL, results)
for table in [*P.table1(rt), *P.table3(rt), *P.table4(), *P.table6(rt)]:
    display(table)

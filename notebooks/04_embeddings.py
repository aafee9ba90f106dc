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
# # t-SNE of penultimate-layer features (Figure 4)
#
# Section 4.1: the paper embeds Inception v4 features of 10 Oxford 102 Flowers test classes
# and finds the default (regularised) training settings give a less separable feature space.
# Here: the cached features of one dataset straight from the store, one panel per checkpoint,
# the same 10 classes in each. The paper's tables hold no features, so without a store there
# is nothing to embed.

# %%
import os

from IPython.display import Markdown, display

from probes.analysis import figures as F
from probes.analysis import tables as T

# %% tags=["parameters"]
STORE_URL = os.environ.get("FEATURESTORE_URL", "./featurestore.zarr")
DATASET = None  # None: flowers102 if extracted, else the dataset with the most checkpoints
CKPTS = None  # None: up to 4 checkpoints of that dataset
SPLIT = "test"
N_CLASSES = 10

# %%
dataset, frames = T.tsne_panels(STORE_URL, DATASET, CKPTS, split=SPLIT, n_classes=N_CLASSES)
if frames:
    display(Markdown(f"Store: `{STORE_URL}` — t-SNE of the {SPLIT} split of "
                     f"{T.dataset_label(str(dataset))} for {len(frames)} checkpoint(s)."))
    title = f"Figure 4: t-SNE of {T.dataset_label(str(dataset))} ({N_CLASSES} {SPLIT} classes)"
    F.show(F.fig_tsne(frames, title))
else:
    display(Markdown(f"Store `{STORE_URL}` has no complete single-label entry"
                     + (f" for dataset `{dataset}`" if dataset else "")
                     + ", so there are no features to embed and no figure. Extract some with "
                     "`featurestore extract`."))

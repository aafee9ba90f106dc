"""Extraction and probe sweeps on a dask.distributed cluster (worker processes on this machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from featurestore.store import FeatureStore
from tests.conftest import FAST_CKPT


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def test_extract_and_sweep_on_cluster(client, imagefolder: Path, store_url: str) -> None:
    from featurestore_app.distributed import extract_distributed, sweep_distributed

    ckpts = [FAST_CKPT, "test_vit"]
    reports = extract_distributed(client, store_url, ckpts, ["imagefolder"], str(imagefolder),
                                  weights="random", batch_size=8)
    assert sorted(r.ckpt for r in reports) == sorted(ckpts)
    assert all(r.status == "extracted" and r.n_images == 36 for r in reports)
    fs = FeatureStore(store_url)
    assert sorted(e.ckpt for e in fs.entries()) == sorted(ckpts)

    # Same features as a local, single-process extraction of the same entry.
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry

    local = FeatureStore(str(Path(store_url).with_name("local.zarr")))
    extract_entry(local, FAST_CKPT, get_dataset("imagefolder", imagefolder), weights="random",
                  batch_size=8, num_workers=0, progress=False)
    np.testing.assert_allclose(fs.load(FAST_CKPT, "imagefolder", "test")[0],
                               local.load(FAST_CKPT, "imagefolder", "test")[0], rtol=1e-5,
                               atol=1e-6)

    # A second submission finds everything complete; a bad dataset root is reported per entry.
    again = extract_distributed(client, store_url, ckpts, ["imagefolder"], str(imagefolder),
                                weights="random", batch_size=8)
    assert {r.status for r in again} == {"skipped"}
    bad = extract_distributed(client, store_url, ["test_resnet"], ["imagefolder"],
                              str(imagefolder / "missing"), weights="random")
    assert isinstance(bad[0], str) and "expected under" in bad[0]

    outcomes = sweep_distributed(client, store_url, None, None, ["logreg", "svm"], device="cpu")
    assert len(outcomes) == 4 and {o.status for o in outcomes} == {"done"}
    df = fs.results.frame()
    assert len(df) == 4 and set(df.setting) == {"logreg", "svm"}

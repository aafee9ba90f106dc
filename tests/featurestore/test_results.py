"""The results contract (featurestore.results.schema) and the table that stores it.

Rows of older releases are written here exactly as those releases stored them (Zarr attributes
of the prediction array), because their whole point is that no current writer produces them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from featurestore.results import ResultRow, RowFormatError, Subset, parse_curve_steps
from featurestore.store import FeatureStore, SplitPlan
from probes.analysis import tables as T


def _legacy_row(store: FeatureStore, name: str, row: dict) -> None:
    """A row as the table wrote it before the schema existed."""
    group = store.root.require_group("_results")
    arr = group.create_array(name, shape=(3,), chunks=(3,), dtype="int32",
                             attributes={"row": row, "status": "complete"})
    arr[...] = np.array([0, 1, 1], dtype=np.int32)


def test_old_curve_formats_read_as_pairs(tmp_path: Path) -> None:
    store = FeatureStore(str(tmp_path / "s.zarr"))
    base = {"ckpt": "m", "dataset": "digits", "metric": "top1", "test_metric": 0.5,
            "created": "2024-01-01T00:00:00"}
    # finetune.py wrote pairs; the old figure fixture (and docs) used dicts.
    _legacy_row(store, "a", {**base, "setting": "finetune", "variant": "",
                             "curve_steps": [[4, 0.6], [2, 0.5]]})
    _legacy_row(store, "b", {**base, "setting": "scratch", "variant": None,
                             "curve_steps": [{"step": 2, "val_metric": 0.2},
                                             {"step": 4, "val_metric": None}]})
    _legacy_row(store, "c", {**base, "setting": "logreg", "variant": "k=5,subset_seed=1",
                             "n_train": 50})
    rows = {r.result_id: r for r in store.results.rows()}
    assert rows["a"].curve_steps == [(2.0, 0.5), (4.0, 0.6)]
    assert rows["b"].curve_steps == [(2.0, 0.2)] and rows["b"].variant == ""
    assert rows["c"].subset == Subset(5, 1)

    curves = T.convergence_frame(T.load_results(str(tmp_path / "s.zarr")))
    got = {(r.setting, r.step): r.val_metric for r in curves.itertuples()}
    assert got == {("finetune", 2.0): 0.5, ("finetune", 4.0): 0.6, ("scratch", 2.0): 0.2}


def test_row_round_trip_and_validation() -> None:
    row = ResultRow(ckpt="m", dataset="d", setting="logreg", metric="top1", test_metric=0.9,
                    subset=Subset(10, 2, 100), curve_steps=[(1.0, 0.5)], extra={"job": "x"})
    assert row.variant == "k=10,subset_seed=2"
    record = row.to_record()
    assert record["curve_steps"] == [[1.0, 0.5]] and record["job"] == "x"
    again = ResultRow.from_record(record)
    assert again.to_record() == record
    with pytest.raises(RowFormatError, match="unknown setting"):
        ResultRow(ckpt="m", dataset="d", setting="probe", metric="top1", test_metric=0.1)
    with pytest.raises(RowFormatError, match="lacks test_metric"):
        ResultRow.from_record({"ckpt": "m", "dataset": "d", "setting": "svm", "metric": "top1"})
    assert parse_curve_steps([{"steps": 3, "accuracy": 0.25}, "junk", [1]]) == [(3.0, 0.25)]


def test_append_is_one_row_per_key_unless_forced(tmp_path: Path) -> None:
    table = FeatureStore(str(tmp_path / "s.zarr")).results
    row = ResultRow(ckpt="m", dataset="d", setting="svm", metric="top1", test_metric=0.5)
    first = table.append(row, np.zeros(4))
    assert first is not None
    assert table.append(row, np.zeros(4)) is None
    assert table.append(row, np.zeros(4), force=True) is not None
    assert len(table.frame()) == 2


def _write_entry(url: str) -> None:
    rng = np.random.default_rng(0)
    store = FeatureStore(url)
    plans = [SplitPlan(s, n, 8, chunk_rows=64) for s, n in
             (("train", 60), ("val", 20), ("test", 30))]
    prov = {"dataset": {"name": "toy", "metric": "top1", "multilabel": False}, "feature_dim": 8}
    with store.writing("toy_ckpt", "toy") as w:
        w.begin(plans, prov, {"synthetic": 0})
        for p in plans:
            y = (np.arange(p.n) % 3).astype(np.int32)
            x = rng.normal(size=(len(y), 8)).astype(np.float32) + y[:, None]
            w.write_split(p.name, x, y, [f"{p.name}/{i}" for i in range(p.n)])
        w.finish({})


@pytest.mark.slow  # three CLI start-ups (torch imports) at once: ~15 s idle, more when busy
def test_three_concurrent_probes_of_one_key_write_one_row(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    _write_entry(url)
    exe = str(Path(sys.executable).with_name("featurestore"))
    cmd = [exe, "probe", "--ckpt", "toy_ckpt", "--dataset", "toy", "--solver", "svm",
           "--store", url, "--device", "cpu"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    df = zarr.open_group(url, mode="r")["_results"]
    assert len(list(df.array_keys())) == 1
    statuses = " ".join(o for o, _ in outs)
    assert statuses.count("done") == 1 and statuses.count("skipped") == 2


def test_a_probe_row_records_versions_without_importing_timm(tmp_path: Path) -> None:
    """Every row names the library versions it was made with (torch with its CUDA build), read
    from the installed metadata: a probe process that never needs timm does not pay its import
    (3 s on this machine: it made the first probe of every sweep worker slow)."""
    import sklearn
    import timm
    import torch

    code = """
import json, sys
from benchmarks.distributed import write_synthetic_entries
from featurestore.store import FeatureStore
from probes.linear.sweep import run_probe
url = sys.argv[1]
name = write_synthetic_entries(url, 1, 90, 8, 3)[0]
out = run_probe(FeatureStore(url), name, "synthetic", "logreg", device="cpu")
row = FeatureStore(url).results.frame().iloc[0]
print(json.dumps({"status": out.status, "timm_imported": "timm" in sys.modules,
                  "versions": row["versions"]}))
"""
    import json

    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.zarr")],
                          capture_output=True, text=True, cwd=Path(__file__).parents[2],
                          timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["status"] == "done" and got["timm_imported"] is False
    v = got["versions"]
    assert (v["torch"], v["timm"], v["scikit-learn"], v["zarr"]) == (
        torch.__version__, timm.__version__, sklearn.__version__, zarr.__version__)

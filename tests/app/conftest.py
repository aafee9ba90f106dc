"""The end-to-end job fixture: every setting as a real tiny job, once per test session.

Shared by ``test_end_to_end.py`` (tables and figure builders) and ``test_report_data.py``
(``featurestore report`` and its ``data/<id>.csv``), so the jobs run once however many of those
tests are selected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CKPT, DATASET, PX, K = "test_resnet", "digits", 32, 5
#: Figure 8's step budgets, run through the installed CLI as one family per setting.
BUDGETS = (2, 4)
#: Figure 9's seeded subsets of the logistic-regression data-size rows.
SUBSET_SEEDS = (0, 1, 2)


def featurestore_exe() -> str:
    return str(Path(sys.executable).with_name("featurestore"))


def _cli(*args: str) -> None:
    proc = subprocess.run([featurestore_exe(), *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def e2e_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store filled by real jobs of every setting (random-weight test_resnet on digits)."""
    import torch

    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.finetune.run import FinetuneConfig, run_finetune
    from probes.linear.sweep import run_probe

    def tiny(setting: str, grid: str, variant: str, **kw: object) -> FinetuneConfig:
        return FinetuneConfig(setting=setting, grid=grid, steps=2, batch_size=16, eval_every=2,
                              image_size=PX, weights="random", device="cpu", num_workers=0,
                              progress=False, variant=variant, **kw)  # type: ignore[arg-type]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    url = str(tmp_path_factory.mktemp("e2e") / "store.zarr")
    fs = FeatureStore(url)
    ds = get_dataset(DATASET)
    loaded = load_checkpoint(CKPT, "random", seed=0)
    loaded.data_config["input_size"] = (3, PX, PX)
    extract_entry(fs, loaded, ds, device="cpu", num_workers=0, progress=False)
    for solver in ("logreg", "svm"):
        assert run_probe(fs, CKPT, DATASET, solver, device="cpu").status == "done"
    # Figure 9's three seeded subsets, in one command
    _cli("probe", "--ckpt", CKPT, "--dataset", DATASET, "-k", str(K), "--subset-seeds",
         ",".join(str(s) for s in SUBSET_SEEDS), "--store", url, "--device", "cpu")
    jobs = [
        tiny("finetune", "lr=0.01", ""),
        tiny("scratch", "lr=0.1", ""),
        tiny("logreg_aug", "l2=1e-4", ""),
        tiny("finetune", "lr=0.01", f"k={K},subset_seed=0", examples_per_class=K),
        tiny("scratch", "lr=0.1", f"k={K},subset_seed=0", examples_per_class=K),
    ]
    for config in jobs:
        assert run_finetune(CKPT, ds, config, store=url).status == "done"
    torch.set_num_threads(threads)
    steps = ",".join(str(b) for b in BUDGETS)
    common = ["--ckpt", CKPT, "--dataset", DATASET, "--steps", steps, "--batch-size", "16",
              "--eval-every", "2", "--image-size", str(PX), "--device", "cpu", "--workers", "0",
              "--quiet", "--store", url]
    _cli("finetune", "--init", "imagenet", "--weights", "random", "--grid", "lr=0.01", *common)
    _cli("finetune", "--init", "random", "--grid", "lr=0.1", *common)
    return url

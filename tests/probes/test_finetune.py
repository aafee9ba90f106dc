"""Fine-tuning, from-scratch and logreg-with-augmentation jobs (probes.finetune.run and friends).

Training tests use timm's tiny ``test_efficientnet`` (and ``test_resnet`` where only the model's
structure matters) with random weights, on an ImageFolder of 3 classes x 6 train / 3 test PNGs of
32x32 (15 train, 3 val, 9 test after the stratified val split), a batch of 5 and 2-10 steps.
The loss test trains at the model's native 160 px; the others (resumption, grid jobs, crop
choice, logreg_aug, data-size rows) at ``image_size=64`` (``FinetuneConfig.image_size``), which
is 10x faster on this 2-core CPU and changes nothing they check.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from featurestore.checkpoints import load_checkpoint
from featurestore.datasets import get_dataset
from featurestore.store import FeatureStore
from probes.errors import ProbeInputError
from probes.finetune.config import FinetuneConfigError
from probes.finetune.data import CentralCrop, StepSampler, eval_transform
from probes.finetune.jobs import RESULT, STATE, JobDir
from probes.finetune.run import FinetuneConfig, run_finetune
from probes.finetune.schedules import (
    GridPoint,
    bn_momentum,
    cosine_factor,
    paper_grid,
    parse_grid,
    quick_grid,
    tf_bn_decay,
)
from probes.finetune.train import Trainer, choose_crop
from probes.subsets import per_class_subset
from tests.conftest import write_imagefolder

ARCH = "test_efficientnet"
SMALL = 64  # px, see the module docstring


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP's
    barrier waits make two threads 10x slower; one thread keeps the suite fast either way."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ft") / "images"
    return write_imagefolder(root, classes=3, train=6, test=3, size=32, fmt="PNG")


@pytest.fixture(scope="module")
def dataset(images: Path):
    ds = get_dataset("imagefolder", images)
    assert (len(ds.split("train")), len(ds.split("val")), len(ds.split("test"))) == (15, 3, 9)
    return ds


def _trainer(dataset, setting: str = "finetune", arch: str = ARCH, **cfg) -> Trainer:
    cfg = {"batch_size": 5, "steps": 6, "image_size": SMALL, **cfg}
    config = FinetuneConfig(setting=setting, **cfg)
    resolved = config.resolve(len(dataset.split("train")), len(dataset.split("trainval")))
    return Trainer(load_checkpoint(arch, "random", seed=0), dataset, resolved,
                   device=torch.device("cpu"), num_workers=0, eval_batch_size=16, progress=False)


def _job(tmp_path: Path, tag: str = "t") -> JobDir:
    return JobDir(FeatureStore(str(tmp_path / f"{tag}.zarr")),
                  {"setting": "finetune", "ckpt": ARCH, "dataset": "imagefolder", "tag": tag})


# -- grids, schedule, BN rule, subsets, config (no training) --------------------------------------


def test_paper_grids_match_appendix_a5_a6_g2() -> None:
    ft = paper_grid("finetune")
    assert len(ft) == 56 == 7 * (7 + 1)
    lrs = sorted({p.lr for p in ft})
    assert np.allclose(lrs, np.logspace(-4, -1, 7))
    for lr in lrs:
        ratios = sorted(p.wd_ratio for p in ft if p.lr == lr)
        assert ratios[0] == 0.0 and np.allclose(ratios[1:], np.logspace(-6, -3, 7))
    assert all(math.isclose(p.weight_decay, p.wd_ratio * p.lr) for p in ft)

    sc = paper_grid("scratch")
    assert len(sc) == 56
    assert np.allclose(sorted({p.lr for p in sc}), np.logspace(-3, 0, 7))
    assert np.allclose(sorted({p.wd_ratio for p in sc} - {0.0}), np.logspace(-5, -2, 7))

    la = paper_grid("logreg_aug")
    assert [p.lr for p in la] == [0.1] * 10
    assert np.allclose([p.l2 for p in la], np.logspace(-10, -1, 10))

    # Data-size study: the lr range is divided by 4 (fine-tune) / 16 (scratch).
    assert np.isclose(min(p.lr for p in paper_grid("finetune", lr_divisor=4)), 1e-4 / 4)
    quick = quick_grid("finetune")
    assert len(quick) == 8 and set(quick) <= set(ft)
    assert parse_grid("quick", "logreg_aug") == quick_grid("logreg_aug")


def test_explicit_grid_points() -> None:
    assert parse_grid("lr=0.01;0.1,wd_ratio=1e-5;0", "finetune") == [
        GridPoint(0.01, 1e-5), GridPoint(0.01, 0.0), GridPoint(0.1, 1e-5), GridPoint(0.1, 0.0)
    ]
    # wd= is the absolute weight decay: the ratio becomes wd / lr.
    (p,) = parse_grid("lr=0.01,wd=1e-5", "finetune")
    assert math.isclose(p.wd_ratio, 1e-3) and math.isclose(p.weight_decay, 1e-5)
    assert parse_grid("lr=0.5", "scratch") == [GridPoint(0.5, 0.0)]
    assert parse_grid("l2=1e-4;1e-2", "logreg_aug") == [GridPoint(0.1, 0, 1e-4),
                                                         GridPoint(0.1, 0, 1e-2)]


@pytest.mark.parametrize("spec", ["bogus", "lr=abc", "lr=", "wd=1e-4", "lr=0.1,lr=0.2",
                                  "lr=0.1,momentum=0.5", "lr=0.1,l2=1e-3", "lr=-1",
                                  "lr=0.1,wd=1e-4,wd_ratio=1e-3"])
def test_bad_grid_specs_raise_a_clear_error(spec: str) -> None:
    with pytest.raises(FinetuneConfigError, match="grid"):
        parse_grid(spec, "finetune")


def test_cosine_schedule_values() -> None:
    assert cosine_factor(0, 100) == 1.0
    assert math.isclose(cosine_factor(50, 100), 0.5)
    assert math.isclose(cosine_factor(25, 100), 0.5 * (1 + math.cos(math.pi / 4)))
    assert math.isclose(cosine_factor(100, 100), 0.0, abs_tol=1e-15)
    assert cosine_factor(150, 100) == cosine_factor(100, 100)


def test_bn_momentum_rule_in_torch_convention() -> None:
    # TF decay max(1 - 10/s, 0.9); PyTorch momentum = 1 - decay = min(10/s, 0.1).
    assert math.isclose(tf_bn_decay(1000), 0.99) and math.isclose(bn_momentum(1000), 0.01)
    assert math.isclose(bn_momentum(400), 0.025)
    assert bn_momentum(100) == 0.1 and bn_momentum(50) == 0.1 and bn_momentum(3.75) == 0.1
    assert tf_bn_decay(5) == 0.9
    with pytest.raises(FinetuneConfigError):
        bn_momentum(0)


def test_bn_momentum_is_set_on_every_batchnorm(dataset) -> None:
    trainer = _trainer(dataset, arch="test_resnet")
    model, mom = trainer._fresh_model(steps_per_epoch=400)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and mom == 0.025 and all(m.momentum == 0.025 for m in bns)


def test_per_class_subset_is_deterministic_and_nested() -> None:
    labels = np.repeat(np.arange(4), 10)[np.random.default_rng(1).permutation(40)]
    a = per_class_subset(labels, 3, seed=7)
    assert np.array_equal(a, per_class_subset(labels, 3, seed=7))
    assert np.bincount(labels[a]).tolist() == [3, 3, 3, 3]
    assert set(a) <= set(per_class_subset(labels, 5, seed=7))
    assert not np.array_equal(a, per_class_subset(labels, 3, seed=8))
    assert len(per_class_subset(labels, 50, seed=0)) == 40  # small classes give all they have


def test_config_defaults_and_data_size_rules() -> None:
    r = FinetuneConfig("finetune").resolve(5000, 6000)
    assert (r.steps, r.batch_size, r.lr_divisor) == (20_000, 256, 1.0)
    assert FinetuneConfig("logreg_aug").resolve(5000, 6000).steps == 40_000
    # Fine-tuning a subset: batch 64, max(1000 steps, 100 epochs), lr / 4 (Appendix A.5).
    k = FinetuneConfig("finetune", examples_per_class=10).resolve(1000, 1000)
    assert (k.batch_size, k.steps, k.lr_divisor) == (64, math.ceil(100 * 1000 / 64), 4.0)
    # From scratch: batch 16, max(78,125 steps, 200 epochs), lr / 16 (Appendix A.6).
    s = FinetuneConfig("scratch", examples_per_class=1).resolve(47, 47)
    assert (s.batch_size, s.steps, s.lr_divisor) == (16, 78_125, 16.0)
    # A default batch shrinks to a tiny subset; the paper's variant string is exactly k,seed.
    assert FinetuneConfig("finetune", examples_per_class=1).resolve(10, 10).batch_size == 10
    assert FinetuneConfig("scratch", examples_per_class=5, subset_seed=2).variant_string() == \
        "k=5,subset_seed=2"
    assert FinetuneConfig("finetune").variant_string() == ""


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps"),
    ({"steps": -5}, "steps"),
    ({"batch_size": 16}, "batch size 16 is larger"),
    ({"grid": "nonsense"}, "grid"),
    ({"setting": "linear"}, "setting"),
    ({"examples_per_class": 0}, "examples_per_class"),
])
def test_bad_input_raises_before_training(dataset, tmp_path: Path, kwargs, match) -> None:
    config = FinetuneConfig(**{"steps": 2, "weights": "random", "progress": False, **kwargs})
    with pytest.raises(FinetuneConfigError, match=match) as info:
        run_finetune(ARCH, dataset, config, store=str(tmp_path / "s.zarr"))
    assert isinstance(info.value, ProbeInputError) and isinstance(info.value, ValueError)


def test_cli_command_rejects_unknown_init_and_grid(tmp_path: Path) -> None:
    import typer

    from featurestore_app.cli.train import finetune_command

    app = typer.Typer()
    app.command("finetune")(finetune_command)
    app.command("other")(lambda: None)  # a multi-command app, as featurestore's
    base = ["finetune", "--ckpt", ARCH, "--dataset", "digits", "--store", str(tmp_path / "s")]
    with pytest.raises(FinetuneConfigError, match="--init"):
        app(args=[*base, "--init", "pretrained"], standalone_mode=False)
    with pytest.raises(FinetuneConfigError, match="grid"):
        app(args=[*base, "--grid", "lr=x"], standalone_mode=False)


# -- data: crops and deterministic order ----------------------------------------------------------


def test_central_crop_and_eval_transforms() -> None:
    from PIL import Image

    img = Image.new("RGB", (80, 40))
    assert CentralCrop(0.875)(img).size == (70, 36)  # TF central_crop offsets: int(5.0), int(2.5)
    for crop in ("uncropped", "cropped"):
        assert eval_transform((24, 24), "bilinear", crop)(img).shape == (3, 24, 24)
    assert choose_crop({"uncropped": 0.5, "cropped": 0.7}) == "cropped"
    assert choose_crop({"uncropped": 0.7, "cropped": 0.5}) == "uncropped"
    assert choose_crop({"uncropped": 0.6, "cropped": 0.6}) == "uncropped"


def test_step_sampler_resumes_mid_epoch_identically() -> None:
    full = list(StepSampler(10, 3, seed=5, start=0, total=8))
    assert list(StepSampler(10, 3, seed=5, start=4, total=8)) == full[4:]
    rows = [r for batch in full[:3] for r, _ in batch]
    assert len(set(rows)) == 9  # one epoch (3 steps of 3) never repeats an example


def test_augmented_batches_do_not_depend_on_worker_count(dataset) -> None:
    from probes.finetune.data import train_loader, train_transform

    train = dataset.split("train")

    def batches(workers: int, start: int) -> list[torch.Tensor]:
        loader = train_loader(dataset, train.ids, train.labels,
                              train_transform((32, 32), "bilinear"), batch_size=5, seed=3,
                              start=start, total=4, num_workers=workers, pin_memory=False)
        return [x for x, _ in loader]

    ref = batches(0, 0)
    assert all(torch.equal(a, b) for a, b in zip(ref, batches(2, 0), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(ref[2:], batches(0, 2), strict=True))
    assert not torch.equal(ref[0], ref[3])  # a new epoch: new order and new crops


# -- training -------------------------------------------------------------------------------------


def test_loss_decreases_and_lr_follows_cosine(dataset, tmp_path: Path) -> None:
    trainer = _trainer(dataset, steps=10, eval_every=5, image_size=None)  # native 160 px
    o = trainer.run(_job(tmp_path), "p", GridPoint(0.1), dataset.split("train"),
                    val=dataset.split("val"), test=None)
    first, last = o.curve[0]["train_loss"], o.curve[-1]["train_loss"]
    assert last < 0.8 * first, o.curve
    # The lr logged at step s is the one the s-th update used: base * cosine(s - 1).
    for e in o.curve:
        assert math.isclose(e["lr"], 0.1 * cosine_factor(e["steps"] - 1, 10))
    assert [e["steps"] for e in o.curve] == [5, 10]
    assert o.crop in ("uncropped", "cropped") and o.val_metric == o.val[o.crop]


def test_crop_chosen_on_val_is_used_on_test(dataset, tmp_path: Path, monkeypatch) -> None:
    trainer = _trainer(dataset, steps=2)
    used: list[str] = []
    monkeypatch.setattr(trainer, "_evaluate_both",
                        lambda model, split: {"uncropped": 0.25, "cropped": 0.75})
    real_predict = trainer.predict
    monkeypatch.setattr(trainer, "predict",
                        lambda m, s, crop: used.append(crop) or real_predict(m, s, crop))
    o = trainer.run(_job(tmp_path), "p", GridPoint(0.01), dataset.split("train"),
                    val=dataset.split("val"), test=dataset.split("test"))
    assert o.crop == "cropped" and used == ["cropped"] and o.val_metric == 0.75
    assert o.test_predictions is not None and o.test_predictions.shape == (9,)


def test_killed_run_resumes_bit_identically(dataset, tmp_path: Path) -> None:
    point, train, val, test = (GridPoint(0.05, 1e-3), dataset.split("train"),
                               dataset.split("val"), dataset.split("test"))
    kw = {"steps": 6, "eval_every": 2, "ckpt_every": 2}
    ref = _trainer(dataset, **kw).run(_job(tmp_path, "a"), "p", point, train, val=val, test=test,
                                      keep_model=True)

    job = _job(tmp_path, "b")

    def kill(name: str, done: int) -> None:
        if done == 3:
            raise KeyboardInterrupt("killed after step 3")

    with pytest.raises(KeyboardInterrupt):
        _trainer(dataset, **kw).run(job, "p", point, train, val=val, test=test, on_step=kill)
    assert job.exists(f"p/{STATE}") and not job.exists(f"p/{RESULT}")
    got = _trainer(dataset, **kw).run(job, "p", point, train, val=val, test=test,
                                      keep_model=True)
    assert got.resumed_at == [2]
    ref_state, got_state = ref.model.state_dict(), got.model.state_dict()
    assert ref_state.keys() == got_state.keys()
    assert all(torch.equal(ref_state[k], got_state[k]) for k in ref_state)
    assert np.array_equal(ref.test_predictions, got.test_predictions)
    assert ref.curve == got.curve and ref.test_metric == got.test_metric
    assert not job.exists(f"p/{STATE}") and job.exists(f"p/{RESULT}")


def test_logreg_aug_trains_only_the_last_layer(dataset, tmp_path: Path) -> None:
    trainer = _trainer(dataset, setting="logreg_aug", steps=4)
    before = {k: v.clone() for k, v in trainer.base.backbone.state_dict().items()}
    o = trainer.run(_job(tmp_path), "p", GridPoint(0.1, 0.0, 1e-4), dataset.split("train"),
                    val=dataset.split("val"), test=None, keep_model=True)
    after = o.model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats too: eval mode
    assert o.model.head.weight.abs().sum() > 0 and o.bn_momentum is None


def test_grid_job_skips_finished_points_and_writes_the_row(dataset, tmp_path: Path) -> None:
    from probes.stats import steps_to_fraction_of_max_odds

    store = str(tmp_path / "store.zarr")
    config = FinetuneConfig(setting="finetune", grid="lr=0.01;0.1", steps=4, batch_size=5,
                            eval_every=2, ckpt_every=2, weights="random", progress=True,
                            image_size=SMALL)
    trained: list[tuple[str, int]] = []

    def kill_in_second_point(name: str, done: int) -> None:
        trained.append((name, done))
        if name.startswith("lr=0.1_") and done == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run_finetune(ARCH, dataset, config, store=store, on_step=kill_in_second_point)
    trained.clear()
    out = run_finetune(ARCH, dataset, config, store=store,
                       on_step=lambda n, d: trained.append((n, d)))
    # The finished first point is not retrained; the second resumes after its step-2 checkpoint.
    assert [t for t in trained if t[0].startswith("lr=0.01_")] == []
    assert [d for n, d in trained if n.startswith("lr=0.1_")] == [3, 4]
    assert [d for n, d in trained if n.startswith("final_")] == [1, 2, 3, 4]

    row = out.row
    assert out.status == "done" and row["setting"] == "finetune"
    assert row["variant"] == "steps=4,batch=5,grid=lr=0.01;0.1,size=64,weights=random"
    assert {v["lr"] for v in row["val_curve"]} == {0.01, 0.1}
    best = max(row["val_curve"], key=lambda v: v["val_metric"])
    assert row["hyperparams"]["lr"] == best["lr"] and row["hyperparams"]["crop"] == best["crop"]
    assert row["n_train"] == 18 and row["n_train_grid"] == 15 and row["metric"] == "top1"
    assert row["hyperparams"]["bn_momentum"] == 0.1  # s = 18/5 steps per epoch -> capped at 0.1
    steps = [s for s, _ in row["curve_steps"]]
    assert steps == [2, 4]
    acc = [a for _, a in row["curve_steps"]]
    if all(0 < a < 1 for a in acc):
        assert steps_to_fraction_of_max_odds(row["curve_steps"]) in steps

    table = FeatureStore(store).results
    assert table.exists(ARCH, "imagefolder", "finetune", row["variant"])
    df = table.frame()
    assert len(df) == 1 and df.iloc[0]["test_metric"] == out.test_metric
    assert table.predictions(out.result_id).shape == (9,)
    again = run_finetune(ARCH, dataset, config, store=store)
    assert again.status == "skipped"


def test_data_size_variant_uses_the_subset_and_scores_test_without_retraining(
    dataset, tmp_path: Path
) -> None:
    config = FinetuneConfig(setting="logreg_aug", grid="l2=1e-4", steps=2, eval_every=2,
                            examples_per_class=2, subset_seed=0, weights="random",
                            progress=False, image_size=SMALL)
    out = run_finetune(ARCH, dataset, config, store=str(tmp_path / "s.zarr"))
    row = out.row
    assert row["variant"].startswith("k=2,subset_seed=0")
    assert row["n_train"] == 6 and row["subset"]["n"] == 6
    assert row["hyperparams"]["batch_size"] == 6  # the default 256 shrinks to the subset
    assert row["final_curve"] is None  # no train+val retraining in the data-size study
    assert row["val_curve"][0]["test_metric"] == row["test_metric"]


def test_multilabel_voc_trains_with_sigmoid_loss_and_stores_scores(tmp_path: Path) -> None:
    from tests.fixtures_datasets import write_voc2007

    fx = write_voc2007(tmp_path / "voc")
    ds = get_dataset("voc2007", fx.root)
    config = FinetuneConfig(setting="finetune", grid="lr=0.01", steps=2, batch_size=2,
                            weights="random", progress=False, image_size=SMALL)
    out = run_finetune(ARCH, ds, config, store=str(tmp_path / "s.zarr"))
    assert out.metric == "voc11_map" and 0.0 <= out.test_metric <= 1.0
    preds = FeatureStore(str(tmp_path / "s.zarr")).results.predictions(out.result_id)
    assert preds.shape == (5, 20) and preds.dtype == np.float32
    assert ((preds >= 0) & (preds <= 1)).all()
    # scored like the devkit: difficult (image, class) entries are neither positive nor negative
    from probes.metrics import voc11_map

    y_test, difficult = ds.split("test").labels, ds.difficult_mask("test")
    assert difficult.any()
    assert out.test_metric == pytest.approx(voc11_map(y_test, preds, difficult), abs=1e-6)


def test_job_folder_on_an_fsspec_store_and_beside_a_local_one(tmp_path: Path) -> None:
    fp = {"setting": "scratch", "ckpt": "a/b", "dataset": "d"}
    remote = JobDir(FeatureStore("memory://ft-test.zarr"), fp)
    assert remote.base.endswith(f"ft-test.zarr.jobs/{remote.key}")
    remote.write_torch("p/state.pt", {"step": 3, "w": torch.ones(2)})
    assert remote.read_torch("p/state.pt")["step"] == 3
    remote.remove("p/state.pt")
    assert not remote.exists("p/state.pt") and remote.read_json("p/result.json") is None
    with remote.lock("p"):
        remote.write_json("p/result.json", {"ok": 1})
    assert remote.read_json("p/result.json") == {"ok": 1}

    local = JobDir(FeatureStore(str(tmp_path / "s.zarr")), fp)
    assert local.local == tmp_path / ".s.zarr.jobs" / local.key  # outside the Zarr hierarchy
    local.write_array("p/test_predictions.npy", np.arange(3))
    assert local.read_array("p/test_predictions.npy").tolist() == [0, 1, 2]
    assert not [p for p in (local.local / "p").iterdir() if p.suffix == ".tmp"]
    assert local.read_json("job.json")["ckpt"] == "a/b" and "/" not in local.key


def test_a_final_run_is_never_reused_for_another_winner(dataset, tmp_path: Path) -> None:
    # Same job (grid is not part of the job key, so grids can grow) but a different winner: the
    # second call must retrain on train+val with its own winner, not reuse the first final run.
    store = str(tmp_path / "s.zarr")
    common = {"steps": 2, "batch_size": 5, "weights": "random", "progress": False,
              "image_size": SMALL}
    first = run_finetune(ARCH, dataset, FinetuneConfig(grid="lr=0.1", **common), store=store)
    trained: list[str] = []
    second = run_finetune(ARCH, dataset, FinetuneConfig(grid="lr=0.01", **common), store=store,
                          on_step=lambda name, done: trained.append(name))
    assert first.job == second.job
    assert second.row["hyperparams"]["lr"] == 0.01
    assert any(n.startswith("final_lr=0.01_") for n in trained)

"""The command line as a new user meets it, through the installed ``featurestore`` command:
names are never cut at any width or in a pipe, ``--json`` puts results alone on stdout,
progress never reaches a log file, filters that match nothing are errors naming what exists,
a skipped probe says why, and ``finetune --smoke --weights random`` records what it ran."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_imagefolder

FEATURESTORE = str(Path(sys.executable).with_name("featurestore"))
CKPT = "test_efficientnet"  # long enough to be cut to "test_effici…" by a squeezed table
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cli(*args: str, cwd: Path | None = None, columns: int | None = None, tty: bool = False,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``featurestore``; ``tty`` makes rich render as for a terminal (TTY_COMPATIBLE=1)
    of ``columns`` width, else stdout is the pipe it is."""
    env = dict(ENV)
    env.pop("TTY_COMPATIBLE", None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    if tty:
        env["TTY_COMPATIBLE"] = "1"
    return subprocess.run([FEATURESTORE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def ok(p: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    return p


def words(text: str) -> set[str]:
    """Whitespace-separated tokens of rendered output, colour codes removed."""
    return set(ANSI.sub("", text).split())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store holding one real entry and one logreg row, made through the CLI with --json."""
    base = tmp_path_factory.mktemp("ux")
    write_imagefolder(base / "images")
    url = str(base / "store.zarr")
    ext = ok(cli("extract", "--ckpt", CKPT, "--dataset", "imagefolder", "--data-root",
                 str(base / "images"), "--weights", "random", "--device", "cpu", "--workers",
                 "0", "--store", url, "--json"))
    swp = ok(cli("sweep", "--store", url, "--device", "cpu", "--json"))
    return {"base": base, "url": url, "extract": ext, "sweep": swp}


def test_version_and_short_help() -> None:
    v = ok(cli("--version"))
    assert re.fullmatch(r"featurestore \S+\n", v.stdout), v.stdout
    h = ok(cli("-h"))
    assert "Usage: featurestore" in ANSI.sub("", h.stdout)
    sub = ok(cli("probe", "-h"))
    assert "--ckpt" in ANSI.sub("", sub.stdout)


@pytest.mark.parametrize(("columns", "tty"), [(60, True), (80, True), (60, False)])
def test_ckpts_never_cuts_a_name(columns: int, tty: bool) -> None:
    from featurestore.checkpoints import REGISTRY

    p = ok(cli("ckpts", columns=columns, tty=tty))
    shown = words(p.stdout)
    missing = [n for n in REGISTRY if n not in shown]
    assert not missing, f"cut or missing at {columns} columns (tty={tty}): {missing}"
    table = ANSI.sub("", p.stdout).split("notes")[0]
    assert "…" not in table


def test_ckpts_and_datasets_json() -> None:
    from featurestore.checkpoints import REGISTRY
    from featurestore.datasets import REGISTRY as DATASETS

    c = json.loads(ok(cli("ckpts", "--json", tty=True)).stdout)
    assert [i["name"] for i in c["checkpoints"]] == list(REGISTRY)
    d = json.loads(ok(cli("datasets", "--json")).stdout)
    assert {x["name"] for x in d["datasets"]} == set(DATASETS)


def test_store_commands_json_on_stdout_logs_on_stderr(store: dict[str, object]) -> None:
    ext, swp = store["extract"], store["sweep"]
    assert isinstance(ext, subprocess.CompletedProcess)
    assert isinstance(swp, subprocess.CompletedProcess)
    entries = json.loads(ext.stdout)["entries"]
    assert [(e["ckpt"], e["status"], e["images"]) for e in entries] == [
        (CKPT, "extracted", 36)]
    # stderr is a pipe: no progress bars (no carriage returns) in what a log file would get
    assert "\r" not in ext.stderr
    rows = json.loads(swp.stdout)
    assert [(r["ckpt"], r["solver"], r["status"]) for r in rows] == [(CKPT, "logreg", "done")]
    assert 0.0 <= rows[0]["test_metric"] <= 1.0
    assert f"{CKPT}/imagefolder/logreg: done" in swp.stderr
    url = str(store["url"])
    res = json.loads(ok(cli("results", "--store", url, "--json")).stdout)
    assert [r["result_id"] for r in res] == [rows[0]["result_id"]]
    ver = json.loads(ok(cli("verify", "--store", url, "--json")).stdout)
    assert [(v["ckpt"], v["integrity"]) for v in ver] == [(CKPT, "verified")]


def test_grid_edge_flag_matches_the_stored_curve(store: dict[str, object]) -> None:
    """The row's ``grid_edge`` agrees with its own validation curve (independent check), and a
    row written before the field existed still reads (as not flagged)."""
    from featurestore.results import ResultRow

    res = json.loads(ok(cli("results", "--store", str(store["url"]), "--json")).stdout)
    row = res[0]
    params = sorted(p["param"] for p in row["val_curve"])
    expected = ("low" if row["best_param"] <= params[0]
                else "high" if row["best_param"] >= params[-1] else None)
    assert row["grid_edge"] == expected
    old = {k: v for k, v in row.items() if k != "grid_edge"}
    assert ResultRow.from_record(old).grid_edge is None
    assert ResultRow.from_record({**old, "grid_edge": "high"}).grid_edge == "high"


def test_grid_edge_of_a_path() -> None:
    from probes.linear.sweep import grid_edge

    curve = [{"param": p} for p in (1e-6, 1e-2, 1e2, 1e5)]
    assert grid_edge(curve, 1e5) == "high"
    assert grid_edge(curve, 1e-6) == "low"
    assert grid_edge(curve, 1e-2) is None


@pytest.mark.parametrize(("columns", "tty"), [(60, True), (60, False)])
def test_store_tables_never_cut_names(store: dict[str, object], columns: int,
                                      tty: bool) -> None:
    url = str(store["url"])
    for cmd in ("results", "ls"):
        p = ok(cli(cmd, "--store", url, columns=columns, tty=tty))
        assert CKPT in words(p.stdout), (cmd, p.stdout)
        assert "imagefolder" in words(p.stdout), (cmd, p.stdout)


def test_skipped_probe_says_why(store: dict[str, object]) -> None:
    p = ok(cli("probe", "--ckpt", CKPT, "--dataset", "imagefolder", "--store",
               str(store["url"]), "--device", "cpu", "--json"))
    [row] = json.loads(p.stdout)
    assert row["status"] == "skipped"
    assert "--force" in row["reason"]
    assert "already in the results table; --force to recompute" in p.stderr


@pytest.mark.parametrize(("filters", "named"), [
    (["--ckpt", "nonexist"], "nonexist"),
    (["--dataset", "digits"], "digits"),
])
def test_sweep_filters_matching_nothing_are_errors(store: dict[str, object],
                                                   filters: list[str], named: str) -> None:
    p = cli("sweep", "--store", str(store["url"]), "--device", "cpu", *filters)
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert named in lines[0] and (CKPT in lines[0] or "imagefolder" in lines[0]), lines[0]
    assert p.stdout == ""


def test_one_quiet_flag_on_long_commands() -> None:
    for cmd in ("extract", "sweep", "finetune", "logreg-aug"):
        text = ANSI.sub("", ok(cli(cmd, "--help", columns=200)).stdout)
        assert "--quiet" in text, cmd
        assert "--no-progress" not in text, cmd  # the old spelling is a hidden alias


def test_finetune_smoke_records_a_random_init(tmp_path: Path) -> None:
    """``--smoke`` runs the whole job in seconds; ``--weights random`` is labelled ``random``."""
    url = str(tmp_path / "store.zarr")
    p = ok(cli("finetune", "--ckpt", "test_resnet", "--dataset", "digits", "--weights",
               "random", "--smoke", "--device", "cpu", "--workers", "0", "--store", url,
               "--json"))
    [out] = json.loads(p.stdout)
    assert out["status"] == "done"
    assert "weights=random" in out["variant"] and "steps=2" in out["variant"]
    [row] = json.loads(ok(cli("results", "--store", url, "--json")).stdout)
    assert row["hyperparams"]["init"] == "random"
    assert row["hyperparams"]["steps"] == 2


@pytest.mark.parametrize(("setting", "steps", "batch", "n_val"), [
    ("finetune", 30, 64, 360),      # the 30-step run on digits: once, at the end
    ("finetune", 20_000, 256, 360),  # the paper's run: 10 evaluations, a sliver of compute
    ("logreg_aug", 400, 32, 2000),
])
def test_default_evaluation_takes_at_most_a_tenth(setting: str, steps: int, batch: int,
                                                  n_val: int) -> None:
    from probes.finetune.config import FinetuneConfig

    r = FinetuneConfig(setting, steps=steps, batch_size=batch).resolve(5000, 5000 + n_val, n_val)
    evals = math.ceil(steps / r.eval_every)  # every eval_every steps, and at the end
    train = steps * batch * (1.0 if setting == "logreg_aug" else 3.0)
    assert evals >= 1
    assert evals == 1 or evals * 2 * n_val <= 0.1 * train + 1e-9
    assert evals <= 10


def test_imagefolder_trees_do_not_collide(store: dict[str, object]) -> None:
    """A second tree under the name ``imagefolder`` is refused (naming both trees), never
    ``skipped`` with the first tree's features; ``--name`` keeps it beside the first."""
    base = Path(str(store["base"]))
    other = write_imagefolder(base / "other", seed=1)
    args = ["extract", "--ckpt", CKPT, "--dataset", "imagefolder", "--data-root", str(other),
            "--weights", "random", "--device", "cpu", "--workers", "0", "--store",
            str(store["url"]), "--json"]
    p = cli(*args)
    assert p.returncode == 1
    assert str(other.resolve()) in p.stderr and str((base / "images").resolve()) in p.stderr
    assert "--name" in p.stderr
    ok(cli(*args, "--name", "other"))
    ls = json.loads(ok(cli("ls", "--store", str(store["url"]), "--json")).stdout)
    assert sorted(e["dataset"] for e in ls) == ["imagefolder", "other"]

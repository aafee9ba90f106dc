"""Every failure of the installed ``featurestore`` command is one line and a non-zero status, and
nothing is written or lost: usage errors, store paths that are not stores, OS faults (disk full on
a real tmpfs, read-only file system), a killed extraction's workers, an interrupted ``--force``
swap."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from featurestore.store import FeatureStore, swap
from tests.conftest import (
    ENV,
    FAST_CKPT,
    FEATURESTORE,
    one_error_line,
    run_cli,
    write_imagefolder,
)


def extract_args(data_root: Path, store: Path | str, *extra: str) -> list[str]:
    return ["extract", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--data-root",
            str(data_root), "--weights", "random", "--store", str(store), "--no-progress",
            "--workers", "0", *extra]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root, store) with one complete entry written by the real command."""
    base = tmp_path_factory.mktemp("cli_errors")
    root = write_imagefolder(base / "images", classes=2, train=4, test=2)
    store = base / "store.zarr"
    p = run_cli(*extract_args(root, store), cwd=base)
    assert p.returncode == 0, p.stderr
    return root, store


# -- usage errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["extract", "--dataset", "digits"], "Missing option '--ckpt'"),
        (["ls", "--bogus"], "No such option: --bogus"),
        (["extract", "--ckpt", "x", "--dataset", "y", "--batch-size", "abc"],
         "Invalid value for '--batch-size'"),
        (["extract", "--ckpt", "x", "--dataset", "y", "--batch-size", "0"],
         "Invalid value for '--batch-size': Input should be greater than or equal to 1"),
        (["extract", "--ckpt", "x", "--dataset", "y", "--workers", "-1"],
         "Invalid value for '--workers': Input should be greater than or equal to 0"),
    ],
)
def test_usage_error_is_usage_line_and_one_error_line_exit_2(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    p = run_cli(*argv, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2, p.stderr
    assert lines[0].startswith("Usage: featurestore")
    assert lines[1].startswith("error: ") and message in lines[1]
    assert list(tmp_path.iterdir()) == []  # no store, nothing written


# -- store locations ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["ls"], ["results"], ["serve"], ["sweep"],
                                     ["probe", "--ckpt", FAST_CKPT, "--dataset", "imagefolder"]])
def test_read_commands_never_create_a_store(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "featurestor.zarr"
    p = run_cli(*command, "--store", str(typo), cwd=tmp_path)
    assert p.returncode == 1
    assert f"no feature store at {typo}" in one_error_line(p)
    assert not typo.exists() and list(tmp_path.iterdir()) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("a_file", "is a file, not a store directory"),
        ("foo://bucket/store", "unknown URL scheme in store 'foo://bucket/store'"),
        ("http://127.0.0.1:{port}/zarr", "cannot open store http://127.0.0.1:{port}/zarr"),
    ],
)
def test_store_that_is_not_a_store_is_one_line(tmp_path: Path, store: str, message: str) -> None:
    (tmp_path / "a_file").write_text("not a store")
    port = _free_port()
    store, message = store.format(port=port), message.format(port=port)
    for command in (["ls"], ["results"]):
        p = run_cli(*command, "--store", store, cwd=tmp_path)
        assert p.returncode == 1
        assert message in one_error_line(p)
    assert (tmp_path / "a_file").read_text() == "not a store"


def test_extract_refuses_non_empty_non_store_dirs_and_root(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "images", classes=2, train=3, test=1)
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    for target in (home, Path("/")):
        before = sorted(p.name for p in target.iterdir())
        p = run_cli(*extract_args(root, target), cwd=tmp_path)
        assert p.returncode == 1
        line = one_error_line(p)
        assert f"{target} is a non-empty directory that is not a feature store" in line
        assert sorted(p.name for p in target.iterdir()) == before


def test_cuda_without_cuda_is_one_line(tmp_path: Path, extracted: tuple[Path, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    root, _ = extracted
    new = tmp_path / "new.zarr"
    p = run_cli(*extract_args(root, new, "--device", "cuda"), cwd=tmp_path)
    assert p.returncode == 1
    assert "--device cuda requested but CUDA is not available" in one_error_line(p)
    assert not new.exists()


# -- OS faults on a real tmpfs ------------------------------------------------------------------
@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> None:
    """Write until the file system is full."""
    with contextlib.suppress(OSError), open(directory / "filler", "wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def _entry_state(store: Path) -> tuple[np.ndarray, str]:
    fs = FeatureStore(str(store), read_only=True)
    x, _ = fs.load(FAST_CKPT, "imagefolder", "train")
    return x, fs.provenance(FAST_CKPT, "imagefolder")["completed_at"]


@pytest.mark.slow  # several real extractions (~30-80 s on 2 busy cores)
def test_disk_full_and_read_only_fs_are_one_line_and_lose_nothing(
    tmp_path: Path, extracted: tuple[Path, Path]
) -> None:
    root, src = extracted
    with _tmpfs(tmp_path / "disk", "2m") as disk:
        store = disk / "store.zarr"
        shutil.copytree(src, store)
        x_before, stamp = _entry_state(store)
        _fill(disk)
        # --force on a full disk: one line naming the file, no staging group, entry intact.
        p = run_cli(*extract_args(root, store, "--force"), cwd=tmp_path)
        assert p.returncode == 1
        line = one_error_line(p)
        assert "disk full" in line and str(disk) in line
        assert sorted(d.name for d in (store / FAST_CKPT).iterdir()) == ["imagefolder", "zarr.json"]
        x_after, stamp_after = _entry_state(store)
        np.testing.assert_array_equal(x_after, x_before)
        assert stamp_after == stamp
        # A new store on a full disk: one line, nothing half-made is listed as complete.
        p = run_cli(*extract_args(root, disk / "new.zarr"), cwd=tmp_path)
        assert p.returncode == 1
        line = one_error_line(p)
        assert "No space left on device" in line and str(disk / "new.zarr") in line

        (disk / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        # probe checks it can write before running the protocol.
        p = run_cli("probe", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--store",
                    str(store), "--device", "cpu", cwd=tmp_path)
        assert p.returncode == 1
        line = one_error_line(p)
        assert f"cannot write results to store {store}" in line and "read-only" in line
        p = run_cli(*extract_args(root, store, "--force"), cwd=tmp_path)
        assert p.returncode == 1
        assert "read-only file system" in one_error_line(p)
        np.testing.assert_array_equal(_entry_state(store)[0], x_before)
        assert FeatureStore(str(store), read_only=True).results.frame().empty


# -- kill -9 of extract -------------------------------------------------------------------------
@pytest.mark.slow  # several real extractions (~30-80 s on 2 busy cores)
def test_kill_9_of_extract_takes_its_dataloader_workers_with_it(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "images", classes=2, train=60, test=30, size=64)
    args = extract_args(root, tmp_path / "store.zarr", "--batch-size", "2")
    args[args.index("--workers") + 1] = "2"
    proc = subprocess.Popen([FEATURESTORE, *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < 2:
            assert proc.poll() is None, "extract ended before its workers were seen"
            workers = parent.children(recursive=True)
            time.sleep(0.2)
        assert len(workers) >= 2, "no DataLoader workers appeared"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=15)
        alive = [w for w in alive if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f"workers outlived kill -9 of extract: {alive}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


# -- interrupted --force swap --------------------------------------------------------------------
def test_swap_interrupted_between_renames_is_recovered_on_open(
    tmp_path: Path, extracted: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a crash between the two renames of the swap left the entry only as
    ``imagefolder.old-<ns>``, invisible to ``ls``. Now the next open puts it back."""
    _, src = extracted
    store = tmp_path / "store.zarr"
    shutil.copytree(src, store)
    entry = store / FAST_CKPT / "imagefolder"
    staging = entry.with_name("imagefolder.staging")
    shutil.copytree(entry, staging)  # a finished rewrite, ready to be swapped in
    x_before, _ = _entry_state(store)

    renames = []
    real_rename = Path.rename

    def crash_on_second_rename(self: Path, target: Path) -> Path:
        renames.append(self)
        if len(renames) == 2:
            raise KeyboardInterrupt("simulated crash between the two renames")
        return real_rename(self, target)

    monkeypatch.setattr(swap, "exchange", lambda a, b: False)  # the two-rename fallback
    monkeypatch.setattr(Path, "rename", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        swap.replace_dir(staging, entry)
    monkeypatch.undo()
    assert not entry.exists()  # the crash point: the entry has no name
    assert [p.name.startswith("imagefolder.old-") for p in entry.parent.iterdir()].count(True) == 1

    p = run_cli("ls", "--store", str(store), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert '"status": "complete"' in p.stdout and '"dataset": "imagefolder"' in p.stdout
    assert sorted(d.name for d in entry.parent.iterdir()) == ["imagefolder", "zarr.json"]
    np.testing.assert_array_equal(_entry_state(store)[0], x_before)


def test_swap_uses_an_atomic_exchange_where_available(tmp_path: Path) -> None:
    old, new = tmp_path / "entry", tmp_path / "entry.staging"
    old.mkdir()
    (old / "v").write_text("old")
    new.mkdir()
    (new / "v").write_text("new")
    if not swap.exchange(old, new):
        pytest.skip("no renameat2(RENAME_EXCHANGE) on this OS / file system")
    assert (old / "v").read_text() == "new" and (new / "v").read_text() == "old"
    swap.replace_dir(new, old)  # swaps back, then deletes what the staging name holds
    assert (old / "v").read_text() == "old" and not new.exists()

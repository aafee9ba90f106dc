"""Shared fixtures: tiny on-disk datasets and stores (no network, no downloads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Never let a test reach for the Hugging Face hub: fail fast instead of waiting on DNS.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAST_CKPT = "test_convnext"  # the fastest tiny timm model on this CPU (~200 img/s at 160 px)


#: The installed command, as a user runs it (error paths are tested through it).
FEATURESTORE = str(Path(sys.executable).with_name("featurestore"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEATURESTORE, *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


def run_checked(*args: str, check: int | None = 0, cwd: Path | None = None
                ) -> subprocess.CompletedProcess[str]:
    """The installed command on a 200-column terminal; asserts its exit status is ``check``
    (None: any)."""
    p = subprocess.run([FEATURESTORE, *args], cwd=cwd, env={**ENV, "COLUMNS": "200"},
                       capture_output=True, text=True, timeout=300)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserts there is exactly one, no traceback)."""
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def write_imagefolder(
    root: Path, classes: int = 3, train: int = 8, test: int = 4, size: int = 24, seed: int = 0,
    fmt: str = "JPEG",
) -> Path:
    """``<root>/{train,test}/<class>/img_NNN.jpg`` with class-dependent colours, so features of a
    random network still separate the classes a little."""
    rng = np.random.default_rng(seed)
    ext = "jpg" if fmt == "JPEG" else fmt.lower()
    for split, n in (("train", train), ("test", test)):
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.zeros((size, size, 3), np.uint8)
                base[..., c % 3] = 160
                noise = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
                Image.fromarray(base + noise).save(d / f"img_{i:03d}.{ext}", fmt)
    return root


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "images")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "store.zarr")


# -- how `pytest -n 2 --dist loadgroup` shares the files between the two workers --------------
#
# One group per test file, so a file's module-scoped fixtures (extracted stores) are built once,
# on one worker; files that share a session fixture form one group (SHARED_GROUPS). xdist 3.8
# marks a test's group by appending "@group" to its node id, which pytest >= 9.2 ignores (its
# node ids are structured: pytest-dev/pytest-xdist#1386), so every test became its own group and
# every module fixture was built on both workers. The scheduler below derives the group from the
# node id itself, and hands the groups out longest first.

#: Files that share a session fixture (``e2e_store`` of tests/app/conftest.py): one group.
#: Each declares the same ``pytest.mark.xdist_group`` (checked at collection).
SHARED_GROUPS = {
    "tests/app/test_end_to_end.py": "e2e_store",
    "tests/app/test_report_data.py": "e2e_store",
    "tests/app/test_report_figure9.py": "e2e_store",
}

#: The longest groups, longest first, as measured on the 2-core CI machine (~20-130 s each):
#: handed out first, so the last groups handed out are short ones and both workers finish
#: together. The other groups follow, most tests first (xdist's own rule, which alone left
#: 60 s files of three tests for the end while the other worker sat idle).
LONGEST_GROUPS = (
    "tests/app/test_notebooks.py",
    "tests/app/test_cli_errors.py",
    "e2e_store",
    "tests/featurestore/test_integrity.py",
    "tests/app/test_report_study_duplicates.py",
    "tests/app/test_rank.py",
    "tests/app/test_duplicates_cli.py",
    "tests/app/test_cli_ux.py",
    "tests/app/test_distributed.py",
    "tests/app/test_report_transfer.py",
    "tests/probes/test_table_significance.py",
    "tests/featurestore/test_logits_integrity.py",
    "tests/featurestore/test_offline_weights.py",
    "tests/featurestore/test_packaging.py",
)


def xdist_group_of(nodeid: str) -> str:
    """The group of a test: xdist's "@group" suffix where it still has one, else its file's
    shared group, else its file."""
    if nodeid.rfind("@") > nodeid.rfind("]"):  # the rule of xdist's LoadGroupScheduling
        return nodeid.rsplit("@", 1)[1]
    path = nodeid.split("::", 1)[0]
    return SHARED_GROUPS.get(path, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """For ``--dist loadgroup``: xdist's group scheduler, with the groups of
    :func:`xdist_group_of`, in the order the workers collected them (see below)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    config.option.loadscopereorder = False  # keep the longest-first order of the collection
    return FileGroupScheduling(config, log)  # type: ignore[arg-type]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its group (for xdist versions that read the mark) and, on an xdist
    worker, put the groups in the order the controller hands them out: :data:`LONGEST_GROUPS`
    first, then the rest by number of tests. A plain ``pytest`` run keeps the file order."""
    for item in items:
        group = xdist_group_of(item.nodeid)
        mark = item.get_closest_marker("xdist_group")
        if mark is None:
            item.add_marker(pytest.mark.xdist_group(group))
        elif (mark.args or [mark.kwargs.get("name")])[0] != group:
            raise pytest.UsageError(
                f"{item.nodeid}: xdist_group {mark.args or mark.kwargs} is not in "
                "tests/conftest.py SHARED_GROUPS; add its file there")
    if not hasattr(config, "workerinput"):
        return
    groups = [xdist_group_of(item.nodeid) for item in items]
    size: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, g in enumerate(groups):
        size[g] = size.get(g, 0) + 1
        first.setdefault(g, i)

    def rank(i: int) -> tuple[int, int, int]:
        g = groups[i]
        longest = LONGEST_GROUPS.index(g) if g in LONGEST_GROUPS else len(LONGEST_GROUPS)
        return longest, -size[g], first[g]

    order = sorted(range(len(items)), key=rank)  # stable: a group keeps its own test order
    items[:] = [items[i] for i in order]

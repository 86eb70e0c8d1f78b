"""Which device this machine can run: the one ``--device auto`` picks, and a one-line refusal of one it lacks.

``train``, ``evaluate``, ``ablation`` and ``bench`` share these checks, so that ``--device mps`` on
Linux, ``cuda:1`` on a one-GPU machine or ``meta`` fails before any data or model, in one line
that names what this machine has, and not inside ``Module.to`` or after the first batch.
"""
from __future__ import annotations

from typing import Optional, Union

import torch


def pick_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``None``/``"auto"``: CUDA when there is a GPU, else Apple's MPS, else the CPU.

    A device named outright must be one this machine can run (see :func:`check_device`).
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device torch knows: use 'auto', 'cpu', 'cuda', 'cuda:1' "
                         "or 'mps'") from None
    check_device(parsed, device)
    return parsed


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def devices_here() -> str:
    """The devices this machine can run, e.g. ``cpu, cuda:0, cuda:1``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return ", ".join(found)


def check_device(device: torch.device, asked: object = None) -> None:
    """A ValueError, naming the device (as ``asked``) and what this machine has, unless it can run here."""
    asked = str(device) if asked is None else str(asked)
    if device.type == "meta":
        raise ValueError(f"device {asked!r} holds shapes only, no values: nothing can be trained, evaluated or "
                         "timed there (build a model under `with torch.device('meta')` to check shapes); "
                         "use --device cpu or auto (device='cpu' in Python)")
    reason, instead = _why_not_usable(device)
    if reason:
        raise ValueError(f"device {asked!r} was asked for but {reason}; this machine has {devices_here()}: use "
                         f"--device {instead} or auto (device={instead!r} in Python)")


def _why_not_usable(device: torch.device) -> tuple[Optional[str], str]:
    """(why ``device`` cannot run here, or None; the device to use instead)."""
    if device.type == "cpu":
        return None, "cpu"
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "this torch sees no GPU", "cpu"
        if device.index is not None and device.index >= count:
            return f"this torch sees {count} GPU(s), numbered from cuda:0", "cuda:0"
        return None, "cpu"
    if device.type == "mps":
        if _mps_available():
            return None, "cpu"
        return ("MPS is Apple's GPU (macOS on Apple silicon, with a torch built for it) and it is not available "
                "here"), "cpu"
    try:  # xpu, xla, ipu ...: ask torch; its own errors run to a page (every dispatch key) or name no flag
        torch.empty(0, device=device)
    except Exception as error:  # NotImplementedError, AssertionError, RuntimeError, ModuleNotFoundError
        first = str(error).strip().splitlines()[0].split(". ")[0][:160] if str(error).strip() else type(error).__name__
        return f"this torch cannot make a tensor there ({first})", "cpu"
    return None, "cpu"

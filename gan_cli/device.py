"""pick_device: the one reading of a `device` setting (auto, cpu, cuda, cuda:N)."""

import torch

from gan_cli.errors import UserError


def pick_device(name: str, key: str = "device") -> torch.device:
    """auto (CUDA when present), cpu, cuda or cuda:N; one line naming `key`
    (the config key or command-line flag) for anything else."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # torch.device("gpu"): not a device type
        raise UserError(f"{key} must be cpu, cuda, cuda:N or auto, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}={name} but no CUDA device is available; use {key}=auto or {key}=cpu")
    return device

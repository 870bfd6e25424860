"""Speed options that must never break a CPU run: torch.compile, bf16
autocast and channels_last memory layout."""

import contextlib

import torch
from torch import nn


def autocast(precision: str, device: torch.device):
    """A factory of contexts for the forward passes: bf16 autocast where asked,
    else a no-op. auto is fp32: the shipped nets are too small for faster
    matrix products to pay for the casts around them (README, Speed)."""
    if precision != "bf16":
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def has_convolutions(module: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())


def prepare(module: nn.Module | None, device: torch.device, compile: bool, channels_last: str) -> None:
    """In place: channels_last for conv nets (auto: on CUDA), then compile the
    inner net. `nn.Module.compile` keeps state_dict keys unchanged, so
    checkpoints of compiled and plain runs are interchangeable."""
    if module is None:
        return
    if has_convolutions(module) and (
        channels_last is True or (channels_last == "auto" and device.type == "cuda")
    ):
        module.to(memory_format=torch.channels_last)
    if compile:
        module.net.compile()


def compile_step(optimizer: torch.optim.Optimizer | None) -> None:
    """In place: torch.compile the optimizer's update, which then runs as one
    fused pass over each group of parameters instead of one pass per
    elementwise op.
    The optimizer's state_dict is unchanged, so checkpoints stay interchangeable."""
    if optimizer is not None:
        optimizer.step = torch.compile(optimizer.step)

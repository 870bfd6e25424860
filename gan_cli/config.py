"""Checks on a composed config that Hydra cannot make: each failure is one
UserError naming the key, what it holds and what is allowed."""

import numbers

from omegaconf import DictConfig, OmegaConf

from gan_cli.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        if part not in node:
            raise UserError(f"{key} is missing from the config")
        node = node[part]
    return node


def _whole(cfg, key: str, minimum: int):
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key} must be a whole number >= {minimum}, got {value!r}")


def _positive(cfg, key: str):
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise UserError(f"{key} must be a number > 0, got {value!r}")


def validate(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"{missing[0]} needs a value: add {missing[0]}=... to the command line")
    _whole(cfg, "seed", 0)
    _whole(cfg, "latent.dim", 1)
    _whole(cfg, "train.steps", 0)
    _whole(cfg, "train.batch_size", 1)
    for key in ("log_every", "sample_every", "eval_every", "checkpoint_every", "keep_checkpoints", "grid_columns"):
        _whole(cfg, f"train.{key}", 1)
    for net in ("g", "d"):
        _positive(cfg, f"optimizer.{net}.lr")
    if "critic_steps" in cfg.objective:
        _whole(cfg, "objective.critic_steps", 1)
    if cfg.device not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}, got {cfg.device!r}")

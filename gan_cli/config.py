"""Checks on a composed config that Hydra cannot make: each failure is one
UserError naming the key, what it holds and what is allowed."""

import numbers

from omegaconf import DictConfig, OmegaConf

from gan_cli.errors import UserError

DEVICES = ("auto", "cpu", "cuda")
NONFINITE_POLICIES = ("stop", "rollback")
# Keys that may differ when a run is resumed: where it runs and how long.
# (eval.* only changes what is measured, never the training itself.)
RESUMABLE_CHANGES = ("resume", "resume_allow", "run_dir", "device", "train.steps", "eval",
                     "train.cuda_graphs")
EVAL_CLASSIFIER = ("auto", "off")


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
    if cfg.train.on_nonfinite not in NONFINITE_POLICIES:
        raise UserError(f"train.on_nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, "
                        f"got {cfg.train.on_nonfinite!r}")
    factor = cfg.train.rollback_lr_factor
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor < 1:
        raise UserError(f"train.rollback_lr_factor must be a number in (0, 1), got {factor!r}")
    _whole(cfg, "train.max_rollbacks", 0)
    if "eval" in cfg:
        if cfg.eval.classifier not in EVAL_CLASSIFIER:
            raise UserError(f"eval.classifier must be one of {', '.join(EVAL_CLASSIFIER)}, "
                            f"got {cfg.eval.classifier!r}")
        _whole(cfg, "eval.num_samples", 2)      # a covariance needs two images
    graphs = cfg.train.get("cuda_graphs", "auto")
    if not (graphs is True or graphs is False or graphs == "auto"):
        raise UserError(f"train.cuda_graphs must be auto, true or false, got {graphs!r}")
    if cfg.device not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}, got {cfg.device!r}")


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def changed_keys(saved: dict, current: dict, allowed: list[str]) -> list[str]:
    """Dotted keys whose values differ, less those allowed to change on resume
    (a listed key allows everything under it)."""
    old, new = _flatten(saved), _flatten(current)
    free = [*RESUMABLE_CHANGES, *allowed]
    return sorted(k for k in old.keys() | new.keys()
                  if old.get(k, "<absent>") != new.get(k, "<absent>")
                  and not any(k == a or k.startswith(a + ".") for a in free))

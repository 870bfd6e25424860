"""The resume decision: which checkpoint a run continues from (resume=false,
true or PATH), which folder it writes, and the state it loads."""

from pathlib import Path

from omegaconf import DictConfig

from gan_cli.config.checks import changed_keys, resumes
from gan_cli.errors import UserError
from gan_cli.output.layout import CHECKPOINTS, LAST, STARTED
from gan_cli.run.checkpoint import find_checkpoint, load_resumable


def _resume_source(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to continue from, or None for a fresh run."""
    resume = cfg.resume
    if not resumes(resume):
        if (run_dir / CHECKPOINTS / LAST).exists():
            raise UserError(
                f"{run_dir} already holds a run (checkpoints/last.pt); continue it "
                f"with resume=true, or choose another {_folder_key()}"
            )
        if found := [name for name in STARTED if (run_dir / name).exists()]:
            raise UserError(
                f"{run_dir} already holds an earlier run's files ({', '.join(found)}) but no checkpoint "
                f"to continue from; choose another {_folder_key()}, or move them away"
            )
        return None
    if resume is True or resume == "true":
        if not (run_dir / CHECKPOINTS / LAST).exists():
            raise UserError(
                f"resume=true but {run_dir} holds no checkpoints/last.pt; "
                f"give the run with hydra.run.dir=... or resume=PATH"
            )
        return run_dir / CHECKPOINTS / LAST
    return find_checkpoint(resume)


def check_same_config(source: Path, saved: dict, current: dict, allowed) -> None:
    """A resume continues the run its checkpoint holds: keys that differ
    from the saved config, beyond those allowed, are refused in one line."""
    changed = changed_keys(saved, current, allowed=list(allowed))
    if changed:
        raise UserError(
            f"cannot resume {source}: the config differs in {', '.join(changed)}; "
            f"restore them, or allow with resume_allow=[{','.join(changed)}]"
        )


def _run_dir_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint.parent


def _folder_written(cfg: DictConfig, run_dir: Path) -> Path:
    """The folder this run writes: its own, or for resume=PATH that checkpoint's run."""
    if not resumes(cfg.resume) or cfg.resume in (True, "true"):
        return run_dir
    return _run_dir_of(find_checkpoint(cfg.resume))


def resume_state(cfg: DictConfig, run_dir: Path) -> tuple[Path | None, dict | None]:
    """(checkpoint to continue from, its loaded state), or (None, None) for a fresh run."""
    source = _resume_source(cfg, run_dir)
    return source, (load_resumable(source) if source is not None else None)


def _folder_key() -> str:
    """The setting that names a run's folder: a sweep's jobs sit under hydra.sweep.dir."""
    from hydra.core.hydra_config import HydraConfig  # set only inside a Hydra job
    from hydra.types import RunMode

    in_sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return "hydra.sweep.dir" if in_sweep else "hydra.run.dir"

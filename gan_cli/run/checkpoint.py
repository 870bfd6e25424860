"""Checkpoints: a plain dict of state dicts, the step, and the resolved config.

Written atomically (temporary file, fsync, rename) so a crash never leaves a
half-written file under a checkpoint's name; read with weights_only=True so a
checkpoint can never run code.
"""

import os
from pathlib import Path

import torch

from gan_cli.config.build import build_models, load_weights
from gan_cli.config.checks import ADDED_KEYS, added_dataset_keys
from gan_cli.errors import UserError
from gan_cli.output.files import fsync_dir, save_atomic
from gan_cli.output.layout import CHECKPOINTS, LAST
from gan_cli.output.step_files import step_files, step_name, step_of
from gan_cli.training.ema import shows_average

FORMAT = "gan-cli/1"
REQUIRED = ("format", "generator", "step", "config", "model_args")


class Checkpointer:
    """checkpoints/step_<N>.pt on a cadence (newest `keep` kept) and last.pt
    always pointing at the newest state."""

    def __init__(self, folder: Path, keep: int):
        self.folder = Path(folder)
        self.keep = keep

    @property
    def last(self) -> Path:
        return self.folder / LAST

    def save(self, state: dict, step: int, keep_step_file: bool) -> Path:
        """The newest state (an Experiment snapshot, stamped with FORMAT) as
        step_<step>.pt (when kept) and last.pt. A write that fails raises one
        line naming the file; the checkpoints already on disk stay loadable,
        and nothing is pruned."""
        kept = self.last.exists()
        state = {"format": FORMAT, **state}
        try:
            if not keep_step_file:
                save_atomic(state, self.last)
                return self.last
            path = self.folder / step_name(step, ".pt")
            save_atomic(state, path)
            _replace_with_link(path, self.last)
        except UserError as error:
            if not kept:
                raise
            raise UserError(f"{error}; last.pt still holds the previous checkpoint") from error
        self._prune()
        return path

    def _prune(self) -> None:
        steps = step_files(self.folder, ".pt")
        for old in steps[: -self.keep]:
            old.unlink(missing_ok=True)


def _replace_with_link(source: Path, target: Path) -> None:
    """Make `target` a second name for `source`'s bytes, atomically."""
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError:  # file systems without hard links, a full folder
        tmp.unlink(missing_ok=True)
        save_atomic(torch.load(source, weights_only=True), target)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run dir's checkpoints/last.pt (given the
    checkpoints folder itself, its last.pt)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / CHECKPOINTS / LAST
        if path.name == CHECKPOINTS and not candidate.exists():
            candidate = path / LAST
        if not candidate.is_file():
            raise UserError(f"no checkpoint in {path} (looked for {candidate})")
        return candidate
    if not path.is_file():
        raise UserError(f"no such run dir or checkpoint: {path}")
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint's state, its config upgraded (see `upgrade`)."""
    file = find_checkpoint(path)
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickled code, ...
        raise UserError(
            f"{file} is not a readable checkpoint: truncated, corrupt, or not "
            f"written by gan-cli ({type(exc).__name__})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(k not in state for k in REQUIRED):
        raise UserError(f"{file} is not a gan-cli checkpoint (a torch file, but not one this tool wrote)")
    upgrade(state["config"])
    return state


def upgrade(config: dict) -> dict:
    """In place, and returned: a saved config given every key added since it
    was written (config.checks.ADDED_KEYS, and its data set loader's `added`:
    config.checks.added_dataset_keys), with the value its run had. Done
    once, as the checkpoint loads, so no reader of a saved config needs a
    default of its own."""
    for dotted, value in ADDED_KEYS.items():
        *parents, key = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(key, value)
    return added_dataset_keys(config)


def newest_readable(folder: str | os.PathLike, skip: str | os.PathLike | None = None) -> Path | None:
    """The step_<N>.pt of highest N in `folder` that loads as a gan-cli
    checkpoint (other than `skip`), or None. Each candidate is loaded in
    full: a truncated file can still have an intact start."""
    skipped = Path(skip).resolve() if skip is not None else None
    for path in reversed(step_files(folder, ".pt")):
        if path.resolve() == skipped:
            continue
        try:
            load_checkpoint(path)
        except UserError:
            continue
        return path
    return None


def load_resumable(path: str | os.PathLike, map_location="cpu") -> dict:
    """load_checkpoint for resuming. When the file does not load, the one
    line also names the newest readable step_<N>.pt beside it and the exact
    resume=... that continues from it. It does not switch to that file by
    itself: that would silently drop the steps after it (and their curves),
    which the user should choose."""
    try:
        return load_checkpoint(path, map_location)
    except UserError as error:
        file = find_checkpoint(path)
        raise UserError(f"cannot resume: {error}; {resume_hint(file.parent, skip=file)}") from error


def resume_hint(folder: str | os.PathLike, skip: str | os.PathLike | None = None) -> str:
    """What to resume from instead: the newest readable step file, or that there is none."""
    found = newest_readable(folder, skip)
    if found is None:
        return f"no readable step_<N>.pt in {Path(folder)} either: start afresh in another hydra.run.dir"
    step = step_of(found)
    return f"the newest readable checkpoint is step {step}: continue with resume={found.resolve()}"


def generator_from_checkpoint(state: dict, device="cpu", ema: bool | None = None) -> torch.nn.Module:
    """The checkpoint's G. ema=None: its moving average where the run kept one
    and evaluated with it (eval.use_ema), else the trained G; True: the
    average (refused if there is none); False: the trained G."""
    average = state.get("generator_ema")  # absent from checkpoints made before the average
    if ema is None:
        ema = shows_average(state["config"], average is not None)
    elif ema and average is None:
        raise UserError(
            "this checkpoint holds no moving average of G (its run had train.ema=0); "
            "use the trained G (drop --ema)"
        )
    generator, _ = build_models(state["config"], state["model_args"])
    load_weights(generator, average if ema else state["generator"], "G's moving average" if ema else "G")
    return generator.to(device).eval()


def discriminator_from_checkpoint(state: dict, device="cpu") -> torch.nn.Module | None:
    """The checkpoint's D in eval mode, or None for an objective without one."""
    if state.get("discriminator") is None:
        return None
    _, discriminator = build_models(state["config"], state["model_args"])
    load_weights(discriminator, state["discriminator"], "D")
    return discriminator.to(device).eval()

"""Checkpoints: a plain dict of state dicts, the step, and the resolved config.

Written atomically (temporary file, fsync, rename) so a crash never leaves a
half-written file under a checkpoint's name; read with weights_only=True so a
checkpoint can never run code.
"""

import os
import re
import tempfile
from pathlib import Path

import torch
from hydra.utils import instantiate

from gan_cli.errors import UserError

FORMAT = "gan-cli/1"
REQUIRED = ("format", "generator", "step", "config", "model_args")


def save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Checkpointer:
    """checkpoints/step_<N>.pt on a cadence (newest `keep` kept) and last.pt
    always pointing at the newest state."""

    def __init__(self, folder: Path, keep: int):
        self.folder = Path(folder)
        self.keep = keep

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    def save(self, state: dict, step: int, keep_step_file: bool) -> Path:
        if not keep_step_file:
            save_atomic(state, self.last)
            return self.last
        path = self.folder / f"step_{step}.pt"
        save_atomic(state, path)
        _replace_with_link(path, self.last)
        self._prune()
        return path

    def _prune(self) -> None:
        steps = sorted(self.folder.glob("step_*.pt"), key=_step_of)
        for old in steps[:-self.keep]:
            old.unlink(missing_ok=True)


def _step_of(path: Path) -> int:
    match = re.fullmatch(r"step_(\d+)\.pt", path.name)
    return int(match.group(1)) if match else -1


def _replace_with_link(source: Path, target: Path) -> None:
    """Make `target` a second name for `source`'s bytes, atomically."""
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError:                           # file systems without hard links
        save_atomic(torch.load(source, weights_only=True), target)


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run dir's checkpoints/last.pt."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / "last.pt"
        if not candidate.is_file():
            raise UserError(f"no checkpoint in {path} (looked for {candidate})")
        return candidate
    if not path.is_file():
        raise UserError(f"no such run dir or checkpoint: {path}")
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    file = find_checkpoint(path)
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:   # truncated zip, random bytes, pickled code, ...
        raise UserError(f"{file} is not a readable checkpoint: truncated, corrupt, or not "
                        f"written by gan-cli ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT \
            or any(k not in state for k in REQUIRED):
        raise UserError(f"{file} is not a gan-cli checkpoint (a torch file, but not one this tool wrote)")
    return state


def build_models(config: dict, model_args: dict):
    """(G, D) from a resolved config and the data facts recorded at training time."""
    return instantiate(config["model"], **model_args)


def generator_from_checkpoint(state: dict, device="cpu", ema: bool | None = None) -> torch.nn.Module:
    """The checkpoint's G. ema=None: its moving average where the run kept one
    and evaluated with it (eval.use_ema), else the trained G; True: the
    average (refused if there is none); False: the trained G."""
    average = state.get("generator_ema")
    if ema is None:
        ema = average is not None and (state["config"].get("eval") or {}).get("use_ema", True)
    elif ema and average is None:
        raise UserError("this checkpoint holds no moving average of G (its run had train.ema=0); "
                        "use the trained G (drop --ema)")
    generator, _ = build_models(state["config"], state["model_args"])
    generator.load_state_dict(average if ema else state["generator"])
    return generator.to(device).eval()

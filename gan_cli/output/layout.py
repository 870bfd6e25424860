"""What a run folder holds, by name: the one list that the writers use and
that a folder is checked against before a run starts writing into it."""

import argparse
from pathlib import Path

from gan_cli.errors import UserError, output_file

CHECKPOINTS = "checkpoints"
LAST = "last.pt"  # in CHECKPOINTS: the newest state
SAMPLES = "samples"
EVENTS = "tb"
HYDRA = ".hydra"
METRICS = "metrics.json"
LOG = "train.log"
LOCK = ".gan-cli.lock"  # run/lock.py

# Each entry, and what it holds; a folder's or a file's place taken by the
# other kind would fail at its first write, after minutes of training.
FOLDERS = {
    CHECKPOINTS: "its checkpoints",
    SAMPLES: "its pictures",
    EVENTS: "its TensorBoard events",
    HYDRA: "Hydra's record of its config",
}
FILES = {METRICS: "its final metrics", LOG: "its log"}
# What a run writes once it has started; Hydra's record and log alone are
# also left by a command refused after Hydra began the job, which is all a
# folder holds before the run writes anything of its own.
STARTED = (CHECKPOINTS, SAMPLES, EVENTS, METRICS)
UNSTARTED = {HYDRA, LOG, LOCK}


def check_run_folder(run_dir: Path) -> None:
    """One line naming the first entry of `run_dir` that is of the wrong
    kind (a file where the run keeps a folder, or the reverse)."""
    for name, holds in FOLDERS.items():
        entry = Path(run_dir) / name
        if entry.exists() and not entry.is_dir():
            raise UserError(f"{entry} is a file, where the run keeps {holds} (a folder); move it away")
    for name, holds in FILES.items():
        entry = Path(run_dir) / name
        if entry.is_dir():
            raise UserError(f"{entry} is a folder, where the run keeps {holds} (a file); move it away")


def is_run_folder(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in FOLDERS) or (folder / METRICS).is_file()


def run_owning(path: Path) -> Path | None:
    """The run folder `path` is one of the own files of (its metrics or log,
    or anything in its checkpoints, pictures, events or Hydra's record), or None."""
    path = Path(path).absolute()
    if path.name in FILES and is_run_folder(path.parent):
        return path.parent
    for folder in path.parents:
        if folder.name in FOLDERS and is_run_folder(folder.parent):
            return folder.parent
    return None


def safe_output_file(text: str) -> Path:
    """argparse type of an option naming a file a command writes (--out,
    --grid, --json, --plot): errors.output_file's checks, and no file of a
    run's own (a checkpoint replaced by samples would lose the run)."""
    path = output_file(text)
    if (run := run_owning(path)) is not None:
        raise argparse.ArgumentTypeError(f"{text} is one of the files of the run in {run}; write elsewhere")
    return path


def check_not_the_source(source, outputs: dict) -> None:
    """A command's output files ({option: path or None}) must not be the
    checkpoint file it reads (`source`, as given), wherever that lies."""
    for option, path in outputs.items():
        if path is not None and Path(source).is_file() and Path(path).resolve() == Path(source).resolve():
            raise UserError(f"{option} names {source}, the checkpoint read; write elsewhere")

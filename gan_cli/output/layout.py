"""What a run folder holds, by name: the one list that the writers use and
that a folder is checked against before a run starts writing into it."""

from pathlib import Path

from gan_cli.errors import UserError

CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
EVENTS = "tb"
METRICS = "metrics.json"
LOG = "train.log"

# Each entry, and what it holds; a folder's or a file's place taken by the
# other kind would fail at its first write, after minutes of training.
FOLDERS = {
    CHECKPOINTS: "its checkpoints",
    SAMPLES: "its pictures",
    EVENTS: "its TensorBoard events",
    ".hydra": "Hydra's record of its config",
}
FILES = {METRICS: "its final metrics", LOG: "its log"}


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

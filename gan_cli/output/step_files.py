"""Names of the files a run folder holds on a cadence: checkpoints/step_<N>.pt
and samples/step_<N>.png. Written and read here only, so the pattern lives
in one place."""

import re
from pathlib import Path

_STEP = re.compile(r"step_(\d+)(\.\w+)")


def step_name(step: int, suffix: str) -> str:
    """step_name(500, ".png") == "step_500.png"."""
    return f"step_{step}{suffix}"


def step_of(path: Path) -> int:
    """The N of a step_<N>.<suffix> file; -1 for any other name."""
    match = _STEP.fullmatch(Path(path).name)
    return int(match.group(1)) if match else -1


def step_files(folder: Path, suffix: str) -> list[Path]:
    """Every step_<N><suffix> in `folder`, in step order (none if it is missing)."""
    folder = Path(folder)
    found = folder.glob(f"step_*{suffix}") if folder.is_dir() else []
    return sorted((p for p in found if p.suffix == suffix and step_of(p) >= 0), key=step_of)

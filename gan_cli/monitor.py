"""What a run shows while it trains: TensorBoard scalars and images, sample
grids on disk, and a progress bar (or a log line when output is not a terminal)."""

import sys
import time
from pathlib import Path

import torch


class Meter:
    """Running sums kept on the device: adding a loss never waits for the
    device; `means()` reads them back once per logging interval."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach()
            if key in self.sums:
                self.sums[key] += value
                self.counts[key] += 1
            else:
                self.sums[key] = value.clone()
                self.counts[key] = 1

    def all_finite(self) -> bool:
        """True when no loss since the last `means()` was inf or nan (one sync)."""
        if not self.sums:
            return True
        return bool(torch.isfinite(torch.stack([v.float() for v in self.sums.values()])).all())

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.sums = dict(state.get("sums", {}))
        self.counts = dict(state.get("counts", {}))

    def means(self) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k].float() for k in keys]).tolist()   # one sync
        means = {k: v / self.counts[k] for k, v in zip(keys, values)}
        self.sums.clear()
        self.counts.clear()
        return means


class Monitor:
    def __init__(self, run_dir: Path, total_steps: int, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter   # late: heavy import

        self.run_dir = Path(run_dir)
        self.samples_dir = self.run_dir / "samples"
        # A resumed run drops the events an earlier process wrote after the
        # checkpoint it resumes from (steps > start_step): no duplicate points.
        self.writer = SummaryWriter(str(self.run_dir / "tb"),
                                    purge_step=start_step + 1 if start_step else None)
        self.total = total_steps
        self.interactive = sys.stderr.isatty()
        self.last_time = time.perf_counter()
        self.last_step = start_step

    def scalars(self, step: int, values: dict[str, float], throughput: bool = True) -> float:
        """Log scalars plus throughput since the last call; returns steps/s."""
        if not throughput:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            return 0.0
        now = time.perf_counter()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.add_scalar("perf/steps_per_sec", rate, step)
        return rate

    def image(self, tag: str, step: int, image: torch.Tensor, file_name: str) -> Path:
        """image: [C, H, W] floats in [0, 1]; also written as samples/<file_name>."""
        from torchvision.utils import save_image

        self.writer.add_image(tag, image, step)
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        path = self.samples_dir / file_name
        save_image(image, path)
        return path

    def progress(self, step: int, values: dict[str, float], rate: float) -> None:
        shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        if self.interactive:
            width = 24
            done = int(width * step / max(self.total, 1))
            bar = "#" * done + "-" * (width - done)
            print(f"\r[{bar}] {step}/{self.total}  {shown}  {rate:.1f} it/s\033[K",
                  end="", file=sys.stderr, flush=True)
        else:
            print(f"step {step}/{self.total}  {shown}  {rate:.1f} it/s", file=sys.stderr, flush=True)

    def restart(self, step: int) -> None:
        """Continue from an earlier step (after a rollback): TensorBoard drops
        the events past it."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer.close()
        self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=step + 1)
        self.last_time, self.last_step = time.perf_counter(), step

    def close(self) -> None:
        if self.interactive:
            print(file=sys.stderr)
        self.writer.close()

"""What a run shows while it trains: TensorBoard scalars and images, sample
grids on disk, and a progress bar (or a log line when output is not a terminal)."""

import io
import math
import sys
import time
from pathlib import Path

import torch

from gan_cli.config.checks import parse_override
from gan_cli.errors import writing
from gan_cli.output.files import atomic_write
from gan_cli.output.layout import EVENTS, SAMPLES
from gan_cli.output.log import log
from gan_cli.output.pictures import save_png


class Monitor:
    def __init__(self, run_dir: Path, total_steps: int, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter  # late: heavy import

        self.run_dir = Path(run_dir)
        self.events = self.run_dir / EVENTS
        self.samples_dir = self.run_dir / SAMPLES
        # A resumed run drops the events an earlier process wrote after the
        # checkpoint it resumes from (steps > start_step): no duplicate points.
        self.writer = SummaryWriter(str(self.events), purge_step=start_step + 1 if start_step else None)
        self.total = total_steps
        self.interactive = sys.stderr.isatty()
        self.bar = None  # the terminal's progress bar, once shown
        self.last_shown = start_step
        self.last_time = time.perf_counter()
        self.last_step = start_step
        self.logged: set[str] = set()  # scalar tags written so far

    def scalars(self, step: int, values: dict[str, float], throughput: bool = True) -> float:
        """Log scalars plus throughput since the last call; returns steps/s."""
        with writing(self.events):
            return self._scalars(step, values, throughput)

    def _scalars(self, step: int, values: dict[str, float], throughput: bool) -> float:
        self.logged.update(values)
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
        self.logged.add("perf/steps_per_sec")
        return rate

    def image(self, tag: str, step: int, image: torch.Tensor, file_name: str) -> Path:
        """image: [C, H, W] floats in [0, 1]; also written as samples/<file_name>.
        Encoded once: TensorBoard gets the PNG file's own bytes."""
        encoded = io.BytesIO()
        save_png(image, encoded)
        png = encoded.getvalue()
        with writing(self.events):
            self.writer._get_file_writer().add_summary(_image_summary(tag, png, image.shape), step)
        path = self.samples_dir / file_name
        # no fsync: a picture lost to a power cut can be drawn again (gan-sample)
        atomic_write(path, lambda file: file.write(png), durable=False)
        return path

    def progress(self, step: int, values: dict[str, float], rate: float) -> None:
        """A log line (train.log, and stderr when it is not a terminal) with
        the time left; on a terminal, a progress bar with rate and ETA instead."""
        shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        left = (self.total - step) / rate if rate > 0 else float("inf")
        line = f"step {step}/{self.total}  {shown}  {rate:.1f} it/s  eta {_duration(left)}"
        if self.interactive:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=self.total,
                    initial=self.last_shown,
                    file=sys.stderr,
                    unit="step",
                    dynamic_ncols=True,
                    leave=True,
                )
            self.bar.update(step - self.last_shown)
            self.bar.set_postfix_str(shown, refresh=True)
        self.last_shown = step
        log.info(line, extra={"shown_on_terminal": self.interactive})

    def hparams(self, params: dict, metrics: dict[str, float], step: int) -> None:
        """TensorBoard's HPARAMS tab: this run's settings against its final
        metrics (finite ones). Written into the run's own event folder, not
        add_hparams' timestamped subfolder, so a sweep shows one row per job.
        The tab shows each metric's last logged point, so metrics are named by
        their curves' tags (steps_per_sec by perf/steps_per_sec); nothing new
        is logged, and a resumed run's curves stay those of a straight run."""
        from torch.utils.tensorboard.summary import hparams

        tagged = {}
        for key, value in metrics.items():
            tag = (
                key
                if key in self.logged
                else next((t for t in sorted(self.logged) if t.endswith("/" + key)), None)
            )
            if tag and isinstance(value, (int, float)) and math.isfinite(value):
                tagged[tag] = float(value)
        params = {
            k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in params.items()
            if v is not None
        }
        with writing(self.events):
            writer = self.writer._get_file_writer()
            for summary in hparams(params, tagged):
                writer.add_summary(summary, step)
            self.writer.flush()

    def restart(self, step: int) -> None:
        """Continue from an earlier step (after a rollback): TensorBoard drops
        the events past it."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer.close()
        self.writer = SummaryWriter(str(self.events), purge_step=step + 1)
        self.last_time, self.last_step = time.perf_counter(), step
        self.last_shown = step
        if self.bar is not None:
            self.bar.n = step
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        with writing(self.events):
            self.writer.close()


def _image_summary(tag: str, png: bytes, shape: torch.Size):
    """TensorBoard's image summary of an encoded PNG of a [C, H, W] picture
    (save_png writes one channel as three), as add_image would write it."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    channels, height, width = shape
    picture = Summary.Image(height=height, width=width, colorspace=max(channels, 3), encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=tag, image=picture)])


def _duration(seconds: float) -> str:
    """4h05m, 12m30s or 45s."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run_hparams(cfg) -> dict:
    """A run's settings for the HPARAMS tab: a few key values, updated with the
    command line's overrides (in a sweep, what was swept) when Hydra runs it."""
    from omegaconf import OmegaConf

    keys = [
        "objective.name",
        "model.name",
        "dataset.name",
        "optimizer.g.lr",
        "optimizer.d.lr",
        "objective.critic_steps",
        "train.steps",
        "train.batch_size",
        "train.augment",
        "latent.dim",
        "latent.distribution",
        "seed",
        "train.ema",
        "train.lr_decay",
        "model.spectral_norm",
        "objective.r1",
        "objective.r2",
        "objective.mode_seeking",
        "objective.r1_every",
        "objective.pack",
        "eval.sampler",
    ]
    if cfg.latent.distribution == "mixture":
        keys += ["latent.components", "latent.component_std"]
    # None for a component's own key it lacks (mse has no critic_steps)
    params = {k: OmegaConf.select(cfg, k, default=None) for k in keys}
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # run(cfg) called without Hydra
        overrides = []
    for key, value in filter(None, map(parse_override, overrides)):
        if key.startswith("hydra.") or key in ("run_dir", "resume", "resume_allow"):
            continue
        params[key] = _number_or_text(value)
    return params


def _number_or_text(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


# The metrics a summary shows, in this order, where a run has them; a floor
# (what real data scores) is shown beside its metric.
SUMMARY = (
    "eval/fd",
    "eval/classes_present",
    "eval/classes_kl",
    "eval/modes",
    "eval/modes_kl",
    "eval/confidence",
    "eval/class_accuracy",
    "eval/precision",
    "eval/recall",
    "eval/fid_inception",
    "toy/modes",
    "toy/high_quality",
    "toy/reverse_kl",
    "toy/w1",
    "toy/precision",
    "toy/recall",
)


# A metric's real-vs-real value, shown beside it: what a generator as good as the data scores.
FLOORS = {
    "eval/fd": "eval/fd_floor",
    "toy/w1": "toy/w1_floor",
    **{f"{room}/{k}": f"{room}/{k}_floor" for room in ("eval", "toy") for k in ("precision", "recall")},
}


def summary(run_dir: Path, final: dict[str, float]) -> str:
    """The end of a run: where it is, how good it got, how to look at it."""
    losses = [k for k in final if k.startswith("loss/") or k.endswith("_estimate") or k == "mse"]
    # eval.sampler: each metric of samples refined by D beside G's own
    quality = [q for k in SUMMARY for q in (k, k + "_refined") if q in final]

    def shown(key):
        floor = f" (floor {final[FLOORS[key]]:.4g})" if FLOORS.get(key) in final else ""
        return f"{key} {final[key]:.4g}{floor}"

    lines = [f"run finished: {run_dir}"]
    if quality:
        lines.append("  quality: " + ", ".join(shown(k) for k in quality))
    if "refine/acceptance" in final:
        d_evals = final["refine/d_evals_per_sample"]  # 0 for a sampler that reads G alone (jacobian)
        lines.append(
            f"  refining cost: acceptance {final['refine/acceptance']:.3g}, "
            + (f"{d_evals:.3g} D evaluations and " if d_evals else "")
            + f"{final['refine/seconds_per_1000']:.3g} s per 1,000 samples"
        )
    if losses:
        lines.append("  last losses: " + ", ".join(shown(k) for k in losses))
    lines += [
        f"  curves and pictures: tensorboard --logdir {run_dir}",
        f"  samples: gan-sample {run_dir} --num 64 --grid {Path(run_dir) / 'grid.png'}",
    ]
    return "\n".join(lines)

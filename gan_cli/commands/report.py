"""gan-report: one table of a sweep's final metrics, grouped by what was swept.

Every job folder of a multirun (one with .hydra/overrides.yaml and
metrics.json) is read; jobs are grouped by each override key whose value
differs between jobs, except `seed`, and each metric is shown as mean ± std
over the group (the seeds). The table is printed and written as report.md
and report.csv; --plot adds one picture of every job's curves (from its
TensorBoard events) and last sample grid.
"""

import csv
import io
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from gan_cli.config.checks import parse_override
from gan_cli.errors import OneLineParser, UserError, command, output_folder
from gan_cli.output.files import atomic_write, write_text_atomic
from gan_cli.output.layout import EVENTS, HYDRA, METRICS, SAMPLES, safe_output_file
from gan_cli.output.step_files import step_files, step_of

IGNORED_KEYS = {"seed", "run_dir", "resume", "resume_allow"}
PER_CLASS = re.compile(r"/\d+$")
# The same for every job on a data set: eval/fd_floor printed once above, the
# other real-vs-real floors left to metrics.json and TensorBoard.
LOGGED_ONLY = {
    "eval/fd_floor",
    "eval/kid_floor",
    "toy/w1_floor",
    *(
        f"{room}/{k}_floor"
        for room in ("eval", "toy")
        for k in ("precision", "recall", "density", "coverage")
    ),
}


@dataclass
class Job:
    folder: Path
    overrides: dict[str, str]
    metrics: dict[str, float]


def find_jobs(folder: Path) -> tuple[list[Job], list[Path]]:
    """(jobs with metrics, job folders without metrics.json: failed or running)."""
    import yaml

    jobs, unfinished = [], []
    for overrides_file in sorted(folder.rglob(f"{HYDRA}/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        metrics_file = job_dir / METRICS
        if not metrics_file.is_file():
            unfinished.append(job_dir)
            continue
        try:
            given = yaml.safe_load(overrides_file.read_text()) or []
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise UserError(
                f"{overrides_file} is not valid YAML: {getattr(exc, 'problem', None) or exc}{where}"
            ) from None
        if not isinstance(given, list):
            raise UserError(f"{overrides_file} is not a list of overrides, as Hydra writes it")
        pairs = (parse_override(str(o)) for o in given)
        overrides = {k: v for k, v in (p for p in pairs if p) if not k.startswith("hydra.")}
        try:
            metrics = json.loads(metrics_file.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{metrics_file} is not valid JSON: {exc}") from None
        if not isinstance(metrics, dict):
            raise UserError(f"{metrics_file} is not a JSON object of metrics, as gan-train writes it")
        jobs.append(
            Job(job_dir, overrides, {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        )
    return jobs, unfinished


def _sort_key(value: str):
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def swept_keys(jobs: list[Job]) -> tuple[list[str], dict[str, str]]:
    """(keys whose value differs between jobs, less seed; keys set alike in every job)."""
    keys = sorted({k for j in jobs for k in j.overrides} - IGNORED_KEYS)
    swept, fixed = [], {}
    for key in keys:
        values = {j.overrides.get(key, "") for j in jobs}
        if len(values) > 1:
            swept.append(key)
        else:
            fixed[key] = values.pop()
    return swept, fixed


HEADLINE = [
    "eval/fd",
    "eval/precision",
    "eval/recall",
    "eval/class_accuracy",
    "eval/classes_present",
    "eval/classes_kl",
    "eval/confidence",
]


REFINED = "_refined"  # eval.sampler: a metric of samples refined by D (evaluation/refine.py)


def default_metrics(jobs: list[Job]) -> list[str]:
    """Every metric but the per-class ones (eval/class_accuracy/3, ...) and
    constants; the eval/* headline first, then the rest by name, each
    metric of refined samples right after G's own."""
    names = {k for j in jobs for k in j.metrics if not PER_CLASS.search(k)} - LOGGED_ONLY

    def order(key: str):
        base = key.removesuffix(REFINED)
        return (HEADLINE.index(base) if base in HEADLINE else len(HEADLINE), base, key != base)

    return sorted(names, key=order)


def summarise(values: list[float]) -> tuple[float, float | None]:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Table:
    keys: list[str]
    metrics: list[str]
    rows: list[dict]  # {"group": {key: value}, "n": int, "stats": {metric: (mean, std, n)}}
    fixed: dict[str, str]
    floor: float | None

    def cell(self, metric: str, row: dict) -> str:
        mean, std, n = row["stats"][metric]
        if n == 0:
            return "–"
        # Jobs whose value is missing or not finite (a diverged run, an edited file) are counted.
        of = f" ({n} of {row['n']})" if n < row["n"] else ""
        return (f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}") + of

    def header(self) -> list[str]:
        return [*self.keys, "n", *self.metrics]

    def body(self) -> list[list[str]]:
        return [
            [*(r["group"][k] for k in self.keys), str(r["n"]), *(self.cell(m, r) for m in self.metrics)]
            for r in self.rows
        ]

    def text(self) -> str:
        rows = [self.header(), *self.body()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(self.notes() + lines)

    def markdown(self) -> str:
        out = [f"_{n}_\n" for n in self.notes()]
        out.append("| " + " | ".join(self.header()) + " |")
        out.append("|" + "|".join(" --- " for _ in self.header()) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.body()]
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*self.keys, "n", *(f"{m}_{s}" for m in self.metrics for s in ("mean", "std", "n"))])
        for r in self.rows:
            cells = []
            for m in self.metrics:
                mean, std, n = r["stats"][m]
                cells += ["" if n == 0 else repr(mean), "" if std is None else repr(std), n]
            writer.writerow([*(r["group"][k] for k in self.keys), r["n"], *cells])
        return buffer.getvalue()

    def notes(self) -> list[str]:
        notes = []
        if self.fixed:
            notes.append("fixed: " + " ".join(f"{k}={v}" for k, v in self.fixed.items()))
        if self.floor is not None:
            notes.append(f"eval/fd floor (real held-out vs real train): {self.floor:.4g}")
        notes.append(
            "mean ± std over seeds (sample std; none shown for a single job); "
            "(k of n): only k of the group's n jobs have a finite value"
        )
        return notes


def build_table(jobs: list[Job], metrics: list[str] | None = None) -> Table:
    keys, fixed = swept_keys(jobs)
    metrics = metrics or default_metrics(jobs)
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.overrides.get(k, "") for k in keys), []).append(job)
    rows = []
    for group in sorted(groups, key=lambda g: [_sort_key(v) for v in g]):
        members = groups[group]
        stats = {}
        for m in metrics:
            values = [j.metrics[m] for j in members if m in j.metrics]
            mean, std = summarise(values)
            stats[m] = (mean, std, sum(math.isfinite(v) for v in values))
        rows.append({"group": dict(zip(keys, group, strict=True)), "n": len(members), "stats": stats})
    floors = {j.metrics["eval/fd_floor"] for j in jobs if "eval/fd_floor" in j.metrics}
    floor = floors.pop() if len(floors) == 1 else None
    return Table(keys, metrics, rows, fixed, floor)


# --- the plot ------------------------------------------------------------------
PANEL_COLUMNS = 3  # curve panels per row
IMAGE_COLUMNS = 6  # sample grids per row
LINE_STYLES = ["-", "--", ":", "-."]  # the seeds of one group: one colour, these styles
MARKED_POINTS = 30  # curves with at most this many points show each as a dot


def read_curves(job_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """{tag: (steps, values)} of every scalar in <job>/tb, as TensorBoard shows
    them (a resumed run's purged points dropped); {} without events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = job_dir / EVENTS
    if not folder.is_dir():
        return {}
    # Scalars only: images and the HPARAMS record are not needed here.
    acc = EventAccumulator(
        str(folder), size_guidance={"scalars": 0, "images": 1, "tensors": 1, "histograms": 1, "audio": 1}
    )
    acc.Reload()
    curves = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        curves[tag] = ([e.step for e in events], [e.value for e in events])
    return curves


def last_sample(job_dir: Path) -> tuple[int, Path] | None:
    """(N, samples/step_N.png) of the highest N, or None."""
    found = step_files(job_dir / SAMPLES, ".png")
    return (step_of(found[-1]), found[-1]) if found else None


def curve_tag(metric: str, tags) -> str | None:
    """The TensorBoard tag of a metrics.json key: the same name, or the tag
    it is the last part of (steps_per_sec is perf/steps_per_sec)."""
    if metric in tags:
        return metric
    return next((t for t in sorted(tags) if t.endswith("/" + metric)), None)


def job_labels(jobs: list[Job], keys: list[str]) -> list[str]:
    """Each job's name in the legend: its swept values, with the seed when
    seeds differ; the folder name when nothing tells them apart."""
    seeds = {j.overrides.get("seed") for j in jobs}
    shown = keys + (["seed"] if len(seeds) > 1 else [])
    labels = [" ".join(f"{k}={j.overrides[k]}" for k in shown if k in j.overrides) for j in jobs]
    if len(set(labels)) < len(labels) or not shown:
        return [j.folder.name for j in jobs]
    return labels


def plot_report(jobs: list[Job], metrics: list[str]):
    """A matplotlib Figure (Agg canvas, no pyplot): one panel per metric with
    a curve per job that logged it, then each job's last sample grid. The
    jobs of one group (same swept values) share a colour, one style per seed."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from PIL import Image

    keys, _ = swept_keys(jobs)
    labels = job_labels(jobs, keys)
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(tuple(job.overrides.get(k, "") for k in keys), []).append(i)
    palette = colormaps["tab10" if len(groups) <= 10 else "tab20"].colors
    style = {}
    for g, members in enumerate(groups.values()):
        for n, i in enumerate(members):
            style[i] = {"color": palette[g % len(palette)], "linestyle": LINE_STYLES[n % len(LINE_STYLES)]}

    curves = [read_curves(job.folder) for job in jobs]
    panels = []
    for metric in metrics:
        lines = [(i, curve_tag(metric, c)) for i, c in enumerate(curves)]
        lines = [(i, tag) for i, tag in lines if tag]
        if lines:
            panels.append((metric, lines))
    samples = [last_sample(job.folder) for job in jobs]
    if not panels and not any(samples):
        raise UserError(
            "--plot: no TensorBoard curves (<job>/tb) or sample grids (<job>/samples/step_N.png) in any job"
        )

    columns = max(1, min(PANEL_COLUMNS, len(panels)))
    curve_rows = -(-len(panels) // columns)
    image_columns = max(1, min(IMAGE_COLUMNS, len(jobs)))
    image_rows = -(-len(jobs) // image_columns)
    fig = Figure(figsize=(max(4.5 * columns, 2.4 * image_columns), 3.2 * curve_rows + 2.8 * image_rows + 0.6))
    FigureCanvasAgg(fig)
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.2 * curve_rows + 0.6, 2.8 * image_rows])
    if panels:
        axes = top.subplots(curve_rows, columns, squeeze=False).flatten()
        for ax, (metric, lines) in zip(axes, panels, strict=False):
            for i, tag in lines:
                steps, values = curves[i][tag]
                # Markers where points are few: a lone evaluation is a dot, not nothing.
                marker = "o" if len(steps) <= MARKED_POINTS else None
                ax.plot(
                    steps, values, label=labels[i], linewidth=1.2, marker=marker, markersize=3, **style[i]
                )
            ax.set_title(metric, fontsize=10)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        for ax in axes[len(panels) :]:
            ax.set_axis_off()
        handles = [Line2D([], [], **style[i]) for i in range(len(jobs))]
        top.legend(handles, labels, loc="upper center", ncols=min(len(jobs), 4), fontsize=8, frameon=False)
        top.subplots_adjust(top=0.82 if curve_rows == 1 else 0.9, hspace=0.5, wspace=0.3)
    pictures = bottom.subplots(image_rows, image_columns, squeeze=False).flatten()
    for ax in pictures:
        ax.set_axis_off()
    for ax, label, found in zip(pictures, labels, samples, strict=False):
        if found is None:
            ax.set_title(f"{label}\n(no samples)", fontsize=8)
            continue
        step, path = found
        with Image.open(path) as png:
            image = np.asarray(png.convert("RGB"))
        ax.imshow(image, interpolation="nearest")
        ax.set_title(f"{label}\nstep {step}", fontsize=8)
    return fig


def save_figure(fig, path: Path) -> None:
    """The figure as a PNG, written atomically (one line naming the file if
    the disk refuses)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, lambda file: file.write(buffer.getvalue()))


def _plot_file(text: str) -> Path | str:
    """--plot's file, checked as any output file; "" (--plot alone: the
    default beside report.md), as argparse passes the option's const through it."""
    return safe_output_file(text) if text else text


def parse_args(argv=None):
    parser = OneLineParser(
        prog="gan-report",
        description="Table of a sweep's final metrics (metrics.json of every job), grouped by "
        "every swept key except seed, as mean ± std over seeds.",
    )
    parser.add_argument("folder", type=Path, help="a multirun folder, e.g. outputs/multirun/<date>/<time>")
    parser.add_argument("--metrics", help="comma-separated metrics to show (default: all but per-class ones)")
    parser.add_argument(
        "--out", type=output_folder, help="folder for report.md and report.csv (default: the multirun folder)"
    )
    parser.add_argument(
        "--plot",
        nargs="?",
        const="",
        type=_plot_file,
        metavar="FILE",
        help="also draw every job's curves and last sample grid into one PNG "
        "(default FILE: report.png beside report.md)",
    )
    return parser.parse_args(argv)


@command("gan-report", writing="cannot write the report")
def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.folder.is_dir():
        raise UserError(f"no such folder: {args.folder}")
    jobs, unfinished = find_jobs(args.folder)
    if not jobs:
        raise UserError(
            f"no finished runs under {args.folder} (looked for job folders with "
            f".hydra/overrides.yaml and metrics.json"
            f"{f'; {len(unfinished)} without metrics.json' if unfinished else ''})"
        )
    metrics = None
    if args.metrics is not None:
        metrics = list(dict.fromkeys(m.strip() for m in args.metrics.split(",") if m.strip()))
        if not metrics:
            raise UserError(f"--metrics {args.metrics!r} names no metric")
    if metrics:
        known = {k for j in jobs for k in j.metrics}
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise UserError(
                f"--metrics: {', '.join(unknown)} not in any job's metrics.json; "
                f"known: {', '.join(sorted(k for k in known if not PER_CLASS.search(k)))}"
            )
    table = build_table(jobs, metrics)
    out = args.out or args.folder
    figure = plot_report(jobs, table.metrics) if args.plot is not None else None
    write_text_atomic(out / "report.md", table.markdown())
    write_text_atomic(out / "report.csv", table.csv())
    print(table.text())
    skipped = f"; {len(unfinished)} unfinished job(s) skipped" if unfinished else ""
    print(
        f"\n{len(jobs)} job(s) in {len(table.rows)} group(s){skipped}; wrote "
        f"{out / 'report.md'} and {out / 'report.csv'}"
    )
    if figure is not None:
        plot = args.plot or out / "report.png"
        save_figure(figure, plot)
        print(f"wrote the curves and last sample grids of {len(jobs)} job(s) to {plot}")


if __name__ == "__main__":
    sys.exit(main())

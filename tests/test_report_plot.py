"""gan-report --plot: every job's curves, read back from its TensorBoard
events, and its last sample grid, in one picture."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import tensorboard_events
from PIL import Image

from gan_cli.commands.report import build_table, find_jobs, plot_report
from gan_cli.commands.report import main as report_main
from gan_cli.run.runner import run


def _job(make_cfg, sweep: Path, number: int, *overrides: str) -> Path:
    """A real small run in sweep/<number>, with the overrides.yaml Hydra writes for a job."""
    folder = sweep / str(number)
    run(make_cfg(*overrides, "train.steps=20", f"run_dir={folder}"))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    return folder


@pytest.fixture
def sweep(make_cfg, tmp_path) -> Path:
    folder = tmp_path / "sweep"
    _job(make_cfg, folder, 0, "objective=gan", "seed=0")
    _job(make_cfg, folder, 1, "objective=gan", "seed=1")
    _job(make_cfg, folder, 2, "objective=wgan", "seed=0", "train.sample_every=5")
    return folder


def test_plot_draws_one_curve_per_job_and_each_last_grid(sweep):
    jobs, _ = find_jobs(sweep)
    table = build_table(jobs)
    fig = plot_report(jobs, table.metrics)
    curves = {ax.get_title(): ax for ax in fig.subfigs[0].axes if ax.get_title()}
    # loss/g is every job's; js_estimate only the gan jobs'; steps_per_sec is perf/steps_per_sec.
    assert len(curves["loss/g"].get_lines()) == 3
    assert len(curves["js_estimate"].get_lines()) == 2
    assert len(curves["wasserstein_estimate"].get_lines()) == 1
    assert len(curves["steps_per_sec"].get_lines()) == 3
    assert "eval/fd" in curves and "eval/class_accuracy/3" not in curves
    for job, line in zip(jobs, curves["loss/g"].get_lines(), strict=True):
        events = tensorboard_events(job.folder).Scalars("loss/g")
        assert list(line.get_xdata()) == [e.step for e in events] == [5, 10, 15, 20]
        assert np.allclose(line.get_ydata(), [e.value for e in events])
    labels = [line.get_label() for line in curves["loss/g"].get_lines()]
    assert labels == [
        "objective=gan seed=0",
        "objective=gan seed=1",
        "objective=wgan train.sample_every=5 seed=0",
    ]
    gan0, gan1, wgan = curves["loss/g"].get_lines()
    assert gan0.get_color() == gan1.get_color() != wgan.get_color()  # a group shares a colour
    assert gan0.get_linestyle() != gan1.get_linestyle()

    pictures = [ax for ax in fig.subfigs[1].axes if ax.images]
    assert [ax.get_title().splitlines()[1] for ax in pictures] == ["step 20"] * 3
    for job, ax in zip(jobs, pictures, strict=True):
        with Image.open(job.folder / "samples" / "step_20.png") as png:
            assert np.array_equal(ax.images[0].get_array(), np.asarray(png.convert("RGB")))


def test_gan_report_plot_writes_the_png(sweep, tmp_path, capsys):
    report_main([str(sweep), "--plot"])
    out = capsys.readouterr().out
    path = sweep / "report.png"
    assert f"wrote the curves and last sample grids of 3 job(s) to {path}" in out
    with Image.open(path) as png:
        pixels = np.asarray(png.convert("RGB")).reshape(-1, 3)
    # The default colours of the two groups (tab10's first two) are drawn.
    for colour in ([31, 119, 180], [255, 127, 14]):
        assert (np.abs(pixels.astype(int) - colour).sum(1) < 10).sum() > 50
    chosen = tmp_path / "elsewhere" / "curves.png"
    report_main([str(sweep), "--plot", str(chosen)])
    assert chosen.is_file() and Image.open(chosen).size == Image.open(path).size
    # A folder as --plot's file is refused while the command line is read, before any drawing.
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(sweep), "--plot", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    message = f"argument --plot: {tmp_path} is a folder; give the name of a file to write"
    assert err == f"gan-report: error: {message} (see gan-report --help)\n"


def test_plot_without_events_or_samples_is_one_line(tmp_path, capsys):
    folder = tmp_path / "sweep" / "0"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=0"]))
    (folder / "metrics.json").write_text('{"eval/fd": 1.0}')
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path / "sweep"), "--plot"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gan-report: error: --plot: no TensorBoard curves") and err.count("\n") == 1
    assert not (tmp_path / "sweep" / "report.md").exists()  # nothing half done

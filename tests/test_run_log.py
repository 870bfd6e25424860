"""What a run tells its user: log lines with the time left, a progress bar on
a terminal, train.log, the closing summary, and cadence keys that may change
on resume."""

import io
import logging
from pathlib import Path

from gan_cli.output.log import log, logging_to
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.monitor import Monitor, _duration, summary
from gan_cli.run.runner import run


def test_a_run_from_python_writes_train_log_and_its_summary(make_cfg, capsys):
    cfg = make_cfg("objective=gan")
    final = run(cfg)
    logged = (Path(cfg.run_dir) / "train.log").read_text().splitlines()
    steps = [line for line in logged if "] step " in line]
    assert [line.split("] step ")[1].split()[0] for line in steps] == ["5/20", "10/20", "15/20", "20/20"]
    assert any(line.endswith(f"run finished: {cfg.run_dir}") for line in logged)
    err = capsys.readouterr().err
    assert "step 20/20" in err and f"run finished: {cfg.run_dir}" in err
    assert f"eval/fd {final['eval/fd']:.4g} (floor {final['eval/fd_floor']:.4g})" in err
    assert not log.handlers  # the run's own handlers are gone again


def test_the_summary_shows_quality_beside_its_floor_and_how_to_look():
    text = summary(
        "out/run",
        {
            "loss/d": 0.5,
            "js_estimate": 0.1,
            "eval/fd": 12.0,
            "eval/fd_floor": 0.25,
            "toy/modes": 8.0,
            "toy/w1": 0.21,
            "toy/w1_floor": 0.17,
            "steps_per_sec": 90.0,
        },
    )
    assert text.splitlines() == [
        "run finished: out/run",
        "  quality: eval/fd 12 (floor 0.25), toy/modes 8, toy/w1 0.21 (floor 0.17)",
        "  last losses: loss/d 0.5, js_estimate 0.1",
        "  curves and pictures: tensorboard --logdir out/run",
        "  samples: gan-sample out/run --num 64 --grid out/run/grid.png",
    ]


def test_the_summary_names_d_evaluations_only_for_samplers_that_read_d():
    refined = {"toy/modes": 8.0, "refine/acceptance": 0.9, "refine/seconds_per_1000": 0.034}
    jacobian = summary(Path("r"), {**refined, "refine/d_evals_per_sample": 0.0}).splitlines()
    drs = summary(Path("r"), {**refined, "refine/d_evals_per_sample": 3.5}).splitlines()
    assert jacobian[2] == "  refining cost: acceptance 0.9, 0.034 s per 1,000 samples"
    assert drs[2] == "  refining cost: acceptance 0.9, 3.5 D evaluations and 0.034 s per 1,000 samples"


def test_a_terminal_gets_a_bar_and_train_log_still_gets_every_line(tmp_path, monkeypatch):
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr("sys.stderr", terminal)
    with logging_to(tmp_path):
        monitor = Monitor(tmp_path, total_steps=200)
        monitor.progress(50, {"loss/g": 0.25}, rate=10.0)
        monitor.progress(100, {"loss/g": 0.125}, rate=10.0)
        monitor.close()
    shown = terminal.getvalue()
    assert "100/200" in shown and "loss/g 0.125" in shown  # the bar, with the losses
    assert "step 100/200" not in shown  # not the log line as well
    logged = (tmp_path / "train.log").read_text()
    assert "step 50/200  loss/g 0.25  10.0 it/s  eta 15s" in logged
    assert "step 100/200  loss/g 0.125  10.0 it/s  eta 10s" in logged


def test_durations_read_as_a_person_writes_them():
    assert [_duration(s) for s in (0, 45, 750, 14_700, float("inf"))] == ["0s", "45s", "12m30s", "4h05m", "?"]


def test_logging_to_adds_only_what_is_missing(tmp_path):
    path = tmp_path / "train.log"
    existing = logging.FileHandler(path)
    logging.getLogger().addHandler(existing)
    try:
        with logging_to(tmp_path):
            # The root's handler already writes there (as Hydra's does): no second one.
            assert not any(isinstance(h, logging.FileHandler) for h in log.handlers)
            log.info("once")
    finally:
        logging.getLogger().removeHandler(existing)
        existing.close()
    assert path.read_text().count("once") == 1


def test_cadence_keys_may_change_on_resume_and_training_stays_the_same(make_cfg):
    straight = make_cfg("objective=gan")
    run(straight)
    half = make_cfg("objective=gan", "train.steps=10")
    run(half)
    # How often it logs, draws, evaluates and checkpoints, and how many step
    # files it keeps: none of it changes what is trained.
    run(
        make_cfg(
            "objective=gan",
            "resume=true",
            f"run_dir={half.run_dir}",
            "train.log_every=2",
            "train.sample_every=4",
            "train.eval_every=7",
            "train.checkpoint_every=5",
            "train.keep_checkpoints=1",
        )
    )
    a, b = load_checkpoint(straight.run_dir), load_checkpoint(half.run_dir)
    for key in a["generator"]:
        assert a["generator"][key].equal(b["generator"][key])
    files = sorted(p.name for p in (Path(half.run_dir) / "checkpoints").iterdir())
    assert files == ["last.pt", "step_20.pt"]

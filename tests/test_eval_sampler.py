"""eval.sampler: each evaluation of a run scores G's samples refined by D
beside G's own, without changing what the run trains."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from test_sweeps import hparams_record

from gan_cli.config.checks import validate
from gan_cli.errors import UserError
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run

# ring8's minimax GAN, two evaluations (and pictures) in 30 steps
TOY_RUN = [
    "experiment=toy_gan",
    "train.steps=30",
    "train.batch_size=128",
    "train.eval_every=15",
    "train.sample_every=15",
    "train.log_every=15",
    "train.checkpoint_every=30",
    "dataset.eval_points=1000",
    "model.spectral_norm=true",  # a D whose training-mode calls would advance its state
    "train.ema=0.9",  # the evaluation reads G's average
    "train.ema_start=0",
    "eval.refine_steps=50",  # D's fine-tuning, shortened: its own tests are in test_refine.py
]


def test_a_run_with_the_sampler_trains_the_same_and_reports_both(make_cfg, tmp_path):
    plain = make_cfg(*TOY_RUN, f"run_dir={tmp_path / 'plain'}", tiny=False)
    refined = make_cfg(*TOY_RUN, "eval.sampler=drs", f"run_dir={tmp_path / 'drs'}", tiny=False)
    run(plain)
    metrics = run(refined)

    # Bit for bit the same training: the evaluation's refiner draws only from its own generators.
    a, b = load_checkpoint(plain.run_dir), load_checkpoint(refined.run_dir)
    assert a.keys() == b.keys()
    for part in a.keys() - {"config"}:  # weights, optimizers, every random state
        assert _same(a[part], b[part]), part

    saved = json.loads((Path(refined.run_dir) / "metrics.json").read_text())
    before = json.loads((Path(plain.run_dir) / "metrics.json").read_text())
    assert saved == metrics
    # G's own metrics and losses exactly as without the sampler
    assert {k: v for k, v in saved.items() if k in before and k != "steps_per_sec"} == {
        k: v for k, v in before.items() if k != "steps_per_sec"
    }
    raw = [k for k in before if k.startswith("toy/") and not k.endswith("_floor")]
    assert "toy/high_quality" in raw and "toy/modes" in raw
    for key in raw:
        value = saved[f"{key}_refined"]
        assert isinstance(value, float) and math.isfinite(value), key
    assert 0 <= saved["toy/high_quality_refined"] <= 1 and 0 <= saved["toy/modes_refined"] <= 8
    assert not any(k.endswith("_floor_refined") for k in saved)  # real-vs-real: G's keys carry them
    assert 0 < saved["refine/acceptance"] <= 1
    assert saved["refine/d_evals_per_sample"] >= 1 and saved["refine/seconds_per_1000"] > 0
    assert set(saved) - set(before) == {f"{k}_refined" for k in raw} | {
        "refine/acceptance",
        "refine/d_evals_per_sample",
        "refine/seconds_per_1000",
    }

    # TensorBoard and HPARAMS like G's own; a refined picture at each evaluation, kept out of the GIF's frames
    _, names = hparams_record(Path(refined.run_dir))
    assert {"toy/high_quality_refined", "refine/acceptance", "toy/high_quality"} <= names
    samples = Path(refined.run_dir) / "samples"
    assert (samples / "refined_step_15.png").is_file() and (samples / "refined_step_30.png").is_file()
    assert sorted(p.name for p in samples.glob("step_*.png")) == ["step_15.png", "step_30.png"]
    assert not (Path(plain.run_dir) / "samples" / "refined_step_30.png").exists()


def _same(x, y) -> bool:
    if isinstance(x, torch.Tensor):
        return torch.equal(x, y)
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y, strict=True))
    return x == y


def test_a_run_without_a_discriminator_is_refused_before_its_folder(tmp_path):
    done = run_cli(
        "gan-train",
        "experiment=toy_mse",
        "eval.sampler=drs",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gan-train: error: eval.sampler=drs reads the discriminator, and this run has none (objective mse)"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "eval.sampler=best",
            "eval.sampler must be one of drs, mh, threshold, jacobian or null (off), got 'best'",
        ),
        ("eval.drs_percentile=100", "eval.drs_percentile must be a percentile in (0, 100), got 100"),
        ("eval.mh_chain=0", "eval.mh_chain must be a whole number >= 1, got 0"),
        ("eval.threshold_percentile=0", "eval.threshold_percentile must be a percentile in (0, 100), got 0"),
    ],
)
def test_bad_sampler_settings_are_one_line(make_cfg, override, message):
    with pytest.raises(UserError) as info:
        validate(make_cfg(override))
    assert str(info.value) == message


def test_gan_eval_gives_the_runs_refined_metrics(make_cfg, capsys):
    """gan-eval of the checkpoint repeats the run's last evaluation, refined metrics included."""
    from gan_cli.commands.evaluate import main as eval_main

    cfg = make_cfg("train.steps=4", "eval.num_samples=100", "eval.sampler=mh", "eval.mh_chain=3")
    metrics = run(cfg)
    assert "eval/fd_refined" in metrics and "eval/class_share_refined/0" in metrics
    out = Path(cfg.run_dir) / "eval.json"
    eval_main([str(cfg.run_dir), "--json", str(out)])
    again = json.loads(out.read_text())
    refined = {k: v for k, v in metrics.items() if "_refined" in k or k.startswith("refine/")}
    assert {k: again[k] for k in refined if not k.startswith("refine/")} == {
        k: v for k, v in refined.items() if not k.startswith("refine/")
    }
    assert again["refine/acceptance"] == pytest.approx(1 / 3)  # mh: one sample kept per chain of 3
    assert "eval/class_share_refined/<k>" in capsys.readouterr().out


def test_gan_report_puts_each_refined_metric_after_gs_own():
    from gan_cli.commands.report import Job, default_metrics

    job = Job(
        Path("j"),
        {},
        {
            "toy/w1": 1.0,
            "toy/modes_refined": 8.0,
            "eval/fd_refined": 3.0,
            "toy/modes": 7.0,
            "eval/fd": 4.0,
            "refine/acceptance": 0.2,
            "eval/class_share_refined/3": 0.1,
        },
    )
    assert default_metrics([job]) == [
        "eval/fd",
        "eval/fd_refined",
        "refine/acceptance",
        "toy/modes",
        "toy/modes_refined",
        "toy/w1",
    ]


def test_gan_sample_and_gan_eval_offer_every_sampler_a_run_accepts():
    """The two commands name their --sampler choices without importing the
    config checks (torch) for --help; they must stay the run's SAMPLERS."""
    from gan_cli.commands.evaluate import parse_args as eval_args
    from gan_cli.commands.sample import parse_args as sample_args
    from gan_cli.config.checks import SAMPLERS

    for parse in (sample_args, eval_args):
        for method in SAMPLERS:
            assert parse(["run", "--sampler", method]).sampler == method
        with pytest.raises(SystemExit):
            parse(["run", "--sampler", "best"])

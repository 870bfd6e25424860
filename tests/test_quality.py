"""gan-bench --quality: the metric against training seconds, per configuration."""

import json
from itertools import pairwise

import pytest
from PIL import Image

from gan_cli.bench.quality import prepared, quality_curve, seconds_to_reach, table
from gan_cli.commands.bench import main as bench_main

SMALL = [
    "dataset=digits",
    "model.g_hidden=[32]",
    "model.d_hidden=[32]",
    "latent.dim=8",
    "eval.num_samples=200",
]


def test_a_curve_is_scored_at_zero_and_every_interval_up_to_the_budget():
    points = quality_curve(*prepared(["objective=gan", *SMALL], "eval/fd"), budget=1.2, every=0.4)
    assert [p["seconds"] for p in points][0] == 0.0 and len(points) == 4
    seconds = [p["seconds"] for p in points]
    assert all(b > a for a, b in pairwise(seconds)) and seconds[-1] >= 1.2 - 1e-6
    steps = [p["steps"] for p in points]
    assert steps[0] == 0 and all(b > a for a, b in pairwise(steps))
    assert all("eval/fd" in p and p["eval/fd"] > 0 for p in points)


def test_a_curve_with_eval_sampler_scores_refined_samples_beside_gs_own():
    toy = ["objective=gan", "dataset=ring8", "eval.sampler=mh", "eval.mh_chain=5", "eval.refine_steps=20"]
    points = quality_curve(*prepared(toy, "toy/high_quality_refined"), budget=0.4, every=0.2)
    assert len(points) == 3
    for point in points:
        assert 0 <= point["toy/high_quality_refined"] <= 1 and 0 <= point["toy/high_quality"] <= 1
        assert point["refine/acceptance"] == pytest.approx(1 / 5)


def test_the_table_reads_precision_recall_and_refined_shares_as_more_is_better():
    for metric in ("toy/high_quality_refined", "eval/recall", "eval/precision_refined", "eval/coverage"):
        curves = {
            "a": [{"seconds": s, "steps": 10 * s, metric: v} for s, v in ((0, 0.2), (10, 0.9), (20, 0.95))],
            "b": [{"seconds": s, "steps": 10 * s, metric: v} for s, v in ((0, 0.1), (10, 0.3), (20, 0.5))],
        }
        rows = table(curves, metric).splitlines()
        # Within 10% of the best final (0.95): a at 10 s, b never.
        assert rows[2].endswith("| 0.95 | 10 |") and rows[3].endswith("| 0.5 | - |"), metric


def test_the_table_reads_each_curve_at_a_quarter_half_and_end():
    curves = {
        "a": [
            {"seconds": 0, "steps": 0, "eval/fd": 100.0},
            {"seconds": 10, "steps": 50, "eval/fd": 40.0},
            {"seconds": 20, "steps": 100, "eval/fd": 20.0},
            {"seconds": 30, "steps": 150, "eval/fd": 12.0},
            {"seconds": 40, "steps": 200, "eval/fd": 10.0},
        ],
        "b": [
            {"seconds": 0, "steps": 0, "eval/fd": 100.0},
            {"seconds": 20, "steps": 10, "eval/fd": 60.0},
            {"seconds": 40, "steps": 20, "eval/fd": 30.0},
        ],
    }
    rows = table(curves, "eval/fd").splitlines()
    assert rows[2] == "| a | 200 | 5.0 | 40 | 20 | 10 | 40 |"
    assert rows[3] == "| b | 20 | 0.5 | 60 | 60 | 30 | - |"
    assert seconds_to_reach(curves["a"], "eval/fd", 11.0, lower_is_better=True) == 40
    assert seconds_to_reach(curves["b"], "eval/fd", 11.0, lower_is_better=True) is None


def test_gan_bench_quality_writes_the_table_json_and_one_curve_per_config(tmp_path, capsys):
    bench_main(
        [
            "--quality",
            "--configs",
            "gan,wgan",
            "--budget",
            "0.6",
            "--every",
            "0.3",
            "--out",
            str(tmp_path),
            *SMALL,
        ]
    )
    out = capsys.readouterr().out
    assert "| gan |" in out and "| wgan |" in out
    curves = json.loads((tmp_path / "quality.json").read_text())
    assert set(curves) == {"gan", "wgan"} and all(len(c) == 3 for c in curves.values())
    with Image.open(tmp_path / "quality.png") as png:
        assert png.size == (640, 400)
        colours = {png.convert("RGB").getpixel((x, y)) for x in range(60, 600, 3) for y in range(40, 360, 3)}
    # matplotlib's first two line colours: one curve per configuration
    assert (31, 119, 180) in colours and (255, 127, 14) in colours


@pytest.mark.parametrize(
    "args,message",
    [
        (["--configs", "gan,nope"], "unknown config 'nope'; choose from"),
        (
            ["--configs", "gan", "--metric", "eval/nothing", "--budget", "0.1", *SMALL],
            "--metric eval/nothing is not among this run's metrics",
        ),
        (["--every", "0"], "--budget and --every must be > 0 seconds"),
        (["--out", "notes.txt/q"], "notes.txt is a file, so the folder notes.txt/q cannot be made"),
    ],
)
def test_bad_quality_input_gets_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(SystemExit) as stopped:
        bench_main(["--quality", "--out", str(tmp_path), *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and message in err[-1]
    assert err[-1].startswith(("gan-bench: error:", "gan-bench --quality: error:"))


def test_a_metric_one_configuration_lacks_is_refused_before_any_trains(tmp_path, capsys):
    # cgan reports eval/class_accuracy, gan does not: gan's budget is never spent.
    with pytest.raises(SystemExit) as stopped:
        bench_main(
            ["--quality", "--configs", "cgan,gan", "--metric", "eval/class_accuracy", "--budget", "30"]
            + ["--out", str(tmp_path / "quality"), *SMALL]
        )
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "training for" not in err and not (tmp_path / "quality").exists()
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("gan-bench: error: --metric eval/class_accuracy is not among this run's metrics")
    )

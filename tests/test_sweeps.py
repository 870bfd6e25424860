"""Sweeps that compare runs: the value the Hydra main returns, the HPARAMS
record, gan-report, and the launcher and sweeper plugins run for real."""

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import TINY, run_cli

from gan_cli.commands.report import main as report_main
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run


def hparams_record(run_dir: Path) -> tuple[dict, set]:
    """(hparams, metric names) of the HPARAMS summary in a run's events."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    params, metrics = {}, set()
    for file in sorted((run_dir / "tb").glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(file)).Load():
            for value in event.summary.value:
                if not value.tag.startswith("_hparams_/"):
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                if value.tag == "_hparams_/session_start_info":
                    for key, v in data.session_start_info.hparams.items():
                        params[key] = getattr(v, v.WhichOneof("kind"))
                if value.tag == "_hparams_/experiment":
                    metrics |= {m.name.tag for m in data.experiment.metric_infos}
    return params, metrics


def test_hydra_main_returns_the_metric_named_by_optimized_metric(make_cfg, capsys):
    from gan_cli.commands.train import main

    cfg = make_cfg("objective=cgan", "train.steps=4", "optimized_metric=eval/class_accuracy")
    value = main(cfg)  # a config passed in skips the command line
    saved = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert value == saved["eval/class_accuracy"] and 0 <= value <= 1

    # A name the run will not have stops it at its first evaluation, not at its end.
    cfg = make_cfg(
        "objective=gan", "train.steps=400", "train.eval_every=10", "optimized_metric=eval/class_accuracy"
    )
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("gan-train: error: optimized_metric=eval/class_accuracy is not among")
    assert "eval/fd" in err and "loss/d" in err
    run_dir = Path(cfg.run_dir)
    assert (run_dir / "train.log").exists()
    assert not (run_dir / "metrics.json").exists() and not list(run_dir.rglob("*.pt"))


def test_a_run_records_its_settings_against_its_final_metrics(make_cfg):
    cfg = make_cfg("objective=wgan", "train.steps=4")
    metrics = run(cfg)
    params, names = hparams_record(Path(cfg.run_dir))
    assert params["objective.name"] == "wgan" and params["dataset.name"] == "digits"
    assert params["train.steps"] == 4 and params["optimizer.g.lr"] == pytest.approx(5e-5)
    # Named by their TensorBoard tags, whose last points are the final metrics.
    expected = {k for k, v in metrics.items() if math.isfinite(v)} - {"steps_per_sec"}
    assert names == expected | {"perf/steps_per_sec"}
    assert {"eval/fd", "wasserstein_estimate", "loss/d"} <= names


def _fake_job(folder: Path, overrides: list[str], metrics: dict | None) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_gan_report_groups_by_swept_keys_with_mean_and_std_over_seeds(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    fds = {("gan", 0): 10.0, ("gan", 1): 12.0, ("gan", 2): 14.0, ("wgan", 0): 20.0, ("wgan", 1): 22.0}
    for i, ((objective, seed), fd) in enumerate(fds.items()):
        _fake_job(
            sweep / f"{i}_objective={objective},seed={seed}",
            [f"objective={objective}", f"seed={seed}", "train.steps=4", "hydra.run.dir=x"],
            {"eval/fd": fd, "eval/fd_floor": 0.25, "eval/class_accuracy/3": 0.5, "loss/g": float(seed)},
        )
    _fake_job(sweep / "5_objective=gan,seed=3", ["objective=gan", "seed=3", "train.steps=4"], None)

    report_main([str(sweep)])
    out = capsys.readouterr().out
    assert "fixed: train.steps=4" in out and "floor (real held-out vs real train): 0.25" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("objective"))
    assert header.split() == ["objective", "n", "eval/fd", "loss/g"]  # no per-class, no seed column
    gan = next(line for line in lines if line.startswith("gan "))
    wgan = next(line for line in lines if line.startswith("wgan "))
    assert gan.split()[:5] == ["gan", "3", "12", "±", "2"]
    assert wgan.split()[:5] == ["wgan", "2", "21", "±", "1.4"]
    assert "5 job(s) in 2 group(s); 1 unfinished job(s) skipped" in out

    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [(r["objective"], r["n"]) for r in rows] == [("gan", "3"), ("wgan", "2")]
    assert float(rows[0]["eval/fd_mean"]) == 12.0 and float(rows[0]["eval/fd_std"]) == 2.0
    assert float(rows[1]["eval/fd_std"]) == pytest.approx(math.sqrt(2))
    assert float(rows[0]["loss/g_mean"]) == 1.0
    markdown = (sweep / "report.md").read_text()
    assert "| objective | n | eval/fd | loss/g |" in markdown
    assert "| gan | 3 | 12 ± 2 | 1 ± 1 |" in markdown

    report_main([str(sweep), "--metrics", "eval/class_accuracy/3", "--out", str(tmp_path / "r")])
    assert "eval/class_accuracy/3" in capsys.readouterr().out
    assert (tmp_path / "r" / "report.csv").exists()

    # A job whose value is not finite (or not a number: an edited file) is counted, not hidden.
    edited = sweep / "3_objective=wgan,seed=0" / "metrics.json"
    edited.write_text(edited.read_text().replace("20.0", "NaN"))
    report_main([str(sweep), "--metrics", "eval/fd,eval/fd", "--out", str(tmp_path / "r")])
    wgan = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("wgan "))
    assert wgan.split() == ["wgan", "2", "22", "(1", "of", "2)"]  # the metric once, though named twice


@pytest.mark.parametrize(
    "setup,args,message",
    [
        ("empty", [], "no finished runs under"),
        ("missing", [], "no such folder"),
        ("one", ["--metrics", "eval/nope"], "--metrics: eval/nope not in any job's metrics.json"),
        ("one", ["--metrics", ","], "--metrics ',' names no metric"),
        ("one", ["--out", "/dev/null/r"], "/dev/null is a file, so the folder /dev/null/r cannot be made"),
        ("a list", [], "metrics.json is not a JSON object of metrics, as gan-train writes it"),
        ("bad yaml", [], "overrides.yaml is not valid YAML: expected <block end>, but found ':' (line 1)"),
        ("a mapping", [], "overrides.yaml is not a list of overrides, as Hydra writes it"),
    ],
)
def test_gan_report_bad_input_gets_one_line(tmp_path, capsys, setup, args, message):
    folder = tmp_path / "sweep"
    if setup != "missing":
        folder.mkdir()
    if setup != "missing" and setup != "empty":
        _fake_job(folder / "0", ["seed=0"], {"eval/fd": 1.0})
    if setup == "a list":  # files another tool wrote, or edited by hand
        (folder / "0" / "metrics.json").write_text("[1.0, 2.0]")
    if setup == "bad yaml":
        (folder / "0" / ".hydra" / "overrides.yaml").write_text(": : :")
    if setup == "a mapping":
        (folder / "0" / ".hydra" / "overrides.yaml").write_text("seed: 0")
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(folder), *args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gan-report: error:") and message in lines[0]
    assert not (folder / "report.md").exists()


def _job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())


def test_a_failed_job_leaves_the_rest_of_the_sweep_running(tmp_path):
    sweep = tmp_path / "sweep"
    # moons has no labels, so the conditional job 0 fails; ring8 (job 1) trains.
    sweep_command = [
        "gan-train",
        "-m",
        "objective=cgan",
        "dataset=moons,ring8",
        "train.steps=3",
        "train.log_every=3",
        f"hydra.sweep.dir={sweep}",
    ]
    done = run_cli(*sweep_command, cwd=tmp_path)
    assert done.returncode == 1
    message = "objective=cgan is conditional but dataset moons has no class labels"
    assert f"gan-train: error: job 0: {message}" in done.stderr
    assert f"gan-train: error: {message}" in done.stderr  # Hydra's report after the sweep
    assert "Traceback" not in done.stderr
    failed, trained = _job_dirs(sweep)
    assert not (failed / "metrics.json").exists() and not (failed / "checkpoints").exists()
    # The other job ran to its end: its 3 steps, its losses and its toy metrics.
    assert load_checkpoint(trained)["step"] == 3
    metrics = json.loads((trained / "metrics.json").read_text())
    assert math.isfinite(metrics["loss/g"]) and math.isfinite(metrics["loss/d"])
    assert metrics["toy/modes"] in range(9) and metrics["toy/w1"] > 0

    # The same sweep again into the same folder is refused before Hydra writes
    # any job's .hydra/ record (it used to rewrite them beside the old runs),
    # and the line names the setting a sweep's folder comes from.
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    again = run_cli(*sweep_command, cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == (
        f"gan-train: error: hydra.sweep.dir={sweep} already holds a sweep (multirun.yaml); continue its "
        "jobs with resume=true, or choose another hydra.sweep.dir\n"
    )
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before


@pytest.mark.slow  # a sweep of two whole runs in parallel processes
def test_joblib_launcher_runs_jobs_in_parallel_and_gan_report_averages_the_seeds(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    done = run_cli(
        "gan-train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *TINY,
        "train.steps=4",
        "train.log_every=2",
        "objective=gan",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr
    jobs = _job_dirs(sweep)
    assert len(jobs) == 2 and all((j / "metrics.json").exists() for j in jobs)
    params, names = hparams_record(jobs[-1])
    assert params["objective.name"] == "gan" and params["seed"] == 1 and "eval/fd" in names

    report = run_cli("gan-report", sweep, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert len(rows) == 1 and rows[0]["n"] == "2" and "seed" not in rows[0]
    fds = [json.loads((j / "metrics.json").read_text())["eval/fd"] for j in jobs]
    assert fds[0] != fds[1]  # two seeds, two runs
    assert float(rows[0]["eval/fd_mean"]) == pytest.approx(sum(fds) / 2)
    assert float(rows[0]["eval/fd_std"]) == pytest.approx(abs(fds[0] - fds[1]) / math.sqrt(2))
    assert "fixed: " in report.stdout and "2 job(s) in 1 group(s)" in report.stdout


def test_an_optuna_search_over_a_key_the_config_lacks_is_one_line_before_any_trial(tmp_path):
    """objective=mse has no critic_steps: Hydra refused every trial in several lines."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    done = run_cli(
        "gan-train", "-m", "hparams_search=optuna", "objective=mse", "hydra.sweep.dir=s", cwd=tmp_path
    )
    assert done.returncode == 2 and done.stderr == (
        "gan-train: error: hydra.sweeper.params searches objective.critic_steps, which this config does not "
        "have; give your own search space: hydra.sweeper.params=null and each key to search as a sweep, "
        "e.g. 'optimizer.lr=tag(log, interval(1e-5, 1e-3))'\n"
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.slow  # a sweep of several whole runs
def test_optuna_sweeper_optimises_the_returned_metric(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    done = run_cli(
        "gan-train",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        *TINY,
        "train.steps=4",
        "train.log_every=2",
        "objective=gan",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    trials = _job_dirs(sweep)
    assert [t.name for t in trials] == ["0", "1"]
    fds, sampled = [], []
    for trial in trials:
        fds.append(json.loads((trial / "metrics.json").read_text())["eval/fd"])
        given = dict(
            o.split("=", 1) for o in yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        )
        assert 1e-5 <= float(given["optimizer.g.lr"]) <= 1e-3
        assert 1 <= int(given["objective.critic_steps"]) <= 5
        sampled.append(given["optimizer.d.lr"])
    assert sampled[0] != sampled[1]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(min(fds))


def test_submitit_launcher_configs_compose(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from gan_cli.config.compose import compose_config

    cfg = compose_config(
        [
            "run_dir=.",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=1",
        ],
        hydra_node=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.timeout_min > 0


@pytest.mark.slow  # ~10 s: submitit's local engine, the one SLURM jobs use
def test_submitit_local_launcher_runs_a_job(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    done = run_cli(
        "gan-train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        *TINY,
        "train.steps=2",
        "train.log_every=1",
        "objective=gan",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [job] = _job_dirs(sweep)
    assert "eval/fd" in json.loads((job / "metrics.json").read_text())

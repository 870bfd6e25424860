"""The installed console scripts, run as a user runs them."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import TINY, assert_one_line_errors, run_cli
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_gan_train_then_gan_sample(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("gan-train", *TINY, "objective=cgan", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "step 20/20" in done.stderr  # log lines when not a terminal
    # The same lines, with their time, in the run's train.log; then a summary.
    logged = (run_dir / "train.log").read_text()
    assert "] step 20/20  loss/d" in logged and " eta " in logged
    for text in (logged, done.stderr):
        assert f"run finished: {run_dir}" in text and "eval/fd_floor" not in text
        assert "(floor " in text and f"tensorboard --logdir {run_dir}" in text
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"loss/d", "loss/g", "js_estimate", "steps_per_sec"} <= set(metrics)
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert (run_dir / "samples" / "step_20.png").exists()

    sampled = run_cli(
        "gan-sample",
        run_dir,
        "--num",
        "30",
        "--label",
        "4",
        "--grid",
        tmp_path / "four.png",
        "--out",
        tmp_path / "four.npz",
        cwd=tmp_path,
    )
    assert sampled.returncode == 0, sampled.stderr
    assert "wrote 30 samples [1, 8, 8]" in sampled.stdout
    # Far more than any machine holds (the noise alone is 640 GB): one line, not a traceback.
    huge = run_cli("gan-sample", run_dir, "--num", str(10**10), "--out", tmp_path / "huge.npz", cwd=tmp_path)
    assert huge.returncode == 2
    assert huge.stderr.startswith("gan-sample: error: out of memory: an allocation of ")
    assert huge.stderr.count("\n") == 1 and not (tmp_path / "huge.npz").exists()
    with Image.open(tmp_path / "four.png") as png:
        assert png.size == (5 * 10 + 2, 6 * 10 + 2)  # 30 images, 5 per row


def test_multirun_sweep_writes_one_run_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli(
        "gan-train",
        "-m",
        *TINY,
        "train.steps=4",
        "train.log_every=2",
        "objective=gan,wgan",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2 and "objective=gan" in jobs[0] and "objective=wgan" in jobs[1]
    for job in jobs:
        assert "step 4/4" in (sweep / job / "train.log").read_text()  # each job its own log
        acc = EventAccumulator(str(sweep / job / "tb"))
        acc.Reload()
        assert "loss/d" in acc.Tags()["scalars"] and "samples" in acc.Tags()["images"]
        assert (sweep / job / "checkpoints" / "last.pt").exists()


@pytest.fixture(scope="module")
def unlabeled_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    for i in range(4):
        Image.new("L", (8, 8), color=i * 60).save(folder / f"{i}.png")
    return folder


BAD_INPUTS = [
    (["train.batch_size=0"], "train.batch_size must be a whole number >= 1, got 0"),
    (["optimizer.lr=-1e-3"], "optimizer.lr must be a number > 0, got -0.001"),
    (["objective=gan", "optimizer.betas=[0.5]"], "optimizer.betas must be two numbers in [0, 1)"),
    (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.g cannot be built from its settings"),
    # refused once the data set is built, after Hydra made the run folder: it is removed again
    (["train.batch_size=100000"], "is larger than the data set"),
    (["objective.critic_steps=0"], "objective.critic_steps must be a whole number >= 1, got 0"),
    (["train.steps=abc"], "train.steps must be a whole number >= 0, got 'abc'"),
    (["dataset=mnist", "dataset.root=ROOT"], "put the four IDX files"),
    (["dataset=mnist"], "put the four IDX files"),  # the default root, ${hydra:runtime.cwd}/data
    (
        ["dataset=stacked_mnist", "dataset.source=mnist", "dataset.root=ROOT", "dataset.download=false"],
        "put the four IDX files",
    ),
    (["dataset=image_folder", "dataset.path=ROOT"], "is not a folder; point it at a folder of images"),
    (
        [
            "objective=cgan",
            "dataset=image_folder",
            "dataset.path=UNLABELED",
            "dataset.size=8",
            "dataset.channels=1",
            "train.batch_size=2",
        ],
        "has no class labels",
    ),
    (["dataset=image_folder"], "dataset.path needs a value"),
]


@pytest.mark.parametrize("overrides,message", BAD_INPUTS, ids=[m[:30] for _, m in BAD_INPUTS])
def test_bad_input_gets_one_clear_line(tmp_path, unlabeled_folder, overrides, message):
    overrides = [
        o.replace("ROOT", str(tmp_path / "data")).replace("UNLABELED", str(unlabeled_folder))
        for o in overrides
    ]
    done = run_cli("gan-train", *TINY, *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gan-train: error:"), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_refused_once_its_data_is_built_leaves_no_folder_it_made(tmp_path):
    """Checks that need the built data set run in the run's own folder; a
    refusal there removes the folders Hydra made for it (outputs/<date>/<time>
    and outputs/ itself here), and never a folder that was there before."""
    resnet = [*(o for o in TINY if not o.startswith("model.")), "model=resnet"]  # 8x8 digits: too small
    done = run_cli("gan-train", *resnet, cwd=tmp_path)
    assert done.returncode == 2 and "model=resnet needs square" in done.stderr
    assert not (tmp_path / "outputs").exists()

    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("my notes")
    done = run_cli("gan-train", *resnet, f"hydra.run.dir={kept}", cwd=tmp_path)
    assert done.returncode == 2 and "model=resnet needs square" in done.stderr
    assert (kept / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "objective=nonsense",
            "objective=nonsense is not an option of objective; choose from: cgan, fgan, gan, "
            "hinge, lsgan, mse, rpgan, wgan, wgan_gp",
        ),
        ("train.stepz=5", "train.stepz is not a config key"),
        ("train.steps=[1", "cannot compose the config"),
        # Hydra's own groups: their options come from Hydra and its plugins.
        (
            "hydra/launcher=nonsense",
            "hydra/launcher=nonsense is not an option of hydra/launcher; choose from: basic",
        ),
    ],
)
def test_unknown_option_or_key_gets_one_line_and_no_run_folder(tmp_path, override, message):
    done = run_cli("gan-train", override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gan-train: error: {message}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "sweep,message",
    [
        (["objective=gan,nonsense", "seed=0,1"], "objective=nonsense is not an option of objective"),
        (
            ["objective=gan,wgan", "train.batch_size=64,0"],
            "train.batch_size must be a whole number >= 1, got 0",
        ),
        (["train.stepz=1,2"], "train.stepz is not a config key"),
        (["seed=0,1", "hydra/sweeper=nonsense"], "hydra/sweeper=nonsense is not an option of hydra/sweeper"),
        (["seed=0,1", "dataset=mnist"], "mnist: no data in"),  # none in ./data, offline
    ],
)
def test_a_sweep_with_one_bad_value_gets_one_line_and_starts_no_job(tmp_path, sweep, message):
    done = run_cli("gan-train", "-m", *sweep, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gan-train: error: {message}")
    assert not (tmp_path / "sweep").exists()


def test_a_folder_through_a_file_gets_one_line_before_any_work(tmp_path, monkeypatch):
    """hydra.run.dir, hydra.sweep.dir or the classifier cache that is a file,
    or passes through one, is refused before Hydra tries to make the run's
    folder (a traceback before) and before a classifier is trained (which
    then could not be kept)."""
    (tmp_path / "notes.txt").write_text("mine")
    for argv, message in [
        (["hydra.run.dir=notes.txt"], "hydra.run.dir=notes.txt: notes.txt is a file, not a folder"),
        (["hydra.run.dir=notes.txt/run"], "hydra.run.dir=notes.txt/run: notes.txt is a file, not a folder"),
        (
            ["-m", "seed=0,1", "hydra.sweep.dir=notes.txt"],
            "hydra.sweep.dir=notes.txt: notes.txt is a file, not a folder",
        ),
        (["eval.cache_dir=notes.txt"], "eval.cache_dir=notes.txt: notes.txt is a file, not a folder"),
    ]:
        done = run_cli("gan-train", *TINY, *argv, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr == f"gan-train: error: {message}\n", done.stderr
    monkeypatch.setenv("GAN_CLI_CACHE", "notes.txt/cache")
    done = run_cli("gan-train", *TINY, cwd=tmp_path)
    message = "GAN_CLI_CACHE=notes.txt/cache: notes.txt is a file, not a folder"
    assert done.returncode == 2 and done.stderr == f"gan-train: error: {message}\n", done.stderr
    done = run_cli("gan-classifier", "dataset=digits", cwd=tmp_path)  # one line, no training first
    assert done.returncode == 2 and done.stderr.startswith(
        "gan-classifier: error: cannot write the classifier to notes.txt/cache/classifiers/digits-"
    )
    assert done.stderr.count("\n") == 1 and "Not a directory; set eval.cache_dir" in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    "entry,kind,message",
    [
        ("tb", "file", "tb is a file, where the run keeps its TensorBoard events (a folder); move it away"),
        ("samples", "file", "samples is a file, where the run keeps its pictures (a folder); move it away"),
        ("train.log", "folder", "train.log is a folder, where the run keeps its log (a file); move it away"),
    ],
)
def test_a_run_folder_entry_of_the_wrong_kind_gets_one_line_before_any_work(tmp_path, entry, kind, message):
    """A file where the run keeps a folder, or the reverse, failed at its first
    write (a traceback for tb/ and train.log, a line after minutes of training
    for samples/); the run folder's own layout (output/layout.py) is checked
    before Hydra writes into it, and nothing there changes."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if kind == "file":
        (run_dir / entry).write_text("mine")
    else:
        (run_dir / entry).mkdir()
    done = run_cli("gan-train", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == f"gan-train: error: {run_dir / message}\n", done.stderr
    assert [p.name for p in run_dir.iterdir()] == [entry]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["-m", "seed=range(0)"], "seed=range(0) sweeps over no value, so the sweep would run nothing"),
        (["-m", "seed=range(5,0)"], "seed=range(5,0) sweeps over no value, so the sweep would run nothing"),
        # The preset's sweeper runs only under -m: without it, one plain run went to outputs/.
        (["hparams_search=optuna"], "hparams_search=optuna searches with a sweep: add -m"),
    ],
)
def test_a_sweep_that_would_run_nothing_or_not_sweep_is_refused(tmp_path, argv, message):
    done = run_cli("gan-train", *argv, "train.steps=2", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith(f"gan-train: error: {message}"), done.stderr
    assert done.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_sweep_variants_try_every_listed_value_once():
    from gan_cli.commands.train import sweep_variants

    variants = sweep_variants(
        [
            "objective=gan,wgan,mse",
            "seed=0,1",
            "model=mlp",
            "optimizer.lr=interval(1e-4,1e-3)",
            "train.steps=range(1,3)",
        ]
    )
    assert variants == [
        ["objective=gan", "seed=0", "model=mlp", "train.steps=1"],
        ["objective=wgan", "seed=0", "model=mlp", "train.steps=1"],
        ["objective=mse", "seed=0", "model=mlp", "train.steps=1"],
        ["objective=gan", "seed=1", "model=mlp", "train.steps=1"],
        ["objective=gan", "seed=0", "model=mlp", "train.steps=2"],
    ]


def test_a_finished_run_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli("gan-train", *TINY, "train.steps=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    again = run_cli("gan-train", *TINY, "train.steps=3", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert again.returncode != 0 and "already holds a run" in again.stderr
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    assert after == before


def test_a_refused_resume_makes_no_run_folder(tmp_path):
    """resume= that cannot be honoured (no such path, a corrupt checkpoint,
    resume=true in a folder with no run) gets one line before Hydra makes the
    new timestamped folder under outputs/ and its train.log."""
    corrupt = tmp_path / "old" / "checkpoints" / "last.pt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a checkpoint")
    cases = [
        (["resume=/nonexistent/run"], "no such run dir or checkpoint: /nonexistent/run"),
        ([f"resume={corrupt}"], f"cannot resume: {corrupt} is not a readable checkpoint"),
        (["resume=true"], "holds no checkpoints/last.pt"),
        (
            ["resume=true", f"hydra.run.dir={tmp_path / 'empty'}"],
            f"resume=true but {tmp_path / 'empty'} holds no checkpoints/last.pt",
        ),
    ]
    for overrides, message in cases:
        done = run_cli("gan-train", *TINY, *overrides, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith("gan-train: error: ") and message in lines[0], lines[0]
        assert not (tmp_path / "outputs").exists() and not (tmp_path / "empty").exists()
    assert corrupt.read_bytes() == b"not a checkpoint"


# One bad input per console script, each caught at a different stage: a
# value check, a check before loading, argparse (OneLineParser), a missing
# folder, and an unknown option.
CONSOLE_BAD_INPUTS = [
    pytest.param(
        "gan-train",
        ["train.batch_size=0"],
        "train.batch_size must be a whole number >= 1, got 0",
        id="gan-train",
    ),
    # Hydra's own flags, read by its parser: its usage block came before the line.
    pytest.param(
        "gan-train", ["-m", "seed=0", "--bogus"], "unrecognized arguments: --bogus", id="gan-train-flag"
    ),
    pytest.param(
        "gan-train",
        ["--cfg", "nonsense"],
        "argument --cfg/-c: invalid choice: 'nonsense' (choose from 'job', 'hydra', 'all')",
        id="gan-train-flag-value",
    ),
    pytest.param("gan-sample", ["run", "--num", "0"], "--num must be >= 1, got 0", id="gan-sample"),
    pytest.param(
        "gan-eval",
        ["run", "--num-samples", "many"],
        "argument --num-samples: invalid int value: 'many'",
        id="gan-eval",
    ),
    pytest.param("gan-report", ["nowhere"], "no such folder: nowhere", id="gan-report"),
    pytest.param("gan-classifier", ["--bogus"], "unrecognized arguments: --bogus", id="gan-classifier"),
    pytest.param(
        "gan-bench",
        ["--steps", "many"],
        "argument --steps: invalid int value: 'many'",
        id="gan-bench",
    ),
]


@pytest.mark.parametrize("name,argv,message", CONSOLE_BAD_INPUTS)
def test_every_console_script_ends_bad_input_the_same_way(tmp_path, capsys, name, argv, message):
    """`PROG: error: MESSAGE`, one line on stderr, exit 2, as the installed
    script ends for a user."""

    def console(argv):  # the installed script, as a `main` for the shared check
        done = run_cli(name, *argv, cwd=tmp_path)
        sys.stderr.write(done.stderr)
        sys.exit(done.returncode)

    assert_one_line_errors(console, name, [(argv, message)], capsys)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "name,argv,message",
    [
        ("gan-eval", ["run", "--json", "."], "argument --json: . is a folder; give the name of a file"),
        ("gan-bench", ["--json", "."], "argument --json: . is a folder; give the name of a file to write"),
        ("gan-sample", ["run", "--out", "notes.txt/s.npz"], "notes.txt is a file, so notes.txt/s.npz cannot"),
        ("gan-sample", ["run", "--grid", "."], "argument --grid: . is a folder"),
    ],
)
def test_an_output_file_that_cannot_be_written_is_refused_before_the_work(tmp_path, name, argv, message):
    """Refused while the command line is read: before a checkpoint is looked
    for (there is none here), minutes of evaluation or benchmarking done."""
    (tmp_path / "notes.txt").write_text("mine")
    done = run_cli(name, *argv, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{name}: error: ") and message in lines[0], lines[0]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _exit_code_of_a_command_raising(error: BaseException) -> int:
    """The exit code of a console script (`@command("gan-x")`) whose body raises `error`."""
    from gan_cli.errors import command

    @command("gan-x")
    def main(argv=None):
        raise error

    with pytest.raises(SystemExit) as exit_info:
        main([])
    return exit_info.value.code


@pytest.mark.parametrize(
    "error,line",
    [
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                "you tried to allocate 400000000000 bytes. Error code 12 (Cannot allocate memory)"
            ),
            "out of memory: an allocation of 372.5 GiB failed",
        ),
        (
            RuntimeError(
                "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79 GiB."
            ),
            "out of memory: an allocation of 20.00 GiB on the GPU failed",
        ),
        (MemoryError(), "out of memory: Python could not allocate memory"),
    ],
)
def test_an_allocation_the_machine_cannot_give_is_one_line(capsys, error, line):
    assert _exit_code_of_a_command_raising(error) == 2
    assert capsys.readouterr().err == (
        f"gan-x: error: {line}; lower what is held at once (train.batch_size, "
        "eval.num_samples, gan-sample --num, gan-eval --num-samples)\n"
    )


def test_any_other_runtime_error_is_a_fault_shown_in_full():
    with pytest.raises(RuntimeError, match="a bug"):
        _exit_code_of_a_command_raising(RuntimeError("a bug"))


def test_a_command_ends_ctrl_c_with_one_line_and_130(capsys):
    assert _exit_code_of_a_command_raising(KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "gan-x: interrupted\n"


def test_a_command_reports_user_errors_and_unwritable_files_in_one_line(tmp_path, capsys):
    import errno

    from gan_cli.errors import UserError, command

    @command("gan-x", writing="cannot write the report")
    def main(error):
        raise error

    cases = [
        (UserError("--num must be >= 1, got 0"), "gan-x: error: --num must be >= 1, got 0\n"),
        (
            OSError(errno.EROFS, "Read-only file system", str(tmp_path / "report.md")),
            f"gan-x: error: cannot write the report: {tmp_path / 'report.md'}: Read-only file system\n",
        ),
    ]
    for error, line in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(error)
        assert exit_info.value.code == 2 and capsys.readouterr().err == line
    # gan-train writes every file through errors.writing: another OSError is a
    # fault and keeps its traceback; a process whose error rank 0 reports is quiet.
    quiet = command("gan-x", writing=None, quiet=lambda error: True)(main.__wrapped__)
    with pytest.raises(FileNotFoundError):
        quiet(FileNotFoundError(errno.ENOENT, "No such file or directory"))
    with pytest.raises(SystemExit) as exit_info:
        quiet(UserError("said by rank 0"))
    assert exit_info.value.code == 2 and capsys.readouterr().err == ""


COUNT_COMPOSITIONS = """
import sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from gan_cli.commands.train import cli

calls = []
load = ConfigLoaderImpl.load_configuration
ConfigLoaderImpl.load_configuration = lambda *a, **k: calls.append(1) or load(*a, **k)
sys.argv = ["gan-train", *sys.argv[1:]]
try:
    cli()
finally:
    print(f"compositions: {len(calls)}", file=sys.stderr)
"""


def test_a_single_run_composes_its_config_once(tmp_path):
    """The checked config is the one Hydra runs: one composition per run,
    and the run folder is what @hydra.main makes."""
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", COUNT_COMPOSITIONS, *TINY, "train.steps=1", "eval.classifier=off"]
        + [f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1", **os.environ},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "compositions: 1"
    hydra = (run_dir / ".hydra" / "hydra.yaml").read_text()
    assert "name: train" in hydra and "- hydra.mode=RUN" in hydra
    assert "- train.steps=1" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "run finished" in (run_dir / "train.log").read_text()


@pytest.mark.parametrize(
    "name", ["gan-train", "gan-sample", "gan-eval", "gan-report", "gan-bench", "gan-classifier"]
)
def test_every_console_script_names_the_installed_version(tmp_path, name):
    from importlib.metadata import version

    done = run_cli(name, "--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith(f"{name} (gan-cli {version('gan-cli')}")  # pyproject's, as installed
    assert not list(tmp_path.iterdir())  # and does nothing else


def test_with_hydra_job_chdir_relative_paths_still_mean_the_start_folder(tmp_path):
    # The job runs inside its run folder; dataset.path and eval.cache_dir were typed here.
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(8):
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(folder / f"{i}.png")
    relative = [
        "objective=gan",
        "dataset=image_folder",
        "dataset.path=pictures",
        "dataset.size=8",
        "train.batch_size=4",
        "eval.cache_dir=cache",
        "hydra.job.chdir=true",
        "hydra.run.dir=run",
    ]
    done = run_cli("gan-train", *TINY, *relative, "train.steps=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from gan_cli.run.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "run")
    assert saved["step"] == 2 and saved["config"]["dataset"]["path"] == str(folder)
    assert saved["config"]["eval"]["cache_dir"] == str(tmp_path / "cache")
    # Resumed with the same relative paths: the same config, checked before Hydra starts the job.
    done = run_cli("gan-train", *TINY, *relative, "train.steps=3", "resume=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(tmp_path / "run")["step"] == 3


def test_a_resume_keeps_hydras_record_of_how_the_run_started(tmp_path):
    """Hydra writes .hydra/ at every start: a resume used to replace the run's
    overrides (which gan-report groups a sweep by) with its own, and a refused
    one left the refused config there as the run's record."""
    run_dir = tmp_path / "run"
    done = run_cli("gan-train", *TINY, "optimizer.lr=1e-4", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
    log = (run_dir / "train.log").read_bytes()
    here = f"hydra.run.dir={run_dir}"
    done = run_cli("gan-train", *TINY, "train.steps=30", "resume=true", here, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("gan-train: error: cannot resume") and "optimizer.lr" in done.stderr
    assert {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == record
    assert (run_dir / "train.log").read_bytes() == log
    for steps, n in ((30, 1), (40, 2)):
        resume = [f"train.steps={steps}", "optimizer.lr=1e-4", "resume=true", here]
        done = run_cli("gan-train", *TINY, *resume, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        overrides = run_dir / ".hydra" / f"resume_{n}" / "overrides.yaml"
        assert yaml.safe_load(overrides.read_text())[-3:] == resume[:3]  # Hydra's own keys apart
    assert {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir() if p.is_file()} == record

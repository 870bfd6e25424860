"""One run on several processes: 2 CPU processes over gloo, started as torchrun
starts them (environment variables) or through torchrun itself."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import TINY

from gan_cli.config.build import build_objective
from gan_cli.config.compose import compose_config
from gan_cli.data import load_sklearn_digits
from gan_cli.errors import UserError
from gan_cli.latent import Latent
from gan_cli.parallel.distributed import World
from gan_cli.parallel.launch import Place
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")

PLAIN = [
    *TINY,
    "eval.classifier=off",
    "train.log_every=3",
    "train.checkpoint_every=6",
    "train.sample_every=6",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fingerprint(state_dict: dict) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(state_dict.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _worker(rank: int, size: int, port: int, overrides: list[str], run_dirs: list[str], out: str):
    """One process of a run, as torchrun starts it; writes the weights'
    fingerprints it holds at the end to out/rank<r>.json."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from gan_cli.run import runner

    finish = runner.Session.run

    def run_and_record(self):
        final = finish(self)
        parts = self.exp.parts
        nets = {"generator": parts.generator, "discriminator": parts.discriminator}
        # Weights (parameters) are every process's alike; buffers (batch norm's
        # running statistics) each process's own, rank 0's in the checkpoint.
        held = {
            name: {
                "weights": fingerprint(dict(net.named_parameters())),
                "state": fingerprint(net.state_dict()),
            }
            for name, net in nets.items()
            if net is not None
        }
        Path(out, f"rank{rank}.json").write_text(json.dumps(held))
        return final

    runner.Session.run = run_and_record
    # Each process names its own run folder, as Hydra would give each its own;
    # rank 0's is the run's.
    runner.run(compose_config([*overrides, f"run_dir={run_dirs[rank]}"]))


def run_processes(
    tmp_path: Path, overrides: list[str], size: int = 2, name: str = "run", continues: Path | None = None
) -> Path:
    """A run on `size` processes (writing into rank 0's run folder, or the
    folder of the run it `continues`); returns that folder, after checking that
    every process ended with the same weights and the others wrote nothing."""
    run_dirs = [str(tmp_path / name)] + [str(tmp_path / f"{name}_rank{r}") for r in range(1, size)]
    out = tmp_path / f"{name}_weights"
    out.mkdir()
    mp.spawn(_worker, args=(size, _free_port(), list(overrides), run_dirs, str(out)), nprocs=size)
    held = [json.loads((out / f"rank{r}.json").read_text()) for r in range(size)]
    for net in held[0]:
        assert len({h[net]["weights"] for h in held}) == 1, f"the processes ended with different {net}s"
    assert not any(Path(d).exists() for d in run_dirs[1:]), "a process other than rank 0 wrote files"
    folder = Path(continues or run_dirs[0])
    state = load_checkpoint(folder)
    for net, digest in held[0].items():
        assert fingerprint(state[net]) == digest["state"]  # the checkpoint holds rank 0's state
    return folder


def _weights(run_dir) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir)
    return {
        f"{net}.{k}": v for net in ("generator", "discriminator") if state[net] for k, v in state[net].items()
    }


# --- each process's rows of one global batch (no processes needed) ------------------


def test_the_processes_rows_make_up_the_global_batch_and_its_noise():
    data = load_sklearn_digits()
    cpu = torch.device("cpu")
    whole = World().sampler(data, 8, cpu, seed=3)
    shares = [World(Place(r, 2)).sampler(data, 4, cpu, seed=3) for r in range(2)]
    for _ in range(500):  # several epochs: reshuffles stay in step
        batch, parts = whole.next(), [s.next() for s in shares]
        assert torch.equal(batch.index, torch.cat([p.index for p in parts]))
        assert torch.equal(batch.x, torch.cat([p.x for p in parts]))
        assert torch.equal(batch.y, torch.cat([p.y for p in parts]))
    assert all(s.state_dict()["position"] == whole.state_dict()["position"] for s in shares)
    noise = Latent(5, "normal", cpu, seed=1)
    rows = [World(Place(r, 2)).latent(Latent(5, "normal", cpu, seed=1)) for r in range(2)]
    z, zs = noise.sample(6), [r.sample(3) for r in rows]
    assert torch.equal(z, torch.cat(zs)) and not torch.equal(zs[0], zs[1])
    assert torch.equal(noise.uniform(4), torch.cat([r.uniform(2) for r in rows]))


def test_a_global_batch_larger_than_the_data_set_is_one_line(make_cfg):
    from gan_cli.config.checks import check_built_data

    data, cfg = load_sklearn_digits(), make_cfg("train.batch_size=1000")
    with pytest.raises(
        UserError,
        match=r"train.batch_size=1000 on 2 processes draws global "
        r"batches of 2000, more than the data set's 1797",
    ):
        check_built_data(cfg, data, build_objective(cfg.objective), processes=2)


# --- real runs on 2 processes ---------------------------------------------------------


# No batch norm: two processes with batch b then compute what one computes with 2b.
@pytest.mark.parametrize(
    "objective,extra",
    [
        ("wgan", ["dataset=digits", "model.batch_norm=false"]),
        # DiffAugment's draws are rows of the global batch's, as z's are (RMSProp: Adam's
        # normalised step would magnify the all-reduce's rounding where a gradient is near 0).
        pytest.param(
            "wgan",
            ["dataset=digits", "model.batch_norm=false", "train.augment=[color,translation,cutout]"],
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "wgan_gp",
            [
                "dataset=ring8",
                "model.g_hidden=[32]",
                "model.d_hidden=[32]",
                "dataset.eval_points=200",
                "train.eval_every=6",
            ],
            marks=pytest.mark.slow,
        ),
    ],
)
def test_two_processes_with_batch_b_train_as_one_with_batch_2b(tmp_path, make_cfg, objective, extra):
    overrides = [*PLAIN, f"objective={objective}", "train.steps=6", *extra]
    two = run_processes(tmp_path, [*overrides, "train.batch_size=16"])
    one = make_cfg(*overrides, "train.batch_size=32", tiny=False)
    run(one)
    a, b = _weights(one.run_dir), _weights(two)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key
    # The logged losses are the global batch's too.
    logged_one = json.loads(Path(one.run_dir, "metrics.json").read_text())
    logged_two = json.loads((two / "metrics.json").read_text())
    assert logged_two["loss/d"] == pytest.approx(logged_one["loss/d"], rel=1e-4, abs=1e-6)


RESUMABLE = [*PLAIN, "objective=gan", "dataset=digits", "model.batch_norm=true"]


@pytest.mark.slow  # two launches of two processes
def test_a_run_on_two_processes_resumes_on_two_bit_for_bit(tmp_path):
    run_dir = run_processes(tmp_path, [*RESUMABLE, "train.steps=12"])
    straight = _weights(run_dir)
    # Continue from step 6 in the same folder: its step 12 must come out the same.
    step_6 = run_dir / "checkpoints" / "step_6.pt"
    run_processes(
        tmp_path, [*RESUMABLE, "train.steps=12", f"resume={step_6}"], name="resumed", continues=run_dir
    )
    resumed = _weights(run_dir)
    assert load_checkpoint(run_dir)["step"] == 12
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), "resumed on 2 processes differs"


@pytest.mark.slow  # ~30 s: four launches
def test_checkpoints_move_between_process_counts(tmp_path, make_cfg):
    # 2 processes, then 1 continues (its global batch halves: train.batch_size
    # is per process) ...
    two = run_processes(tmp_path, [*RESUMABLE, "train.steps=6"], name="two")
    run(make_cfg(*RESUMABLE, "train.steps=9", f"resume={two}", tiny=False))
    assert load_checkpoint(two)["step"] == 9
    # ... and 1 process, then 2 continue.
    one = make_cfg(*RESUMABLE, "train.steps=6", tiny=False)
    run(one)
    run_processes(
        tmp_path,
        [*RESUMABLE, "train.steps=9", f"resume={one.run_dir}"],
        name="grown",
        continues=Path(one.run_dir),
    )
    assert load_checkpoint(one.run_dir)["step"] == 9


# --- through torchrun ---------------------------------------------------------------------


def _torchrun(tmp_path, *overrides, nproc=2, **popen):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "gan_cli.train",
        *TINY,
        *overrides,
    ]
    return subprocess.Popen(
        command, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen
    )


def _workers(launcher: subprocess.Popen) -> dict[int, int]:
    """{rank: pid} of the processes torchrun started."""
    found = {}
    for child in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        rank = [e for e in environ if e.startswith(b"RANK=")]
        if rank:
            found[int(rank[0][5:])] = int(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_torchrun_makes_one_run_folder_and_sigterm_to_one_process_stops_both(tmp_path):
    # No hydra.run.dir: rank 0's timestamped folder is the only one made.
    launcher = _torchrun(
        tmp_path, "train.steps=100000", "train.checkpoint_every=5", "train.log_every=5", "eval.classifier=off"
    )
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/checkpoints/step_10.pt")):
        assert launcher.poll() is None, launcher.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    os.kill(_workers(launcher)[1], signal.SIGTERM)
    _, err = launcher.communicate(timeout=120)
    folders = [p for p in tmp_path.glob("outputs/*/*") if p.is_dir()]
    assert len(folders) == 1, folders
    run_dir = folders[0]
    lines = [line for line in err.splitlines() if line.startswith("gan-train:")]
    assert len(lines) == 1 and lines[0].startswith("gan-train: SIGTERM: stopped after step"), err
    step = load_checkpoint(run_dir)["step"]
    assert f"step {step};" in lines[0] and step >= 10
    # One train.log, rank 0's, with each step logged once.
    log = (run_dir / "train.log").read_text()
    assert log.count("step 10/100000") == 1
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".hydra",
        "checkpoints",
        "samples",
        "tb",
        "train.log",
    ]


def test_under_torchrun_optimized_metric_is_rank_0s_own(tmp_path):
    # Rank 0 alone evaluates: the others have no eval/fd and must not fail for it.
    launcher = _torchrun(tmp_path, "optimized_metric=eval/fd", "hydra.run.dir=run")
    out, err = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, err
    assert not [line for line in err.splitlines() if "gan-train: error" in line], err
    assert "eval/fd" in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_under_a_launcher_bad_input_is_one_line_from_rank_0(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": "0", "WORLD_SIZE": "2"}
    for args, message in (
        (["-m", "seed=0,1"], "-m under a launcher of 2 processes"),
        (["device=cpu", "distributed.sync_batch_norm=true"], "distributed.sync_batch_norm=true needs CUDA"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "gan_cli.train", *TINY, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [
            f"gan-train: error: {done.stderr.split('error: ', 1)[1].strip()}"
        ], done.stderr
        assert message in done.stderr
        quiet = subprocess.run(
            [sys.executable, "-m", "gan_cli.train", *TINY, *args],
            cwd=tmp_path,
            env={**env, "RANK": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert quiet.returncode == 2 and "gan-train" not in quiet.stderr, quiet.stderr
    assert not (tmp_path / "outputs").exists()


def test_slurm_tasks_meet_from_their_environment(tmp_path):
    # Two processes with the environment srun gives the tasks of one step
    # that hydra/launcher=submitit_slurm starts: rank, task count, node list,
    # and submitit's mark on its tasks.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK")
    }
    env.update(
        OMP_NUM_THREADS="1",
        SLURM_STEP_NUM_TASKS="2",
        SLURM_NTASKS="2",
        SLURM_JOB_ID=str(_free_port()),
        SLURM_STEP_NODELIST="localhost",
        SLURM_JOB_NODELIST="localhost",
        SUBMITIT_EXECUTOR="slurm",
        PYTHONUNBUFFERED="1",
    )
    env["MASTER_PORT"] = env["SLURM_JOB_ID"]
    run_dir = tmp_path / "job"
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "gan_cli.train", *PLAIN, "train.steps=4", f"hydra.run.dir={run_dir}"],
            cwd=tmp_path,
            text=True,
            env={**env, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for r in range(2)
    ]
    outcomes = [t.communicate(timeout=180) for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], outcomes
    assert load_checkpoint(run_dir)["step"] == 4
    assert "run finished" in outcomes[0][1] and outcomes[1][1].strip() == "", outcomes[1][1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]


RENDEZVOUS_KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES")


@pytest.fixture
def slurm_task(monkeypatch):
    """slurm_task(**env): this process as task 1 of 2 of SLURM job 123456
    (the rendezvous variables removed, and the whole environment restored
    afterwards: the rendezvous writes RANK, WORLD_SIZE, ... itself, and a
    WORLD_SIZE left behind would make every later run wait for its peers)."""
    saved = dict(os.environ)
    for key in RENDEZVOUS_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key in ("SUBMITIT_EXECUTOR", "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"):
        monkeypatch.delenv(key, raising=False)

    def become(**env):
        for key, value in {"SLURM_JOB_ID": "123456", "SLURM_NTASKS": "2", "SLURM_PROCID": "1", **env}.items():
            monkeypatch.setenv(key, value)
        from gan_cli.parallel.distributed import _task_rendezvous

        _task_rendezvous(Place(rank=1, size=2, local_rank=1, local_size=2, launcher="slurm"))
        return {key: os.environ.get(key) for key in RENDEZVOUS_KEYS}

    yield become
    os.environ.clear()
    os.environ.update(saved)


def test_submitit_tasks_meet_where_submitit_says(slurm_task, monkeypatch):
    pytest.importorskip("submitit")
    from submitit.helpers import TorchDistributedEnvironment

    found = slurm_task(SUBMITIT_EXECUTOR="slurm", SLURM_JOB_NODELIST="gpu[3-4],cpu7")
    # The job's first host; a port from the job id, in submitit's range and
    # the same in every task; gan-cli picks the GPU itself, so
    # CUDA_VISIBLE_DEVICES is left alone.
    assert found["MASTER_ADDR"] == "gpu3" and 20000 <= int(found["MASTER_PORT"]) <= 60000
    assert found["MASTER_PORT"] == str(TorchDistributedEnvironment().master_port)
    assert (found["RANK"], found["WORLD_SIZE"], found["LOCAL_RANK"]) == ("1", "2", "1")
    assert found["CUDA_VISIBLE_DEVICES"] is None
    # What the user set stays.
    monkeypatch.setenv("MASTER_ADDR", "head")
    monkeypatch.setenv("MASTER_PORT", "29500")
    found = slurm_task(SUBMITIT_EXECUTOR="slurm", SLURM_JOB_NODELIST="gpu[3-4]")
    assert (found["MASTER_ADDR"], found["MASTER_PORT"]) == ("head", "29500")


def test_a_bare_srun_step_meets_on_its_first_host(slurm_task, tmp_path, monkeypatch):
    scontrol = tmp_path / "scontrol"  # SLURM's own expansion of a node list
    scontrol.write_text('#!/bin/sh\n[ "$*" = "show hostnames node[7-8]" ] && printf "node7\\nnode8\\n"\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found = slurm_task(SLURM_STEP_NODELIST="node[7-8]", SLURM_JOB_NODELIST="node[1-8]")
    assert (found["MASTER_ADDR"], found["MASTER_PORT"]) == ("node7", str(20000 + 123456 % 40000))
    scontrol.write_text("#!/bin/sh\nexit 1\n")
    monkeypatch.delenv("MASTER_ADDR")
    with pytest.raises(UserError, match=r"cannot expand the SLURM node list node\[7-8\] with scontrol"):
        slurm_task(SLURM_STEP_NODELIST="node[7-8]")


@pytest.mark.slow  # ~20 s: submitit's local engine, SLURM's stand-in
def test_submitit_launcher_runs_one_job_on_two_tasks(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from conftest import run_cli

    sweep = tmp_path / "sweep"
    done = run_cli(
        "gan-train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.tasks_per_node=2",
        *PLAIN,
        "train.steps=4",
        "objective=gan",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [job] = [p for p in sweep.iterdir() if (p / "checkpoints").is_dir()]
    assert load_checkpoint(job)["step"] == 4
    log = (job / "train.log").read_text()
    assert log.count("step 3/4") == 1 and log.count("run finished") == 1


def test_a_signal_that_lands_while_the_processes_agree_is_kept_for_the_next_step():
    # The agreement is an all-reduce; a SIGTERM handled during it must not be
    # overwritten by its result (the run would never stop).
    from types import SimpleNamespace

    from gan_cli.run.runner import Session, StopOnSignal

    stop = StopOnSignal()

    class Processes:
        def __init__(self):
            self.calls = 0

        def agree_signal(self, signum):
            self.calls += 1
            if self.calls == 1:  # the signal arrives mid-agreement
                stop._handle(signal.SIGTERM, None)
                return None  # the others had none when it started
            return signum

    session = SimpleNamespace(stop=stop, world=Processes())
    assert Session.stopping(session) is False  # this step: nobody had it yet
    assert stop.signum == signal.SIGTERM  # kept ...
    assert Session.stopping(session) is True  # ... and agreed at the next step

"""Same seed, same bits: a configuration repeats its whole checkpoint however
often it is started (in fresh processes), stopped and resumed, or pictured
and evaluated. docs/reproducibility.md says what is and is not covered."""

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, assert_same, gan_cli_command
from torch import nn

from gan_cli.data import load_toy
from gan_cli.evaluation.toy_picture import scatter
from gan_cli.models import Discriminator, build_toy_mlp
from gan_cli.objectives import MinimaxGAN
from gan_cli.rng import global_rng_state, seed_everything
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run

OBJECTIVES = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "objective").glob("*.yaml"))


def _without_run_dir(state: dict) -> dict:
    """A checkpoint with the only entry two runs of one config may differ in."""
    state["config"].pop("run_dir")
    return state


# --- MKL's conditional numerical reproducibility ------------------------------------

# In a fresh interpreter: import gan_cli as a console script does, then ask
# MKL (linked into torch) which reproducibility mode it runs in, and multiply
# one matrix by a vector from 32 places in memory, 4-byte steps apart.
PROBE = """
import ctypes, os, sys
import gan_cli.commands.train
import torch
torch.set_num_threads(2)
a, b = torch.randn(64, 256), torch.randn(256, 1)
reference = a @ b
differ = 0
for offset in range(32):
    buf = torch.empty(a.numel() + 32)
    moved = buf[offset : offset + a.numel()].view_as(a)
    moved.copy_(a)
    differ += not torch.equal(moved @ b, reference)
lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
mode = lib.mkl_serv_cbwr_get(-1) & 0xFFFFFFFF  # MKL_CBWR_ALL
print(repr(os.environ.get("MKL_CBWR")), hex(mode), differ)
"""


def _probe(**env_changes) -> tuple[str, str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    value, mode, differ = out.stdout.split()
    return value.strip("'"), mode, int(differ)


def _has_mkl_symbols() -> bool:
    import ctypes

    if not torch.backends.mkl.is_available():
        return False
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        return hasattr(lib, "mkl_serv_cbwr_get")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mkl_symbols(), reason="torch's CPU BLAS here is not MKL")
def test_importing_gan_cli_turns_on_mkl_strict_reproducible_mode_unless_the_user_chose():
    # 0x10002: MKL_CBWR_AUTO | MKL_CBWR_STRICT. Results of a matrix-vector
    # product then do not depend on where its operands sit in memory.
    assert _probe() == ("AUTO,STRICT", "0x10002", 0)
    # A value the user set is kept: COMPATIBLE (0x3), or empty for MKL's own
    # default (0x1, MKL_CBWR_BRANCH_OFF), under which, on the machines this
    # was measured on, the same product changes with the operand's address.
    assert _probe(MKL_CBWR="COMPATIBLE")[:2] == ("COMPATIBLE", "0x3")
    assert _probe(MKL_CBWR="")[1] == "0x1"


# --- one command, many processes ----------------------------------------------------

REPEATED = [*TINY, "train.steps=10", "train.sample_every=5", "train.checkpoint_every=5", "seed=1"]
REPEATED += ["eval.classifier=off", "model.g_hidden=[128,256]", "model.d_hidden=[256]"]


def _train_in_fresh_processes(tmp_path, count: int, workers: int = 2) -> list[dict]:
    """`count` final checkpoints of the same gan-train command, each run in a
    process of its own (a fresh heap, so fresh addresses for every tensor)."""
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    env.update(OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")

    def one(i: int) -> Path:
        run_dir = tmp_path / f"run{i}"
        out = subprocess.run(
            gan_cli_command("gan-train") + REPEATED + [f"hydra.run.dir={run_dir}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return run_dir

    with ThreadPoolExecutor(workers) as pool:
        return [_without_run_dir(load_checkpoint(d)) for d in pool.map(one, range(count))]


@pytest.mark.slow  # several whole processes, twice
def test_the_same_command_in_fresh_processes_gives_the_same_checkpoint(tmp_path):
    first, *others = _train_in_fresh_processes(tmp_path, 4)
    assert first["step"] == 10
    for other in others:
        assert_same(first, other)


@pytest.mark.slow
def test_the_same_command_in_many_fresh_processes_gives_the_same_checkpoint(tmp_path):
    first, *others = _train_in_fresh_processes(tmp_path, 16)
    for other in others:
        assert_same(first, other)


# --- seeding every process-wide generator --------------------------------------------


def test_seed_everything_seeds_torch_numpy_and_python_alike():
    seed_everything(3)
    a = global_rng_state(), torch.rand(2), np.random.rand(2), random.random()
    np.random.seed(99), random.seed(99), torch.manual_seed(99)
    seed_everything(3)
    b = global_rng_state(), torch.rand(2), np.random.rand(2), random.random()
    assert_same(a[0], b[0], "rng")
    assert torch.equal(a[1], b[1]) and (a[2] == b[2]).all() and a[3] == b[3]
    seed_everything(4)
    assert random.random() != a[3] and not (np.random.rand(2) == a[2]).any()
    # numpy takes 32-bit seeds: larger ones still give a stream of their own.
    seed_everything(2**32 + 5)
    big = np.random.rand(2)
    seed_everything(5)
    assert not (np.random.rand(2) == big).any()


# --- straight or split, for every objective -------------------------------------------


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_split_run_equals_the_straight_run_whole_checkpoint_and_process_generators(make_cfg, objective):
    # Each run starts from other process-wide generator states, as separate
    # processes would (the OS's entropy): seed= must set them all, so numpy's
    # and Python's saved states (rng/numpy, rng/python) repeat too.
    cadence = [
        f"objective={objective}",
        "seed=2",
        "train.batch_size=16",
        "train.log_every=2",
        "train.checkpoint_every=2",
        "train.sample_every=100",
        "train.eval_every=100",
        "eval.classifier=off",
        "model.g_hidden=[32]",
        "model.d_hidden=[32]",
    ]
    np.random.seed(11), random.seed(11)
    straight = make_cfg(*cadence, "train.steps=6")
    run(straight)
    np.random.seed(12), random.seed(12)
    half = make_cfg(*cadence, "train.steps=4")
    run(half)
    np.random.seed(13), random.seed(13)
    run(make_cfg(*cadence, "train.steps=6", "resume=true", f"run_dir={half.run_dir}"))
    a, b = (
        _without_run_dir(load_checkpoint(straight.run_dir)),
        _without_run_dir(load_checkpoint(half.run_dir)),
    )
    assert a["step"] == b["step"] == 6
    b["config"]["resume"] = a["config"]["resume"]
    assert_same(a, b)


# --- pictures and evaluations change nothing trained ------------------------------


def _toy_cadence_run(make_cfg, every: int) -> dict:
    cfg = make_cfg(
        "experiment=toy_gan",
        "dataset=ring8",
        "model.spectral_norm=true",
        "dataset.arrows=16",
        "dataset.eval_points=200",
        "model.g_hidden=[16]",
        "model.d_hidden=[16]",
        "train.batch_size=64",
        "train.grid_columns=4",
        "train.ema=0.9",
        "train.ema_start=2",
        "train.steps=8",
        "train.log_every=4",
        "train.checkpoint_every=4",
        f"train.sample_every={every}",
        f"train.eval_every={every}",
        tiny=False,
    )
    run(cfg)
    state = _without_run_dir(load_checkpoint(cfg.run_dir))
    for key in ("sample_every", "eval_every"):
        state["config"]["train"].pop(key)
    return state


def test_toy_pictures_with_arrows_and_evaluations_change_nothing_trained(make_cfg):
    # Spectral norm's power-iteration vectors in D, G's moving average, D run
    # for the surface and the arrows: pictured and evaluated every 2 steps or
    # only at the end, the whole checkpoint is the same.
    often, rarely = _toy_cadence_run(make_cfg, 2), _toy_cadence_run(make_cfg, 1000)
    assert any(k.endswith("parametrizations.weight.0._u") for k in often["discriminator"])
    assert often["generator_ema"] is not None
    assert_same(often, rarely)


def test_image_pictures_leave_a_batch_norm_d_and_the_average_alone(make_cfg):
    # DCGAN's D with batch norm (running statistics, num_batches_tracked) and
    # spectral norm, G with batch norm and its moving average, on 28 x 28
    # digits (8 x 8 ones leave D no layer to normalise): pictured every 2
    # steps or only at the end, the same checkpoint.
    def cadence(every: int) -> dict:
        cfg = make_cfg(
            "objective=gan",
            "dataset=mnist_subset",
            "model=dcgan",
            "model.g_channels=8",
            "model.d_channels=8",
            "model.d_norm=batch",
            "model.spectral_norm=true",
            "latent.dim=8",
            "train.batch_size=16",
            "train.ema=0.9",
            "train.ema_start=2",
            "train.steps=6",
            "train.log_every=3",
            "train.checkpoint_every=3",
            "eval.classifier=off",
            f"train.sample_every={every}",
            f"train.eval_every={every}",
            tiny=False,
        )
        run(cfg)
        state = _without_run_dir(load_checkpoint(cfg.run_dir))
        for key in ("sample_every", "eval_every"):
            state["config"]["train"].pop(key)
        return state

    often, rarely = cadence(2), cadence(1000)
    assert any(k.endswith("running_mean") for k in often["discriminator"])
    assert any(k.endswith("parametrizations.weight.0._u") for k in often["discriminator"])
    assert_same(often, rarely)


def test_a_toy_picture_leaves_every_buffer_and_mode_of_g_and_d_as_it_found_them():
    # A D with batch norm and spectral norm, in training mode as the step loop
    # leaves it: the surface and the arrows (which need gradients through D)
    # leave its running statistics, step counter and u, v vectors untouched.
    torch.manual_seed(0)
    toy = load_toy("ring8", 0.02, arrows=16, eval_points=200)
    G, _ = build_toy_mlp([2], 0, 2, g_hidden=[8], d_hidden=[8])
    net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    D = Discriminator(net, 0, spectral_norm=True)
    D(torch.randn(32, 2))  # one training pass: buffers away from their initial values
    before_d = {k: v.clone() for k, v in D.state_dict().items()}
    before_g = {k: v.clone() for k, v in G.state_dict().items()}
    picture = scatter(toy, G, D, torch.randn(16, 2), None, MinimaxGAN())
    assert picture.shape == (3, 500, 560) and picture.min() >= 0 and picture.max() <= 1
    assert D.training and G.training
    assert_same(D.state_dict(), before_d, "D")
    assert_same(G.state_dict(), before_g, "G")
    assert not any(p.grad is not None for p in D.parameters())

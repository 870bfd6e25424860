"""gan-bench: training speed of configurations, against the machine's own
matrix-multiply peak and against a naive reference loop, in one process; and
whole processes, gan-train against a reference script, side by side."""

import logging
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan_cli.errors import UserError

# name -> overrides; `reference` configs are also timed with the naive loop,
# which has no moving average of G: none here either (train.ema=0).
CONFIGS = {
    "mlp-wgan-b64": ["objective=wgan", "model=mlp", "train.batch_size=64", "train.ema=0"],
    "mlp-wgan-b256": ["objective=wgan", "model=mlp", "train.batch_size=256", "train.ema=0"],
    "dcgan-gan-b64": ["objective=gan", "model=dcgan", "train.batch_size=64", "train.ema=0"],
    # SNGAN's CIFAR-10 step (experiment=sngan_cifar10: its ResNet G and D at widths
    # 256 and 128, spectral norm, hinge, 5 D steps, z of 128) on 32x32x3 images this
    # machine has (stacked MNIST padded to 32): the figure papers' costs compare
    # with. Seconds per G step on a CPU: not among the defaults.
    "resnet-hinge-b64": [
        "experiment=stacked_resnet",
        "dataset.root=data",  # gan-bench composes outside a Hydra run; the bundled digits read nothing there
        "model.g_channels=256",
        "model.d_channels=128",
        "train.batch_size=64",
        "train.ema=0",
    ],
    # torch.compile of both nets and optimizer steps (compiled during the warm-up)
    "mlp-wgan-b64-compile": [
        "objective=wgan",
        "model=mlp",
        "train.batch_size=64",
        "train.ema=0",
        "train.compile=true",
    ],
}
DEFAULT_CONFIGS = ["mlp-wgan-b64", "mlp-wgan-b256", "dcgan-gan-b64"]
REFERENCE = {"mlp-wgan-b64", "mlp-wgan-b256"}


def bench_config(overrides: list[str]):
    from gan_cli.config.compose import compose_config

    # Quality metrics are not part of a training step: no classifier here.
    return compose_config([*overrides, "run_dir=.", "eval.classifier=off"])


def matmul_peak_gflops(device: torch.device, size: int = 1024, seconds: float = 1.0) -> float:
    """Best fp32 GFLOP/s of a square matrix product on this device, over at
    least 20 products and `seconds` of trying (a short burst of other work
    on the machine then cannot pass for its peak)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best, tries, began = float("inf"), 0, time.perf_counter()
    while tries < 20 or time.perf_counter() - began < seconds:
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
        tries += 1
    return 2 * size**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process, KiB on Linux


def flops_per_step(exp) -> float:
    """FLOPs of one generator step (its critic steps included), forward and
    backward, as counted by PyTorch's FLOP counter on the real models."""
    from torch.utils.flop_counter import FlopCounterMode

    from gan_cli.training.loop import run_steps
    from gan_cli.training.meter import Meter

    counter = FlopCounterMode(display=False)
    with counter:
        run_steps(exp.parts, 0, 1, Meter(), lambda step: True)
    return float(counter.get_total_flops())


# Operators that make or relabel a tensor without touching its values.
NO_KERNEL = {"detach.default", "lift_fresh.default", "empty.memory_format", "_to_copy.default"}


def kernels_per_step(exp) -> int:
    """Operators dispatched in one generator step that compute (views, which
    only relabel memory, left out), its critic steps included: forward,
    backward, optimizer updates, loss sums. Each is a kernel launch on a GPU
    (a foreach update is one), and their count, not FLOPs, bounds a step
    this small there. Counted below autograd, as the kernels run, after one
    uncounted step so lazy state (optimizer buffers) exists."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from gan_cli.training.loop import run_steps
    from gan_cli.training.meter import Meter

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            computes = func.namespace == "aten" and not func.is_view and func.__name__ not in NO_KERNEL
            Count.calls += computes
            return func(*args, **(kwargs or {}))

    meter = Meter()
    run_steps(exp.parts, 0, 1, meter, lambda step: True)
    with Count():
        run_steps(exp.parts, 1, 2, meter, lambda step: True)
    return Count.calls


class UpdateCounter:
    """Counts optimizer steps, to show both loops make the same updates."""

    def __init__(self, opt_g, opt_d):
        self.counts = {"g": 0, "d": 0}
        for key, opt in (("g", opt_g), ("d", opt_d)):
            if opt is not None:
                opt.register_step_post_hook(lambda *args, key=key: self._add(key))

    def _add(self, key):
        self.counts[key] += 1

    def reset(self):
        self.counts = {"g": 0, "d": 0}


def _benchmark_timer(statement, begin):
    """torch.utils.benchmark's Timer for `statement()`, with `begin()` run
    untimed before each of its batches (its own warm-up, then the timed one).
    The Timer synchronises an accelerator around the timed batch and warms up
    first; it runs at the process's thread count, as a training run does."""
    # On a CUDA build with no GPU its import logs a warning about CUDA_HOME
    # that says nothing about the benchmark.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    return benchmark.Timer(
        stmt="statement()",
        setup="begin()",
        globals={"statement": statement, "begin": begin},
        num_threads=torch.get_num_threads(),
    )


class TimedLoop:
    """A training loop timed in rounds: `warm(n)` runs n generator steps
    untimed, `time(n)` returns the seconds n more take (device synchronised,
    through torch.utils.benchmark) and leaves the optimizer updates of those n
    steps in `updates`."""

    def __init__(self, generator_step, opt_g, opt_d, device, finish=lambda: None, counts=None):
        self.generator_step, self.device, self.finish = generator_step, device, finish
        # counts: the updates taken so far, where optimizer hooks cannot tell
        # (a CUDA graph replays its optimizer steps without calling them).
        self.counts = counts
        self.counter = UpdateCounter(opt_g, opt_d) if counts is None else None
        self.updates = {}
        self._before = {}
        self._timer = _benchmark_timer(generator_step, self._begin)

    def _begin(self) -> None:
        """Before each batch the Timer runs: count this batch's updates only."""
        if self.counter is not None:
            self.counter.reset()
        self._before = dict(self.counts()) if self.counts else {}

    def warm(self, steps: int) -> None:
        for _ in range(steps):
            self.generator_step()
        self.finish()
        _sync(self.device)

    def time(self, steps: int) -> float:
        # The Timer's own warm-up: max(steps // 100, 2) more generator steps, untimed.
        seconds = self._timer.timeit(steps).raw_times[0]
        self.updates = (
            dict(self.counter.counts)
            if self.counter is not None
            else {k: v - self._before.get(k, 0) for k, v in self.counts().items()}
        )
        # The losses read back once per round, as a run reads them once per
        # log line: after the timed steps, so their (tiny) copy is not timed.
        self.finish()
        return seconds


def fast_loop(exp) -> TimedLoop:
    """The runner's own loop (loop.run_steps), one generator step per call; the
    losses are read back once per round, as a run reads them once per log."""
    from gan_cli.training.loop import run_steps
    from gan_cli.training.meter import Meter

    meter, step = Meter(), 0

    def generator_step():
        nonlocal step
        run_steps(exp.parts, step, step + 1, meter, lambda s: True)
        step += 1

    return TimedLoop(generator_step, exp.parts.opt_g, exp.parts.opt_d, exp.device, meter.means)


def graph_loop(exp) -> TimedLoop:
    """The runner's graphed steps (train.cuda_graphs): each generator step
    replayed from one CUDA graph. Its first step runs eagerly and is then
    captured, so warm it up for at least two steps."""
    from gan_cli.training.cuda_graphs import GraphedStep
    from gan_cli.training.meter import Meter

    meter, steps, step = Meter(), GraphedStep(exp.parts, exp.device), 0
    steps.begin(meter)

    def generator_step():
        nonlocal step
        steps.run(step)
        step += 1

    loop = TimedLoop(generator_step, None, None, exp.device, meter.means, counts=lambda: steps.updates)
    loop.graphed = steps
    return loop


def reference_loop(cfg, data_root: Path) -> TimedLoop:
    """The common tutorial loop with identical models and update counts:
    torchvision MNIST + ToTensor/Normalize through a DataLoader, fakes made
    with a graph and detached, weight clipping, `.item()` every update."""
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    device = (
        torch.device("cpu") if cfg.device == "cpu" or not torch.cuda.is_available() else torch.device("cuda")
    )
    torch.manual_seed(cfg.seed)
    G, D = instantiate(cfg.model, data_shape=[1, 28, 28], num_classes=0, latent_dim=cfg.latent.dim)
    G, D = G.to(device), D.to(device)
    opt_g = instantiate(cfg.optimizer.g)(G.parameters())
    opt_d = instantiate(cfg.optimizer.d)(D.parameters())
    mnist = datasets.MNIST(
        str(data_root),
        train=True,
        download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]),
    )
    loader = DataLoader(mnist, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)
    clip, critic_steps, batch = cfg.objective.clip_value, cfg.objective.critic_steps, cfg.train.batch_size

    def real_batch():
        nonlocal batches
        try:
            return next(batches)[0].to(device)
        except StopIteration:
            batches = iter(loader)
            return next(batches)[0].to(device)

    def generator_step():
        for _ in range(critic_steps):
            real = real_batch()
            fake = G(torch.randn(batch, cfg.latent.dim, device=device)).detach()
            loss_d = -torch.mean(D(real)) + torch.mean(D(fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            for p in D.parameters():
                p.data.clamp_(-clip, clip)
            loss_d.item()
        opt_g.zero_grad()
        loss_g = -torch.mean(D(G(torch.randn(batch, cfg.latent.dim, device=device))))
        loss_g.backward()
        opt_g.step()
        loss_g.item()

    return TimedLoop(generator_step, opt_g, opt_d, device)


def write_mnist_idx(root: Path) -> None:
    """torchvision's raw MNIST layout, from the bundled real digits."""
    from gan_cli.data import load_mnist_subset
    from gan_cli.data.idx import write_mnist_raw

    data = load_mnist_subset()
    write_mnist_raw(root, data.images[:, 0].numpy(), data.labels.numpy())


def startup_seconds(repeats: int = 5) -> dict[str, float]:
    """Wall time (best of `repeats`, taken in turns) of importing torch, of
    importing torch + torchvision, of a 1-step gan-train, and of the same
    without its final evaluation (5,000 images through the data set's
    classifier), which is work the run does rather than start-up."""
    script = str(Path(sys.executable).with_name("gan-train"))
    commands = {
        "import_torch_s": [sys.executable, "-c", "import torch"],
        "import_torch_torchvision_s": [sys.executable, "-c", "import torch, torchvision"],
        "gan_train_1_step_s": [script, "train.steps=1"],
        "gan_train_1_step_no_eval_s": [script, "train.steps=1", "eval.classifier=off"],
    }
    best = dict.fromkeys(commands, float("inf"))
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for key, cmd in commands.items():
                if cmd[0] == script:
                    cmd = [*cmd, f"hydra.run.dir={tmp}/{key}{i}"]
                start = time.perf_counter()
                subprocess.run(cmd, cwd=tmp, check=True, capture_output=True)
                best[key] = min(best[key], time.perf_counter() - start)
    imports = best["import_torch_torchvision_s"]
    return {
        **best,
        "overhead_s": best["gan_train_1_step_s"] - imports,
        "overhead_no_eval_s": best["gan_train_1_step_no_eval_s"] - imports,
        # what a run adds to `python -c "import torch"`, evaluation off
        "beyond_torch_no_eval_s": best["gan_train_1_step_no_eval_s"] - best["import_torch_s"],
        "repeats": repeats,
    }


# The whole-process comparison: gan-train against a reference script the
# user supplies, both on the bundled 5,000 MNIST digits written as MNIST IDX
# files, taking the same number of critic updates. The default settings are
# those of the well-known WGAN script (PyTorch-GAN's implementations/wgan/wgan.py):
# its MLP nets, batch 64, RMSProp 5e-5, 5 critic updates per generator update
# and weights clipped to 0.01; it trains the critic on every batch and the
# generator on every 5th, so an epoch of 79 batches is 79 critic updates.
VS_OVERRIDES = [
    "objective=wgan",
    "model=mlp",
    "dataset=mnist",
    "dataset.download=false",
    "train.batch_size=64",
    "train.ema=0",
    "eval.classifier=off",
]
VS_ARGS = "--n_epochs {epochs}"
VS_DIGITS = 5000


def vs_steps(epochs: int, batch_size: int = 64, critic_steps: int = 5, digits: int = VS_DIGITS) -> int:
    """Our generator steps for the reference's critic updates: one per batch
    (the last one short), `epochs` times, over `critic_steps`."""
    return math.ceil(digits / batch_size) * epochs // critic_steps


def check_vs_script(script: Path, script_args: str, epochs: int, runs: int) -> Path:
    """The script's full path, once the settings of a comparison are known good."""
    script = Path(script).resolve()
    if not script.is_file():
        what = "a folder, not a script" if script.is_dir() else "no such file"
        raise UserError(f"--vs-script {script}: {what}")
    if epochs < 1 or runs < 1:
        raise UserError("--vs-epochs and --vs-runs must be >= 1")
    vs_arguments(script_args, epochs, Path("data"))
    return script


def vs_arguments(script_args: str, epochs: int, data: Path) -> list[str]:
    """--vs-args with {epochs} and {data} filled in, split as a shell would."""
    try:
        return shlex.split(script_args.format(epochs=epochs, data=data))
    except (KeyError, IndexError):  # {other} or {}
        raise UserError(f"--vs-args {script_args!r}: only {{epochs}} and {{data}} are filled in") from None
    except ValueError as error:  # an unmatched brace or quote
        raise UserError(f"--vs-args {script_args!r}: {error}") from None


def vs_script(
    script: Path,
    script_args: str = VS_ARGS,
    epochs: int = 10,
    runs: int = 3,
    device: str = "auto",
    overrides: list[str] | None = None,
    log=print,
) -> dict:
    """Wall times of `runs` whole gan-train processes and `runs` of `script`,
    alternated (so a burst of other work on the machine hits both), and their
    medians. The digits go to <tmp>/data/mnist/MNIST/raw: `{data}` in
    script_args is <tmp>/data/mnist, which is also ../../data/mnist from the
    folder the script runs in (PyTorch-GAN's layout); `{epochs}` is `epochs`."""
    script = check_vs_script(script, script_args, epochs, runs)
    extra = list(overrides or [])
    gan_train = str(Path(sys.executable).with_name("gan-train"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data" / "mnist"
        write_mnist_idx(data)
        work = tmp / "work" / "script"  # ../../data/mnist from here is `data`
        work.mkdir(parents=True)
        theirs = [sys.executable, str(script), *vs_arguments(script_args, epochs, data)]
        steps = (
            [] if any(o.startswith("train.steps=") for o in extra) else [f"train.steps={vs_steps(epochs)}"]
        )
        ours = [gan_train, *VS_OVERRIDES, f"dataset.root={data}", *steps, f"device={device}", *extra]
        env = dict(os.environ)
        if device == "cpu":  # the reference takes a GPU wherever it sees one
            env["CUDA_VISIBLE_DEVICES"] = ""
        times = {"ours": [], "theirs": []}
        for i in range(runs):
            for key, cmd, cwd in (
                ("ours", [*ours, f"hydra.run.dir={tmp / f'run{i}'}"], tmp),
                ("theirs", theirs, work),
            ):
                times[key].append(_timed_process(cmd, cwd, env, tmp / f"{key}{i}.log"))
                name = "gan-train" if key == "ours" else script.name
                log(f"  run {i + 1}/{runs}: {name} {times[key][-1]:.2f} s")
    ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
    return {
        "script": str(script),
        "script_command": theirs[1:],
        "gan_train_command": ours[1:],
        "runs": runs,
        "epochs": epochs,
        "ours_s": times["ours"],
        "theirs_s": times["theirs"],
        "ours_median_s": ours_s,
        "theirs_median_s": theirs_s,
        "speedup": theirs_s / ours_s,
    }


def _timed_process(cmd: list[str], cwd: Path, env: dict, log: Path) -> float:
    """Seconds the command takes, its output kept in `log`; one line if it fails."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
        seconds = time.perf_counter() - start
    if done.returncode:
        lines = log.read_bytes().decode(errors="replace").strip().splitlines() or ["(no output)"]
        name = Path(cmd[1] if cmd[0] == sys.executable else cmd[0]).name
        raise UserError(f"{name} failed (exit {done.returncode}): {lines[-1]}")
    return seconds

"""gan-bench: training speed of configurations, against the machine's own
matrix-multiply peak and against a naive reference loop, in one process."""

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# name -> overrides; `reference` configs are also timed with the naive loop,
# which has no moving average of G: none here either (train.ema=0).
CONFIGS = {
    "mlp-wgan-b64": ["objective=wgan", "model=mlp", "train.batch_size=64", "train.ema=0"],
    "mlp-wgan-b256": ["objective=wgan", "model=mlp", "train.batch_size=256", "train.ema=0"],
    "dcgan-gan-b64": ["objective=gan", "model=dcgan", "train.batch_size=64", "train.ema=0"],
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


class TimedLoop:
    """A training loop timed in rounds: `warm(n)` runs n generator steps
    untimed, `time(n)` returns the seconds n more take (device synchronised)
    and leaves the optimizer updates of that round in `updates`."""

    def __init__(self, generator_step, opt_g, opt_d, device, finish=lambda: None, counts=None):
        self.generator_step, self.device, self.finish = generator_step, device, finish
        # counts: the updates taken so far, where optimizer hooks cannot tell
        # (a CUDA graph replays its optimizer steps without calling them).
        self.counts = counts
        self.counter = UpdateCounter(opt_g, opt_d) if counts is None else None
        self.updates = {}

    def warm(self, steps: int) -> None:
        for _ in range(steps):
            self.generator_step()
        self.finish()
        _sync(self.device)

    def time(self, steps: int) -> float:
        if self.counter is not None:
            self.counter.reset()
        before = dict(self.counts()) if self.counts else {}
        start = time.perf_counter()
        for _ in range(steps):
            self.generator_step()
        self.finish()
        _sync(self.device)
        seconds = time.perf_counter() - start
        self.updates = (
            dict(self.counter.counts)
            if self.counter is not None
            else {k: v - before.get(k, 0) for k, v in self.counts().items()}
        )
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
    """Wall time (best of `repeats`, taken in turns) of importing torch +
    torchvision, of a 1-step gan-train, and of the same without its final
    evaluation (5,000 images through the data set's classifier), which is
    work the run does rather than start-up."""
    script = str(Path(sys.executable).with_name("gan-train"))
    commands = {
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
        "repeats": repeats,
    }

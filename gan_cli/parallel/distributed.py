"""One run on several processes: `torchrun` on one node, or SLURM tasks on
several (README, "Several GPUs or machines").

Every process builds the same experiment and runs the same steps. G and D go
through DistributedDataParallel, which averages their gradients over the
processes at every update, so every process holds the same weights after
every step (the same averaged gradients through the same optimizer; WGAN's
clipping then clips the same numbers everywhere).

Batches: every process draws the same *global* batch, world size x
train.batch_size, from the run's seeded sampler and latent streams, and keeps
its own rows (rank r: rows r*b .. (r+1)*b - 1). So the noise differs between
processes, N processes with batch b compute what one process with batch N*b
computes (up to float rounding; batch norm normalises each process's rows by
their own statistics unless distributed.sync_batch_norm=true), and the one
sampler and latent state that a checkpoint holds (the same on every process)
continues under any number of processes.

Rank 0 alone writes the run folder and evaluates; the others write nothing
and log nothing. What all processes must decide alike (where the run is, what
it resumes from, whether to stop, whether it diverged) is decided once and
shared, or agreed with one small all-reduce at the step boundaries the
Session already has.

One process (no launcher) is the plain `World()`: every method is then the
identity, so a single run does exactly what it did without this module.
"""

import contextlib
import dataclasses
import inspect
import os
import re
import socket
import subprocess
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gan_cli.data.sampler import Batch
from gan_cli.device import pick_device
from gan_cli.errors import UserError
from gan_cli.output.log import log
from gan_cli.parallel.launch import PeerLost, Place, everywhere, place

# Newer torch names broadcast_buffers forward_sync_buffers (buffers then still
# start alike, broadcast once at construction).
_HAS_FORWARD_SYNC = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters


def _to_cpu(tree):
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(v) for v in tree)
    return tree


class World:
    """The processes of one run, and what they decide together."""

    def __init__(
        self, where: Place | None = None, device: torch.device | None = None, sync_batch_norm: bool = False
    ):
        where = Place() if where is None else where
        self.rank, self.size = where.rank, where.size
        self.device = device
        self.sync_batch_norm = sync_batch_norm

    @property
    def writes(self) -> bool:
        """Whether this process writes the run folder (rank 0 only)."""
        return self.rank == 0

    # --- agreeing -------------------------------------------------------------
    def _sum(self, values: list[float], dtype=torch.float64) -> list[float]:
        # CPU tensors go through gloo (also on CUDA runs, whose group has both
        # backends): no wait on the GPU, and a lost peer fails fast.
        tensor = torch.tensor(values, dtype=dtype)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def agree_signal(self, signum: int | None) -> int | None:
        """The signal any process received (the highest number if several),
        so all stop after the same step; None when none did."""
        if self.size == 1:
            return signum
        agreed = torch.tensor([signum or 0], dtype=torch.int64)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
        return int(agreed.item()) or None

    def all_true(self, flag: bool) -> bool:
        if self.size == 1:
            return flag
        agreed = torch.tensor([int(bool(flag))], dtype=torch.int64)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        return bool(agreed.item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Logged values (losses, estimates) averaged over the processes: the
        global batch's mean, as one process with the whole batch logs it."""
        if self.size == 1 or not values:
            return values
        sums = self._sum(list(values.values()))
        return {key: total / self.size for key, total in zip(values, sums, strict=True)}

    def mean_meter(self, state: dict) -> dict:
        """A meter's running sums averaged over the processes, for a
        checkpoint: a resumed run (under any number of processes) adds its own
        sums to them and its next logged mean is the same global mean."""
        if self.size == 1 or not state.get("sums"):
            return state
        keys = list(state["sums"])
        local = torch.stack([state["sums"][k].float().cpu() for k in keys])
        dist.all_reduce(local)
        return {
            "sums": {k: (v / self.size) for k, v in zip(keys, local, strict=True)},
            "counts": dict(state["counts"]),
        }

    def from_leader(self, compute):
        """compute() on rank 0, its result (tensors on the CPU) given to every
        process; a UserError there is raised everywhere, reported once."""
        if self.size == 1:
            return compute()
        outcome = [None]
        failure = None
        if self.rank == 0:
            try:
                outcome[0] = ("value", _to_cpu(compute()))
            except UserError as error:
                outcome[0] = ("error", str(error))
            except Exception as error:  # rank 0 reports it; the others say why they stop
                failure = error
                outcome[0] = ("failed", f"{type(error).__name__}: {error}")
        dist.broadcast_object_list(outcome, src=0, device=torch.device("cpu"))
        kind, value = outcome[0]
        if failure is not None:
            raise failure
        if kind == "error":
            raise everywhere(UserError(value))
        if kind == "failed":
            raise UserError(f"rank {self.rank}: rank 0 failed ({value}); its output says more")
        return value

    # --- what each process trains on ------------------------------------------
    def sampler(self, data, batch_size: int, device: torch.device, seed: int):
        """The data set's sampler for this process: its rows of every global
        batch of size x batch_size."""
        if self.size == 1:
            return data.sampler(batch_size, device, seed=seed)
        # config.checks.check_built_data has made sure the data set holds a global batch.
        return RowsOf(data.sampler(batch_size * self.size, device, seed=seed), self.rank, self.size)

    def latent(self, latent):
        """The latent noise for this process: its rows of the global batch's noise."""
        return latent if self.size == 1 else LatentRows(latent, self.rank, self.size)

    def replicate(self, parts):
        """The parts the step loop runs: G and D in DistributedDataParallel
        (their weights broadcast from rank 0, so every process starts alike)."""
        if self.size == 1:
            return parts
        # Buffers (batch norm's running statistics) stay each process's own, as
        # in StyleGAN2-ADA: they only matter in eval mode, i.e. for rank 0's
        # pictures and metrics, and a checkpoint keeps rank 0's.
        options = {"forward_sync_buffers": False} if _HAS_FORWARD_SYNC else {"broadcast_buffers": False}
        if self.device is not None and self.device.type == "cuda":
            options["device_ids"] = [torch.cuda.current_device()]
        nets = []
        for net in (parts.generator, parts.discriminator):
            if net is not None and self.sync_batch_norm:
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)  # in place below the top module
            nets.append(None if net is None else Replicated(net, **options))
        return dataclasses.replace(parts, generator=nets[0], discriminator=nets[1])


class RowsOf:
    """This process's rows of every batch a sampler draws for all processes.
    The sampler's state is that of the global stream: the same on every process."""

    def __init__(self, sampler, rank: int, size: int):
        self.sampler = sampler
        share = sampler.batch_size // size
        self.rows = slice(rank * share, (rank + 1) * share)
        self.batch_size = share

    def next(self) -> Batch:
        if hasattr(self.sampler, "gather"):  # indexed data: gather only this process's rows
            return self.sampler.gather(self.sampler.next_indices()[self.rows])
        batch = self.sampler.next()  # drawn points (2D toys): cheap to draw them all
        rows = self.rows
        return Batch(batch.x[rows], None if batch.y is None else batch.y[rows], batch.index[rows])

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> bool:
        return self.sampler.load_state_dict(state)


class LatentRows:
    """This process's rows of the latent noise every process draws for the
    global batch; everything else is the run's Latent."""

    def __init__(self, latent, rank: int, size: int):
        self.latent, self.rank, self.size = latent, rank, size

    def __getattr__(self, name):  # dim, distribution, device, generator, ...
        return getattr(self.latent, name)

    def _rows(self, draw, n: int) -> torch.Tensor:
        return draw(n * self.size)[self.rank * n : (self.rank + 1) * n]

    def sample(self, n: int) -> torch.Tensor:
        return self._rows(self.latent.sample, n)

    def uniform(self, n: int) -> torch.Tensor:
        return self._rows(self.latent.uniform, n)


class _Methods(nn.Module):
    """What DistributedDataParallel wraps: a net whose methods (forward, and
    D's score_pair) all run through DDP's forward, which readies the gradient
    averaging for the backward pass that follows."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, method: str, *args):
        return getattr(self.net, method)(*args)


class Replicated(DistributedDataParallel):
    """G or D as the step loop calls them, gradients averaged over processes.
    Checkpoints, pictures and evaluation keep using the net itself (same
    weights, same state_dict keys), so checkpoints do not depend on the
    number of processes.

    A frozen net (D inside G's step, loop.frozen) runs without DDP: it gets
    no gradients, so there is nothing to average, and DDP must not wait for
    any."""

    def __init__(self, net: nn.Module, **options):
        super().__init__(_Methods(net), **options)
        self.trainable = [p for p in net.parameters() if p.requires_grad]

    def forward(self, *args):
        return self._call("forward", *args)

    def score_pair(self, *args):
        return self._call("score_pair", *args)

    def _call(self, method: str, *args):
        if not any(p.requires_grad for p in self.trainable):
            return getattr(self.module.net, method)(*args)
        return super().forward(method, *args)


# --- the process group ------------------------------------------------------------

_world = World()


def current() -> World:
    """The processes of the run in progress (one, outside a launcher)."""
    return _world


def _task_rendezvous(where: Place) -> None:
    """env:// for SLURM tasks (or submitit's local ones): rank 0 listens on
    the step's first host, at a port that every task of the job derives
    alike from the job id, unless MASTER_ADDR or MASTER_PORT are set already.

    Tasks that submitit started (hydra/launcher=submitit_slurm, or
    submitit_local on this machine) take both from submitit's
    TorchDistributedEnvironment; a bare `srun` step without submitit, from
    SLURM's own scontrol and the job id."""
    env = os.environ
    if "SUBMITIT_EXECUTOR" in env:  # submitit exports it to the tasks it starts
        from submitit.helpers import TorchDistributedEnvironment

        found = TorchDistributedEnvironment()
        # Its local tasks all run on this machine: the loopback address works
        # even where the machine's own name does not resolve.
        env.setdefault(
            "MASTER_ADDR", "127.0.0.1" if where.launcher == "submitit_local" else found.master_addr
        )
        env.setdefault("MASTER_PORT", str(found.master_port))
    else:  # a bare srun step
        if "MASTER_ADDR" not in env:
            nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
            env["MASTER_ADDR"] = _first_host(nodes) if nodes else socket.gethostname()
        job = "".join(filter(str.isdigit, env.get("SLURM_JOB_ID", ""))) or "0"
        env.setdefault("MASTER_PORT", str(20000 + int(job) % 40000))
    env["RANK"], env["WORLD_SIZE"] = str(where.rank), str(where.size)
    env["LOCAL_RANK"] = str(where.local_rank)


def _first_host(nodes: str) -> str:
    """The first host of a SLURM node list (`gpu[3-4],cpu7`), as SLURM expands it."""
    try:
        return subprocess.run(
            ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        raise UserError(
            f"cannot expand the SLURM node list {nodes} with scontrol ({type(exc).__name__}); "
            f"set MASTER_ADDR to the host of the first task"
        ) from None


def _pick_gpu(where: Place) -> None:
    """One GPU per process: LOCAL_RANK's, or the only one a process sees
    (SLURM binding one GPU to each task)."""
    count = torch.cuda.device_count()
    if count == 1 and where.launcher == "slurm":
        torch.cuda.set_device(0)
        return
    if where.local_size > count or where.local_rank >= count:
        raise UserError(
            f"{where.local_size} processes on this node but {count} GPU(s): one GPU "
            f"per process; start at most {count} (e.g. torchrun --nproc_per_node={count})"
        )
    torch.cuda.set_device(where.local_rank)


def _check_gpus_unshared(world: World) -> None:
    """Two processes on one GPU (e.g. SLURM binding all tasks to one) would
    fail inside NCCL with an obscure message: say it in one line first."""
    here = (socket.gethostname(), str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid))
    everyone = [None] * world.size
    dist.all_gather_object(everyone, here)
    if len(set(everyone)) < world.size:
        raise everywhere(
            UserError(
                f"{world.size} processes share {len(set(everyone))} GPU(s): "
                f"one GPU per process (fewer tasks per node, or bind one GPU to each)"
            )
        )


def _collective_failed(exc: BaseException) -> bool:
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        sign in text
        for sign in (
            "Gloo",
            "gloo",
            "NCCL",
            "Connection closed",
            "Connection reset",
            "Broken pipe",
            "timed out",
            "Timed out",
        )
    )


@contextlib.contextmanager
def session(cfg):
    """The process group of one run, for the run's duration. One process:
    nothing to set up. Several: the group (gloo on CPU; gloo for the small
    agreements and NCCL for the gradients on CUDA), one GPU per process, and
    followers' logging silenced."""
    global _world
    where = place()
    if where.size == 1:
        yield _world
        return

    timeout = timedelta(seconds=int(cfg.distributed.timeout_s))
    sync_bn = bool(cfg.distributed.sync_batch_norm)
    try:  # the same answer in every process
        device = pick_device(cfg.device)
        if device.type == "cuda":
            _pick_gpu(where)
    except UserError as error:
        raise everywhere(error) from None
    if where.launcher in ("slurm", "submitit_local"):
        _task_rendezvous(where)
    backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=timeout, rank=where.rank, world_size=where.size)
    except Exception as exc:
        raise UserError(
            f"rank {where.rank}: cannot meet the other {where.size - 1} processes "
            f"at {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    world = World(where, device, sync_bn)
    silenced = log.disabled
    log.disabled = not world.writes  # followers log nothing (train.log is rank 0's)
    _world = world
    agreed_end = False
    try:
        if device.type == "cuda":
            _check_gpus_unshared(world)
        yield world
        agreed_end = True
    except BaseException as exc:
        agreed_end = getattr(exc, "everywhere", False)
        if _collective_failed(exc):
            said = re.sub(r"^\[[^\]]*\]\s*", "", (str(exc).strip().splitlines() or [""])[0])  # no source path
            raise PeerLost(
                f"rank {where.rank}: lost the other processes of this run (one of them "
                f"stopped or failed; its output says why): {said[:160]}"
            ) from None
        raise
    finally:
        _world = World()
        log.disabled = silenced
        try:
            if agreed_end:
                # Leave together: rank 0 may still be writing its last checkpoint,
                # and a launcher stops the others once one process has exited.
                dist.barrier()
        except Exception:
            pass
        dist.destroy_process_group()

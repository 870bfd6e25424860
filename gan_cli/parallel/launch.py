"""Which process of a launch this is, from the launcher's environment alone
(no torch import, so gan-train's command line stays quick). The process group
itself is gan_cli.parallel.distributed's."""

import dataclasses
import os

from gan_cli.errors import UserError


@dataclasses.dataclass(frozen=True)
class Place:
    """Where this process sits in its run, as its launcher says."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    launcher: str = ""  # "torchrun" (or any env:// launcher), "slurm", "submitit_local"


def place() -> Place:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE, else the
    tasks of a SLURM step (srun, which submitit uses): SLURM_PROCID,
    SLURM_STEP_NUM_TASKS, SLURM_LOCALID, else submitit's local tasks. A SLURM
    batch script itself (one process, however many tasks it asked for) is a
    single process."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        size = int(env["WORLD_SIZE"])
        return Place(
            int(env["RANK"]),
            size,
            int(env.get("LOCAL_RANK", 0)),
            int(env.get("LOCAL_WORLD_SIZE", size)),
            "torchrun",
        )
    tasks = int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if tasks > 1:
        return Place(int(env.get("SLURM_PROCID", 0)), tasks, int(env.get("SLURM_LOCALID", 0)), tasks, "slurm")
    # submitit's local executor (hydra/launcher=submitit_local), SLURM's stand-in on one machine.
    tasks = int(env.get("SUBMITIT_LOCAL_NTASKS", "1") or 1)
    if tasks > 1 and "SUBMITIT_LOCAL_GLOBALID" in env:
        return Place(
            int(env["SUBMITIT_LOCAL_GLOBALID"]),
            tasks,
            int(env.get("SUBMITIT_LOCAL_LOCALID", 0)),
            tasks,
            "submitit_local",
        )
    return Place()


def follower_overrides() -> list[str]:
    """Extra Hydra overrides for a process other than rank 0 of a torchrun
    launch, so it creates no run folder of its own: it runs in the launch
    folder, writes no .hydra/ files and opens no train.log (rank 0 tells it
    its run folder once the processes have met). Empty otherwise."""
    where = place()
    if where.size == 1 or where.rank == 0:
        return []
    return [
        "hydra.run.dir=.",
        "hydra.output_subdir=null",
        "~hydra.job_logging.handlers.file",
        "hydra.job_logging.root.handlers=[console]",
    ]


class PeerLost(UserError):
    """A collective failed: another process of the run stopped or failed."""


def everywhere(error: BaseException) -> BaseException:
    """Mark an error that every process raises alike, so that only rank 0
    reports it (gan_cli.commands.train) and the processes leave together."""
    error.everywhere = True
    return error


def echoed(error: BaseException) -> bool:
    """True on ranks other than 0 for an error rank 0 reports for all."""
    return bool(getattr(error, "everywhere", False)) and place().rank != 0


def relaunch_command() -> str:
    """The command that starts this launch again (for a resume line): gan-train,
    or torchrun with this launch's process counts."""
    where = place()
    if "TORCHELASTIC_RUN_ID" not in os.environ or where.size == 1:  # not under torchrun
        return "gan-train"
    nodes = where.size // max(where.local_size, 1)
    spread = f"--nnodes={nodes} <rendezvous options> " if nodes > 1 else ""
    return f"torchrun {spread}--nproc_per_node={where.local_size} -m gan_cli.train"

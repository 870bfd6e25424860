"""gan-train: compose the config with Hydra, then hand it to run(cfg)."""

import sys
from pathlib import Path

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from gan_cli.config.checks import check_data
from gan_cli.errors import UserError, exit_with
from gan_cli.parallel import launch


class JobFailed(CompactHydraException):
    """One job of a sweep failed; Hydra reports it in one line once the
    other jobs have run."""


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from gan_cli.run.runner import Interrupted, run  # after Hydra parsed the command line

    try:
        metrics = run(cfg)
    except UserError as error:
        fail(error)
    except Interrupted as stopped:
        if not launch.echoed(stopped):  # several processes: rank 0 says it for all
            print(f"gan-train: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)
    # A sweeper (e.g. Optuna) optimises the value the main returns.
    if not cfg.optimized_metric:
        return None
    if cfg.optimized_metric not in metrics:
        fail(
            UserError(
                f"optimized_metric={cfg.optimized_metric} is not among this run's final "
                f"metrics: {', '.join(sorted(k for k in metrics if not k[-1].isdigit()))}"
            )
        )
    return metrics[cfg.optimized_metric]


def fail(error: UserError):
    """A single run exits with one line. In a sweep (-m) the job's line is
    printed now and the job fails without ending the sweep: the launcher runs
    the other jobs (a sweeper such as Optuna records a failed trial), then
    Hydra repeats the first failure and exits non-zero."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    quiet = launch.echoed(error)  # several processes: rank 0 says it for all
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        if not quiet:
            print(f"gan-train: error: job {HydraConfig.get().job.num}: {error}", file=sys.stderr)
        raise JobFailed(f"gan-train: error: {error}") from None
    if quiet:
        sys.exit(2)
    exit_with(error, "gan-train")


def cli() -> None:
    """The console script: check the overrides of a run, or of every value of
    a sweep, first, so that bad input gets one line (and no run folder)
    before Hydra starts a job."""
    args = sys.argv[1:]
    flags = {a for a in args if a.startswith("-")}
    overrides = [a for a in args if not a.startswith("-")]
    where = launch.place()
    try:
        if where.size > 1 and flags & {"-m", "--multirun"}:
            raise UserError(
                f"-m under a launcher of {where.size} processes would run the whole "
                f"sweep in every process; start one launch per job, or sweep with "
                f"hydra/launcher=submitit_slurm and hydra.launcher.tasks_per_node"
            )
        if overrides and not flags:
            cfg, run_dir = check_overrides(overrides)
            # The run's own resume decision, taken now, so that a missing or
            # unreadable checkpoint, or a folder that already holds a run, is
            # refused before Hydra makes a folder (and train.log) for a run that
            # never starts. The run reads the checkpoint again. Several
            # processes: rank 0 alone may see it, and decides in the run for all.
            if where.size == 1:
                from gan_cli.run.resume import resume_state

                resume_state(cfg, run_dir)
                # Missing data, likewise (a download the config allows happens
                # now, into dataset.root, and the run reads the files).
                check_data(cfg)
        elif overrides and flags <= {"-m", "--multirun"}:  # not --help, --cfg, -cn, ...
            for variant in sweep_variants(overrides):
                check_data(check_overrides(variant)[0])
    except UserError as error:
        if where.rank:  # every process checks the same overrides; rank 0 says it
            sys.exit(2)
        exit_with(error, "gan-train")
    # Under torchrun, processes other than rank 0 make no run folder of their own.
    sys.argv += launch.follower_overrides()
    main()


def sweep_variants(overrides: list[str]) -> list[list[str]]:
    """Plain override lists that together use every value of every listed
    sweep (a,b,c or range(...)) once: the first values together, then each
    other value with the rest at their first. Sweeps a sweeper searches
    (interval(...)) are left to it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gan_cli.config.compose import one_line

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:
        raise UserError(one_line(exc)) from None
    choices = []  # per override: the plain lines to try
    for override in parsed:
        if not override.is_sweep_override():
            choices.append([override.input_line])
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # an interval: not enumerable
            choices.append([])
            continue
        choices.append([f"{override.get_key_element()}={v}" for v in values])
    first = [lines[0] for lines in choices if lines]
    variants = [first]
    for i, lines in enumerate(choices):
        for line in lines[1:]:
            variants.append([line if j == i else other[0] for j, other in enumerate(choices) if other])
    return variants


def check_overrides(overrides: list[str]) -> tuple[DictConfig, Path]:
    """The checked config, and the folder Hydra would run it in."""
    from omegaconf import open_dict

    from gan_cli.config.checks import validate
    from gan_cli.config.compose import compose_config, one_line

    cfg = compose_config(overrides, job_runtime=True, hydra_node=True)
    try:
        run_dir = Path(cfg.hydra.run.dir)
    except Exception as exc:  # an interpolation that cannot resolve
        raise UserError(one_line(exc)) from None
    with open_dict(cfg):
        del cfg["hydra"]
    validate(cfg)
    return cfg, run_dir


if __name__ == "__main__":
    cli()

"""gan-train: compose the config with Hydra, check it, then hand it to run(cfg).

A single run (overrides only, no flags) is composed once: that config is
checked, so that bad input gets one line and no run folder, and then run as
@hydra.main runs a job (Hydra's run_job: the run folder, .hydra/, train.log).
A sweep (-m) checks every listed value first and goes through @hydra.main,
as does anything else with flags (--cfg, --help, -cn, ...)."""

import os
import sys
from pathlib import Path

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from gan_cli import __version__
from gan_cli.config.checks import check_data, resumes
from gan_cli.errors import UserError, command, file_in_the_way, reported
from gan_cli.output.layout import HYDRA, UNSTARTED, check_run_folder
from gan_cli.parallel import launch

PROG = "gan-train"
# How gan-train ends on bad input, also inside a job: one line, exit 2, and
# with several processes only rank 0 says it. Its files are all written
# through errors.writing, so any other OSError is a fault, shown in full.
REPORTING = {"writing": None, "quiet": launch.echoed}


class JobFailed(CompactHydraException):
    """One job of a sweep failed; Hydra reports it in one line once the
    other jobs have run."""


# Settings that name a file or folder; a relative one means the folder
# gan-train was started in (`auto`, `off`, true and false name none).
PATH_KEYS = (
    "dataset.path",
    "dataset.root",
    "dataset.cache_dir",
    "eval.cache_dir",
    "eval.inception",
    "resume",
)


def paths_from_the_start_folder(cfg: DictConfig) -> None:
    """hydra.job.chdir=true runs the job inside its run folder: the relative
    paths of PATH_KEYS are made absolute first, so they still mean where the
    command was typed (as Hydra's to_absolute_path does)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and HydraConfig.get().job.chdir:
        _absolute_paths(cfg)


def _absolute_paths(cfg: DictConfig) -> None:
    """PATH_KEYS made absolute from the start folder (Hydra's original cwd
    in a job, the current folder before one)."""
    from hydra.utils import to_absolute_path
    from omegaconf import OmegaConf, open_dict, read_write

    for key in PATH_KEYS:
        value = OmegaConf.select(cfg, key)
        if (
            isinstance(value, str)
            and value not in ("", "auto", "off", "true", "false")
            and not os.path.isabs(value)
        ):
            with read_write(cfg), open_dict(cfg):
                OmegaConf.update(cfg, key, to_absolute_path(value))


def train_job(cfg: DictConfig) -> float | None:
    """Hydra's task function: one run, or one job of a sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    paths_from_the_start_folder(cfg)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        try:
            return _train(cfg)
        except UserError as error:
            fail_job(error)
    with reported(PROG, **REPORTING):
        return _train(cfg)


main = hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="config")(train_job)


def _train(cfg: DictConfig) -> float | None:
    from gan_cli.run.runner import Interrupted, optimized_metric, run  # after Hydra parsed the command line

    try:
        metrics = run(cfg)
    except Interrupted as stopped:
        if not launch.echoed(stopped):  # several processes: rank 0 says it for all
            print(f"{PROG}: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)
    # A sweeper (e.g. Optuna) optimises the value the main returns; under a
    # launcher of several processes rank 0 alone evaluates, and returns it.
    if not cfg.optimized_metric or launch.place().rank != 0:
        return None
    return optimized_metric(cfg, metrics)


def fail_job(error: UserError):
    """A job of a sweep (-m) prints its line now and fails without ending the
    sweep: the launcher runs the other jobs (a sweeper such as Optuna records
    a failed trial), then Hydra repeats the first failure and exits non-zero."""
    from hydra.core.hydra_config import HydraConfig

    if not launch.echoed(error):  # several processes: rank 0 says it for all
        print(f"{PROG}: error: job {HydraConfig.get().job.num}: {error}", file=sys.stderr)
    raise JobFailed(f"{PROG}: error: {error}") from None


@command(PROG, **REPORTING)
def cli() -> None:
    """The console script: check the overrides of a run, or of every value of
    a sweep, first, so that bad input gets one line (and no run folder)
    before Hydra starts a job."""
    args = sys.argv[1:]
    flags = {a for a in args if a.startswith("-")}
    overrides = [a for a in args if not a.startswith("-")]
    if "--version" in flags:  # Hydra's own would name Hydra's version alone
        print(f"{PROG} (gan-cli {__version__}; Hydra {hydra.__version__})")
        return
    if flags:
        check_flags(args)
    # Under torchrun, processes other than rank 0 make no run folder of their own.
    followers = launch.follower_overrides()
    if not flags and not _names_mode(overrides):
        searches = [o for o in overrides if o.split("=", 1)[0].lstrip("+") == "hparams_search"]
        if searches and not searches[-1].endswith("=null"):  # its sweeper runs only under -m
            raise UserError(f"{searches[-1]} searches with a sweep: add -m (gan-train -m {searches[-1]} ...)")
        run_once([*overrides, *followers])
        return
    where = launch.place()
    if where.size > 1 and flags & {"-m", "--multirun"}:
        raise launch.everywhere(
            UserError(
                f"-m under a launcher of {where.size} processes would run the whole "
                f"sweep in every process; start one launch per job, or sweep with "
                f"hydra/launcher=submitit_slurm and hydra.launcher.tasks_per_node"
            )
        )
    if overrides and flags <= {"-m", "--multirun"}:  # not --help, --cfg, -cn, ...
        from gan_cli.config.compose import compose_config

        for variant in sweep_variants(overrides):
            composed = compose_config(variant, hydra_node=True)
            sweep_dir = folder_of(composed, "hydra.sweep.dir")
            check_folder_path(sweep_dir, "hydra.sweep.dir")
            job = check_overrides_of(composed)
            check_sweep_folder(sweep_dir, job.resume)
            check_searched_keys(composed, job)
            check_data(job)
    sys.argv += followers
    main()


# Flags that print and exit (argparse would do so while checking them).
SHOWING = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def check_flags(args: list[str]) -> None:
    """Hydra's flags read by Hydra's own parser first, so that an unknown flag
    or value (--bogus, --cfg nonsense) gets one line, not its usage block."""
    if SHOWING & {a.split("=", 1)[0] for a in args}:
        return
    from hydra._internal.utils import get_args_parser  # what @hydra.main parses with; hydra-core is pinned

    parser = get_args_parser()

    def refuse(message: str):
        raise UserError(f"{message} (see {PROG} --help)")

    parser.error = refuse
    parser.parse_intermixed_args(args)  # where the flags stand is left to the checks that follow


def _names_mode(overrides: list[str]) -> bool:
    """hydra.mode given on the command line: Hydra decides between a run and
    a sweep (hydra.mode=MULTIRUN is -m)."""
    return any(o.lstrip("+~").split("=", 1)[0] == "hydra.mode" for o in overrides)


def run_once(overrides: list[str]) -> None:
    """A single run from one composition of its config: the config is
    checked, then Hydra runs it as @hydra.main would (its run_job and the
    callbacks a config names), without composing it again."""
    from hydra._internal.callbacks import Callbacks  # what Hydra.run uses; hydra-core is pinned to 1.3
    from hydra.core.utils import run_job
    from hydra.types import HydraContext
    from omegaconf import read_write

    from gan_cli.config.compose import compose_run, hydra_app

    with hydra_app() as app:
        try:
            # hydra.mode=RUN: the override @hydra.main adds for a run.
            cfg = compose_run(app, [*overrides, "hydra.mode=RUN"])
            continues = check_run(cfg)
        except UserError as error:
            # Every process composes and checks the same overrides; rank 0 says it.
            raise launch.everywhere(error) from None
        if continues:  # Hydra's record of how the run started stays; this one goes beside it
            with read_write(cfg.hydra):
                cfg.hydra.output_subdir = resume_record(Path(cfg.hydra.run.dir))
        callbacks = Callbacks(cfg)
        callbacks.on_run_start(config=cfg, config_name="config")
        new_folders = _missing_folders(Path(cfg.hydra.run.dir))
        try:
            done = run_job(
                task_function=train_job,
                config=cfg,
                job_dir_key="hydra.run.dir",
                job_subdir_key=None,
                hydra_context=HydraContext(config_loader=app.config_loader, callbacks=callbacks),
            )
        except SystemExit as end:
            if end.code == 2:  # refused, train_job said why; a folder with nothing of the run's goes
                _remove_unstarted(new_folders)
            raise
        callbacks.on_run_end(config=cfg, config_name="config", job_return=done)
        _ = done.return_value  # raises what the run raised: a fault (train_job reports bad input)


def _missing_folders(run_dir: Path) -> list[Path]:
    """run_dir and those of its parents that do not exist yet, innermost first:
    the folders Hydra is about to make for this run."""
    missing = []
    for folder in [run_dir, *run_dir.parents]:
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_unstarted(new_folders: list[Path]) -> None:
    """A run refused by a check that needs the built data set (its shape, its
    labels, its size) leaves no folder behind, like one refused before Hydra
    made it: the folders this run made, if they hold nothing it wrote."""
    import shutil

    if not new_folders or not new_folders[0].is_dir():
        return
    if {entry.name for entry in new_folders[0].iterdir()} <= UNSTARTED:
        shutil.rmtree(new_folders[0], ignore_errors=True)
        for parent in new_folders[1:]:  # e.g. outputs/<date>, if this run made it and it is now empty
            try:
                parent.rmdir()
            except OSError:
                break


def check_run(cfg: DictConfig) -> bool:
    """What can be known before Hydra makes the run's folder: the values,
    and (one process) the resume decision and the data. True where the run
    continues a checkpoint of its own folder (hydra.run.dir)."""
    run_dir = folder_of(cfg, "hydra.run.dir")  # resolved once: the run reads the same folder
    check_folder_path(run_dir, "hydra.run.dir")
    check_run_folder(run_dir)  # Hydra writes .hydra/ and train.log there first
    job = check_overrides_of(cfg)
    continues = False
    if launch.place().size == 1:
        from omegaconf import OmegaConf

        from gan_cli.run.resume import _run_dir_of, check_same_config, resume_state

        # The run's own resume decision, taken now, so that a missing or
        # unreadable checkpoint, a folder that already holds a run, or a
        # changed config is refused before Hydra writes its record of the
        # refused command into the folder (and train.log). The run reads the
        # checkpoint again. Several processes: rank 0 alone may see it, and
        # decides in the run for all.
        source, state = resume_state(job, run_dir)
        if state is not None:
            if cfg.hydra.job.chdir:  # as the job will see them
                _absolute_paths(job)
            current = OmegaConf.to_container(job, resolve=True)
            check_same_config(source, state["config"], current, job.resume_allow)
            continues = _run_dir_of(source).resolve() == run_dir.resolve()
        # Missing data, likewise (a download the config allows happens now,
        # into dataset.root, and the run reads the files).
        check_data(job)
    if job.eval.classifier == "auto":  # the cache its first evaluation writes the classifier to
        from gan_cli.classifier import cache_root

        configured = job.eval.cache_dir
        from_environment = not configured and os.environ.get("GAN_CLI_CACHE")
        check_folder_path(cache_root(configured), "GAN_CLI_CACHE" if from_environment else "eval.cache_dir")
    return continues


def resume_record(run_dir: Path) -> str:
    """Where Hydra records a resumed run's config and overrides: .hydra/resume_<n>,
    the next free n, so that .hydra/ keeps how the run started (gan-report
    groups a sweep's jobs by those overrides) and each resume has its own."""
    n = 1
    while (run_dir / HYDRA / f"resume_{n}").exists():
        n += 1
    return f"{HYDRA}/resume_{n}"


def folder_of(cfg: DictConfig, key: str) -> Path:
    """The folder a setting of `cfg` names (hydra.run.dir, hydra.sweep.dir), resolved."""
    from omegaconf import OmegaConf

    from gan_cli.config.compose import one_line

    try:
        return Path(OmegaConf.select(cfg, key, throw_on_missing=True))
    except Exception as exc:  # an interpolation that cannot resolve
        raise UserError(one_line(exc)) from None


def check_folder_path(folder: Path, key: str) -> None:
    """The run's (or sweep's) folder can be made: neither it nor a folder on
    its way is an existing file."""
    if (blocker := file_in_the_way(folder)) is not None:
        raise UserError(f"{key}={folder}: {blocker} is a file, not a folder")


def check_sweep_folder(sweep_dir: Path, resume) -> None:
    """A folder an earlier sweep wrote (multirun.yaml) takes a sweep only to
    continue it: Hydra writes each job's .hydra/ record before the job can
    refuse to start over an earlier job's run, so a new sweep there would
    leave the earlier runs' checkpoints and metrics beside its own config."""
    if (sweep_dir / "multirun.yaml").exists() and not resumes(resume):
        raise UserError(
            f"hydra.sweep.dir={sweep_dir} already holds a sweep (multirun.yaml); continue its jobs "
            f"with resume=true, or choose another hydra.sweep.dir"
        )


def check_searched_keys(composed: DictConfig, job: DictConfig) -> None:
    """A sweeper's search space (hydra.sweeper.params, e.g. hparams_search=optuna's)
    names only keys the job has: objective=mse has no objective.critic_steps,
    and Hydra would refuse every trial in its own several lines."""
    from omegaconf import OmegaConf

    params = OmegaConf.select(composed, "hydra.sweeper.params") or {}
    for key in params:
        if OmegaConf.select(job, key, default="<absent>") == "<absent>":
            raise UserError(
                f"hydra.sweeper.params searches {key}, which this config does not have; give your own "
                f"search space: hydra.sweeper.params=null and each key to search as a sweep, "
                f"e.g. 'optimizer.lr=tag(log, interval(1e-5, 1e-3))'"
            )


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
        if not values:  # Hydra would launch no job at all, and exit 0
            raise UserError(f"{override.input_line} sweeps over no value, so the sweep would run nothing")
        choices.append([f"{override.get_key_element()}={v}" for v in values])
    first = [lines[0] for lines in choices if lines]
    variants = [first]
    for i, lines in enumerate(choices):
        for line in lines[1:]:
            variants.append([line if j == i else other[0] for j, other in enumerate(choices) if other])
    return variants


def check_overrides_of(cfg: DictConfig) -> DictConfig:
    """The job's view of `cfg` (composed with its hydra node), its values checked."""
    from gan_cli.config.checks import validate
    from gan_cli.config.compose import job_view, one_line

    try:
        job = job_view(cfg)
    except UserError:
        raise
    except Exception as exc:  # an interpolation that cannot resolve
        raise UserError(one_line(exc)) from None
    validate(job)
    return job


if __name__ == "__main__":
    cli()

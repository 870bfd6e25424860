"""The one place a config is composed: gan-train's single run (composed
once, checked, then run), the check of each value of a sweep, gan-classifier,
gan-bench and the tests all get the config gan-train would run, and a bad
override becomes one UserError line."""

import contextlib
import copy
import os
import re

from omegaconf import DictConfig, open_dict, read_write

from gan_cli.errors import UserError

# hydra.job.name, which names a run's log file (train.log): @hydra.main
# takes it from the module of gan-train's task function, gan_cli.commands.train.
JOB_NAME = "train"


@contextlib.contextmanager
def hydra_app():
    """Hydra set up on the shipped config as gan-train's @hydra.main sets it
    up, for as long as the block runs; yields the Hydra instance."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_module(config_module="gan_cli.conf", version_base="1.3", job_name=JOB_NAME):
        yield GlobalHydra.instance().hydra


def compose_config(overrides: list[str], job_runtime: bool = False, hydra_node: bool = False) -> DictConfig:
    """The composed config, without the hydra node unless hydra_node=True.
    job_runtime=True gives what the job would see (job_view): values that
    read Hydra's runtime, such as dataset.root's ${hydra:runtime.cwd},
    resolved as if it ran here, in a folder not yet made."""
    from hydra import compose

    with hydra_app():
        try:
            cfg = compose(
                config_name="config", overrides=list(overrides), return_hydra_config=job_runtime or hydra_node
            )
        except Exception as exc:
            raise UserError(one_line(exc)) from None
    return job_view(cfg, keep_hydra=hydra_node) if job_runtime else cfg


def compose_run(hydra, overrides: list[str]) -> DictConfig:
    """A single run's config, with its hydra node, composed inside hydra_app()
    exactly as @hydra.main composes it for the run (Hydra's logging set up)."""
    from hydra.types import RunMode

    try:
        return hydra.compose_config(
            config_name="config", overrides=list(overrides), run_mode=RunMode.RUN, with_log_configuration=True
        )
    except Exception as exc:
        raise UserError(one_line(exc)) from None


def job_view(cfg: DictConfig, keep_hydra: bool = False) -> DictConfig:
    """What a job of `cfg` (composed with its hydra node) sees, known before
    Hydra starts it: a copy whose hydra.runtime stands in for the job's (run
    here, in a folder not yet made), with dataset and run_dir resolved, and
    without the hydra node unless keep_hydra. `cfg` itself is left as it is,
    so it can still be run."""
    from hydra.core.hydra_config import HydraConfig

    view = copy.deepcopy(cfg)
    with read_write(view.hydra.runtime), open_dict(view.hydra.runtime):
        view.hydra.runtime.cwd = os.getcwd()
        view.hydra.runtime.output_dir = "."
    HydraConfig.instance().set_config(view)
    try:
        with open_dict(view):
            view.dataset = _resolved(view.dataset)
            view.run_dir = view.run_dir
            if not keep_hydra:
                del view["hydra"]
    finally:
        HydraConfig.instance().cfg = None  # a job sets its own
    return view


def _resolved(node):
    from omegaconf import OmegaConf

    return OmegaConf.create(OmegaConf.to_container(node, resolve=True))


def one_line(exc: Exception) -> str:
    """Hydra's composition errors, as one line a user can act on."""
    text = str(exc)
    if m := re.search(r"Could not find '([\w/]+)/(\w+)'", text):
        group, option = m.groups()
        # Hydra lists the group's options from every config source (plugins
        # bring hydra/launcher's and hydra/sweeper's); the shipped YAML otherwise.
        listed = re.search(r"Available options in '[\w/]+':\n((?:\t.*\n?)+)", text)
        choices = listed.group(1).split() if listed else options(group)
        return f"{group}={option} is not an option of {group}; choose from: {', '.join(choices)}"
    if m := re.search(r"Could not override '([\w.]+)'", text):
        key = m.group(1)
        return f"{key} is not a config key (gan-train --cfg job shows them all; +{key}=... adds a new one)"
    if m := re.search(
        r"Value '(.*)' (?:of type '\w+' )?could not be converted to (\w+)\s+full_key: ([\w.]+)", text, re.S
    ):
        value, kind, key = m.groups()
        return f"{key} must be {kind.lower()}, got {value!r}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot compose the config: {first}"


def options(group: str) -> list[str]:
    """The options of a config group, from the shipped YAML files."""
    from importlib.resources import files

    folder = files("gan_cli.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))

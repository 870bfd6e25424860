"""The one place a config is composed: gan-train's check of its overrides,
gan-classifier, gan-bench and the tests all get the config gan-train would
run, and a bad override becomes one UserError line."""

import os
import re

from omegaconf import DictConfig, open_dict

from gan_cli.errors import UserError


def compose_config(overrides: list[str], job_runtime: bool = False, hydra_node: bool = False) -> DictConfig:
    """The composed config, without the hydra node unless hydra_node=True.
    job_runtime=True stands in for a job's runtime (run here, in a folder not
    yet made) so that values reading it, such as dataset.root's
    ${hydra:runtime.cwd}, resolve; those values are then resolved in place."""
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    try:
        with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
            cfg = compose(
                config_name="config", overrides=list(overrides), return_hydra_config=job_runtime or hydra_node
            )
    except Exception as exc:
        raise UserError(one_line(exc)) from None
    if not job_runtime:
        return cfg
    with open_dict(cfg):
        cfg.hydra.runtime.cwd = os.getcwd()
        cfg.hydra.runtime.output_dir = "."
    HydraConfig.instance().set_config(cfg)
    try:
        with open_dict(cfg):
            cfg.dataset = _resolved(cfg.dataset)
            cfg.run_dir = cfg.run_dir
            if not hydra_node:
                del cfg["hydra"]
    finally:
        HydraConfig.instance().cfg = None  # a job sets its own
    return cfg


def _resolved(node):
    from omegaconf import OmegaConf

    return OmegaConf.create(OmegaConf.to_container(node, resolve=True))


def one_line(exc: Exception) -> str:
    """Hydra's composition errors, as one line a user can act on."""
    text = str(exc)
    if m := re.search(r"Could not find '([\w/]+)/(\w+)'", text):
        group, option = m.groups()
        return f"{group}={option} is not an option of {group}; choose from: {', '.join(options(group))}"
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

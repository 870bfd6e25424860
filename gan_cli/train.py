"""gan-train: compose the config with Hydra, then hand it to run(cfg)."""

import re
import sys

import hydra
from omegaconf import DictConfig

from gan_cli.errors import UserError, exit_with


@hydra.main(version_base="1.3", config_path="pkg://gan_cli.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from gan_cli.runner import Interrupted, run   # after Hydra parsed the command line

    try:
        metrics = run(cfg)
    except UserError as error:
        exit_with(error, "gan-train")
    except Interrupted as stopped:
        print(f"gan-train: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)
    # A sweeper (e.g. Optuna) optimises the value the main returns.
    if not cfg.optimized_metric:
        return None
    if cfg.optimized_metric not in metrics:
        exit_with(UserError(f"optimized_metric={cfg.optimized_metric} is not among this run's final "
                            f"metrics: {', '.join(sorted(k for k in metrics if not k[-1].isdigit()))}"),
                  "gan-train")
    return metrics[cfg.optimized_metric]


def cli() -> None:
    """The console script: check a plain run's overrides first, so that bad
    input gets one line (and no run folder) before Hydra starts the job."""
    args = sys.argv[1:]
    if args and not any(a.startswith("-") for a in args):     # not -m, --help, --cfg, ...
        try:
            check_overrides(args)
        except UserError as error:
            exit_with(error, "gan-train")
    main()


def check_overrides(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_module

    from gan_cli.config import validate

    try:
        with initialize_config_module(config_module="gan_cli.conf", version_base="1.3"):
            # run_dir names Hydra's job folder, which does not exist yet.
            cfg = compose(config_name="config", overrides=[*overrides, "run_dir=."])
    except Exception as exc:
        raise UserError(_one_line(exc)) from None
    validate(cfg)


def _one_line(exc: Exception) -> str:
    text = str(exc)
    if m := re.search(r"Could not find '([\w/]+)/(\w+)'", text):
        group, option = m.groups()
        return (f"{group}={option} is not an option of {group}; choose from: "
                f"{', '.join(_options(group))}")
    if m := re.search(r"Could not override '([\w.]+)'", text):
        key = m.group(1)
        return f"{key} is not a config key (gan-train --cfg job shows them all; +{key}=... adds a new one)"
    if m := re.search(r"Value '(.*)' (?:of type '\w+' )?could not be converted to (\w+)\s+full_key: ([\w.]+)",
                      text, re.S):
        value, kind, key = m.groups()
        return f"{key} must be {kind.lower()}, got {value!r}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot compose the config: {first}"


def _options(group: str) -> list[str]:
    from importlib.resources import files

    folder = files("gan_cli.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


if __name__ == "__main__":
    cli()

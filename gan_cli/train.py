"""gan-train: compose the config with Hydra, then hand it to run(cfg)."""

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
    return metrics.get(cfg.optimized_metric) if cfg.optimized_metric else None


if __name__ == "__main__":
    main()

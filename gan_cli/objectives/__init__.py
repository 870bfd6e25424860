"""Objectives: pure loss functions (losses.py) and one small class per
objective, chosen by `_target_` in conf/objective/*.yaml."""

from gan_cli.objectives.base import Objective
from gan_cli.objectives.minimax import MinimaxGAN
from gan_cli.objectives.mse import MSE
from gan_cli.objectives.wasserstein import WGAN

__all__ = ["MSE", "MinimaxGAN", "Objective", "WGAN"]

"""Objectives: pure loss functions (losses.py, fdiv.py) and one small class per
objective, chosen by `_target_` in conf/objective/*.yaml."""

from gan_cli.objectives.base import Objective
from gan_cli.objectives.fgan import FGAN
from gan_cli.objectives.gradient_penalty import WGANGP
from gan_cli.objectives.hinge import HingeGAN
from gan_cli.objectives.least_squares import LeastSquaresGAN
from gan_cli.objectives.minimax import MinimaxGAN
from gan_cli.objectives.mse import MSE
from gan_cli.objectives.relativistic import RelativisticGAN
from gan_cli.objectives.wasserstein import WGAN

__all__ = [
    "FGAN",
    "HingeGAN",
    "LeastSquaresGAN",
    "MSE",
    "MinimaxGAN",
    "Objective",
    "RelativisticGAN",
    "WGAN",
    "WGANGP",
]

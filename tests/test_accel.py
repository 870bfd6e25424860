"""The speed options (train.compile, train.precision, train.channels_last)
run on the CPU and do not change what is trained."""

import math

import pytest
import torch

from gan_cli.checkpoint import build_models, load_checkpoint
from gan_cli.runner import run

NO_EVAL = ["eval.classifier=off"]


def _weights(run_dir):
    state = load_checkpoint(run_dir)
    G, D = build_models(state["config"], state["model_args"])
    G.load_state_dict(state["generator"])            # strict: compiled runs keep plain keys
    D.load_state_dict(state["discriminator"])
    return state, torch.cat([p.detach().flatten() for p in [*G.parameters(), *D.parameters()]])


@pytest.mark.parametrize("objective", ["wgan", "gan"])       # RMSProp; Adam
def test_compiled_nets_and_optimizer_steps_train_the_same_weights(make_cfg, objective):
    cfgs = {name: make_cfg(f"objective={objective}", *extra, *NO_EVAL) for name, extra in [
        ("init", ["train.steps=0"]), ("plain", ["train.steps=6"]),
        ("compiled", ["train.steps=6", "train.compile=true"])]}
    metrics = {name: run(cfg) for name, cfg in cfgs.items()}
    assert math.isfinite(metrics["compiled"]["loss/g"])
    weights = {name: _weights(cfg.run_dir)[1] for name, cfg in cfgs.items()}
    assert load_checkpoint(cfgs["compiled"].run_dir)["step"] == 6
    # Fused kernels round differently (and Adam's normalised step magnifies
    # that where a gradient is near zero), but the updates are the same:
    # the runs differ by under 1% of how far the weights moved.
    moved = (weights["plain"] - weights["init"]).abs().mean()
    apart = (weights["compiled"] - weights["plain"]).abs().mean()
    assert moved > 0 and apart < 0.01 * moved


def test_bf16_autocast_runs_on_the_cpu_and_keeps_fp32_weights(make_cfg):
    cfg = make_cfg("objective=gan", "train.precision=bf16", *NO_EVAL)
    metrics = run(cfg)
    assert math.isfinite(metrics["loss/g"]) and math.isfinite(metrics["loss/d"])
    state, weights = _weights(cfg.run_dir)
    assert weights.dtype == torch.float32 and torch.isfinite(weights).all()


def test_channels_last_conv_nets_train_on_the_cpu(make_cfg):
    cfg = make_cfg("dataset=digits", "model=dcgan", "model.g_channels=8", "model.d_channels=8",
                   "train.batch_size=16", "latent.dim=8", "train.channels_last=true",
                   "train.steps=4", *NO_EVAL, tiny=False)
    metrics = run(cfg)
    assert math.isfinite(metrics["loss/g"])
    assert load_checkpoint(cfg.run_dir)["step"] == 4

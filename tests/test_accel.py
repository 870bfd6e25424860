"""The speed options (train.compile, train.precision, train.channels_last)
run on the CPU and do not change what is trained."""

import math

import pytest
import torch
from torch import nn

from gan_cli.config.build import build_models
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run
from gan_cli.training.experiment import Experiment
from gan_cli.training.loop import run_steps
from gan_cli.training.meter import Meter

NO_EVAL = ["eval.classifier=off"]


def _weights(run_dir):
    state = load_checkpoint(run_dir)
    G, D = build_models(state["config"], state["model_args"])
    G.load_state_dict(state["generator"])  # strict: compiled runs keep plain keys
    D.load_state_dict(state["discriminator"])
    return state, torch.cat([p.detach().flatten() for p in [*G.parameters(), *D.parameters()]])


@pytest.mark.parametrize(
    "objective",
    [
        ["objective=wgan"],  # RMSProp
        ["objective=gan"],  # Adam
        # D differentiated twice, which compiled nets cannot do: those passes
        # run eagerly, on every D step (WGAN-GP) or on R1's and R2's steps
        ["objective=wgan_gp"],
        ["objective=gan", "objective.r1=1", "objective.r2=1", "objective.r1_every=2"],
    ],
    ids=["wgan", "gan", "wgan_gp", "gan-lazy-r1-r2"],
)
def test_compiled_nets_and_optimizer_steps_train_the_same_weights(make_cfg, objective):
    cfgs = {
        name: make_cfg(*objective, *extra, *NO_EVAL)
        for name, extra in [
            ("init", ["train.steps=0"]),
            ("plain", ["train.steps=6"]),
            ("compiled", ["train.steps=6", "train.compile=true"]),
        ]
    }
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


def _output_dtypes_and_input_layouts(cfg, steps: int = 2):
    """Run `steps` generator steps of the experiment a config builds, recording
    what each of D's layers with weights computed in (its output dtype) and
    whether its input arrived in channels_last layout; then the weights."""
    exp = Experiment(cfg)
    seen = []

    def record(module, inputs, output):
        x = inputs[0]
        seen.append(
            (
                type(module).__name__,
                output.dtype,
                x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last),
            )
        )

    layers = [m for m in exp.parts.discriminator.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    hooks = [m.register_forward_hook(record) for m in layers]
    run_steps(exp.parts, 0, steps, Meter(), lambda step: True)
    for hook in hooks:
        hook.remove()
    return exp, seen


@pytest.mark.parametrize(
    "precision,computed", [("bf16", torch.bfloat16), ("fp32", torch.float32), ("auto", torch.float32)]
)
def test_bf16_autocast_computes_in_bf16_on_the_cpu_and_keeps_fp32_weights(make_cfg, precision, computed):
    cfg = make_cfg("objective=gan", f"train.precision={precision}", *NO_EVAL)
    exp, seen = _output_dtypes_and_input_layouts(cfg)
    assert seen and {dtype for _, dtype, _ in seen} == {computed}
    weights = [p for net in (exp.parts.generator, exp.parts.discriminator) for p in net.parameters()]
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in weights)
    metrics = run(make_cfg("objective=gan", f"train.precision={precision}", *NO_EVAL))
    assert math.isfinite(metrics["loss/g"]) and math.isfinite(metrics["loss/d"])


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_conv_nets_train_on_the_cpu(make_cfg, channels_last):
    # 28x28 digits: D has two convs, the second one's input 8 channels wide.
    cfg = make_cfg(
        "dataset=mnist_subset",
        "model=dcgan",
        "model.g_channels=8",
        "model.d_channels=8",
        "train.batch_size=16",
        "latent.dim=8",
        f"train.channels_last={channels_last}",
        "train.steps=4",
        *NO_EVAL,
        tiny=False,
    )
    exp, seen = _output_dtypes_and_input_layouts(cfg)
    convs = [m for m in exp.parts.discriminator.modules() if isinstance(m, nn.Conv2d)]
    # (A weight with one input channel is laid out alike either way.)
    assert len(convs) > 1 and all(
        c.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        for c in convs
        if c.in_channels > 1
    )
    # Every conv of D after the first sees its input in the layout asked for
    # (the first gets the batch as the sampler made it).
    layouts = [last for name, _, last in seen if name == "Conv2d"]
    assert len(layouts) > len(convs) and all(last == channels_last for last in layouts[1 : len(convs)])
    metrics = run(cfg)
    assert math.isfinite(metrics["loss/g"])
    assert load_checkpoint(cfg.run_dir)["step"] == 4


def test_a_compiled_generator_is_cut_by_its_own_jacobian(make_cfg):
    # Each row of G's Jacobian is a backward pass through one kept graph,
    # which a compiled G frees after the first: those passes run eagerly.
    import torch._dynamo

    torch._dynamo.reset()  # compiled afresh, not within the caches earlier tests filled
    cfg = make_cfg(
        "objective=gan",
        "dataset=ring8",
        "train.steps=4",
        "train.compile=true",
        "eval.sampler=jacobian",
        "eval.jacobian_drop=20",
    )
    metrics = run(cfg)
    assert metrics["refine/acceptance"] == pytest.approx(0.8, abs=0.03)
    assert 0 <= metrics["toy/high_quality_refined"] <= 1
    assert math.isfinite(metrics["toy/w1_refined"])

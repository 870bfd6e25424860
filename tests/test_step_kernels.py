"""Fewer kernels per step, the same numbers: WGAN's clipping as two
multi-tensor ops, and the optimizers through their multi-tensor paths, each
checked bit for bit against the one-tensor-at-a-time path on the CPU."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from gan_cli.config.build import build
from gan_cli.config.compose import compose_config
from gan_cli.models import build_mlp
from gan_cli.objectives import losses
from gan_cli.objectives.wasserstein import WGAN, clip_weights_

OPTIMIZERS = ["adam", "adam_gp", "rmsprop", "sgd"]


def _critic(seed: int = 0, edges: bool = True) -> torch.nn.Module:
    torch.manual_seed(seed)
    _, D = build_mlp([1, 8, 8], 0, 16, g_hidden=[32], d_hidden=[64, 32])
    with torch.no_grad():
        for p in D.parameters():
            p.normal_(0, 0.02)
        if not edges:
            return D
        # the edge cases of a clamp: NaN, infinities, signed zero, both bounds
        first = next(D.parameters()).view(-1)
        first[:7] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 0.01, -0.01])
    return D


def _bits(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().view(torch.int32).clone() for p in module.parameters()]


def test_multi_tensor_clipping_gives_the_bits_of_a_clamp_per_tensor():
    expected, by_loop, by_foreach = _critic(), _critic(), _critic()
    losses.clip_parameters_(expected, 0.01)
    clip_weights_(by_loop, 0.01, multi_tensor=False)
    clip_weights_(by_foreach, 0.01, multi_tensor=True)
    for a, b, c in zip(_bits(expected), _bits(by_loop), _bits(by_foreach), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    values = torch.cat([p.detach().flatten() for p in by_foreach.parameters()])
    assert values.isnan().sum() == 1 and values.nan_to_num().abs().max() == pytest.approx(0.01)
    assert values.nan_to_num().abs().max().item() == pytest.approx(0.01)


def _aten_ops(function) -> list[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        function()
    top = []
    for event in prof.events():
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if event.name.startswith("aten::") and parent is None:
            top.append(event.name)
    return top


def test_multi_tensor_clipping_is_two_ops_for_all_of_the_critic():
    D = _critic()
    tensors = len(list(D.parameters()))
    assert tensors == 6
    assert _aten_ops(lambda: clip_weights_(D, 0.01, multi_tensor=True)) == [
        "aten::_foreach_clamp_min_",
        "aten::_foreach_clamp_max_",
    ]
    # On the CPU (the default there) one clamp per tensor: one pass over memory, not two.
    assert _aten_ops(lambda: WGAN().after_discriminator_step(D)) == ["aten::clamp_"] * tensors


def _train(optimizer_cfg, **flags) -> list[torch.Tensor]:
    """Ten updates of a small critic from a fixed start on fixed batches."""
    D = _critic(seed=3, edges=False)
    opt = build(optimizer_cfg)(D.parameters(), **flags)  # flags override the config's
    data = torch.Generator().manual_seed(1)
    for _ in range(10):
        x = torch.randn(16, 1, 8, 8, generator=data)
        loss = D(x, None).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in D.parameters()]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_multi_tensor_optimizer_paths_give_the_numbers_of_the_plain_one(name):
    """rmsprop and sgd configure foreach, adam fused; adam_gp keeps torch's
    default (foreach on a GPU, the plain loop on the CPU): a config key added
    now would refuse resuming the runs saved before it."""
    cfg = compose_config([f"optimizer={name}"]).optimizer
    fused = bool(cfg.d.get("fused"))
    if name != "adam_gp":
        assert all(node.get("foreach") is True or node.get("fused") is True for node in (cfg.g, cfg.d))
    off = {"fused": False} if "fused" in cfg.d else {}
    plain = _train(cfg.d, foreach=False, **off)
    multi = _train(cfg.d, foreach=True, **off)
    configured = _train(cfg.d)
    for a, b in zip(plain, multi, strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32))
    for a, b in zip(plain, configured, strict=True):
        if fused:
            # Fused Adam rounds its arithmetic its own way (kept: these are
            # the numbers CPU runs have always had), a few float32 ulps apart.
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
        else:
            assert torch.equal(a.view(torch.int32), b.view(torch.int32))

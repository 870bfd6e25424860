"""Jacobian truncation: G's samples where it stretches its noise most are
dropped, on constructed generators with known Jacobians and on short runs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from torch import nn

from gan_cli.config.checks import validate
from gan_cli.errors import UserError
from gan_cli.evaluation.jacobian import jacobian_norms
from gan_cli.evaluation.refine import build_refiner
from gan_cli.latent import Latent
from gan_cli.metrics.toy import high_quality
from gan_cli.run.runner import run

CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0]])
STD = 0.05
LATENT = {"dim": 2, "distribution": "normal"}


class BridgeG(nn.Module):
    """z [B, 2] -> two clusters at (±2, 0) joined by a bridge: x = 2 tanh(k z0),
    so the points with small |z0| (about a quarter for k = 5) lie between the
    clusters, where ∂x/∂z0 = 2k / cosh²(k z0) is largest. With classes, class
    c has steepness `steepness[c]`."""

    def __init__(self, steepness=(5.0,)):
        super().__init__()
        self.register_buffer("k", torch.tensor(steepness))
        self.num_classes = len(steepness) if len(steepness) > 1 else 0

    def forward(self, z, y=None):
        k = self.k[0] if y is None else self.k[y]
        return torch.stack([2 * torch.tanh(k * z[:, 0]), 0.02 * z[:, 1]], 1)


class LinearG(nn.Module):
    """The same stretch everywhere: every sample has the same Jacobian."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.num_classes = 0

    def forward(self, z, y=None):
        return self.layer(z)


def _truncation(G, drop, seed=0):
    return build_refiner("jacobian", G, None, None, LATENT, torch.device("cpu"), seed, jacobian_drop=drop)


def test_the_norm_is_the_exact_frobenius_norm_of_gs_jacobian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 5))
    net(torch.randn(32, 3))  # running statistics that are not the identity
    stats = [b.clone() for b in net.buffers()]

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, z, y=None):
            return self.net(z)

    z = torch.randn(7, 3)
    samples, norms = jacobian_norms(G(), z)
    net.eval()
    for i in range(len(z)):
        J = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], z[i])  # [5, 3]
        assert norms[i].item() == pytest.approx(J.norm().item(), rel=1e-5)
    assert torch.allclose(samples, net(z).detach())
    # eval mode throughout: the batch-norm statistics are as they were
    assert all(torch.equal(a, b) for a, b in zip(stats, net.buffers(), strict=True))
    assert net.training is False
    assert norms.shape == (7,)


def test_for_images_the_norm_is_hutchinsons_estimate_of_it():
    """Above EXACT_OUTPUTS numbers per sample the squared norm is the mean of
    ‖vᵀJ‖² over random v: unbiased, and closer with more directions."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3 * 8 * 8))

    class ImageG(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, z, y=None):
            return self.net(z).view(-1, 3, 8, 8)

    z = torch.randn(20, 4)
    exact = torch.stack(
        [torch.autograd.functional.jacobian(lambda v: net(v[None])[0], z[i]).norm() for i in range(len(z))]
    )
    samples, few = jacobian_norms(ImageG(), z, generator=torch.Generator().manual_seed(0))
    _, many = jacobian_norms(ImageG(), z, probes=4000, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (20, 3, 8, 8)
    assert ((many - exact).abs() / exact).max() < 0.05
    assert ((few - exact).abs() / exact).mean() < 0.3
    assert ((few - exact).abs() / exact).mean() > ((many - exact).abs() / exact).mean()
    _, again = jacobian_norms(ImageG(), z, generator=torch.Generator().manual_seed(0))
    assert torch.equal(few, again)  # the directions come from the generator alone


def test_the_bridge_between_two_clusters_is_dropped():
    G = BridgeG()
    own = G(Latent(2, "normal", torch.device("cpu"), seed=1).sample(4000)).numpy()
    assert 0.70 < high_quality(own, CENTRES, STD) < 0.80  # a quarter of G's points on the bridge

    truncation = _truncation(G, drop=30)
    kept = truncation.draw(4000).numpy()
    assert high_quality(kept, CENTRES, STD) > 0.99
    assert kept.shape == (4000, 2)
    # both clusters keep their halves: nothing is reweighted between them
    assert (kept[:, 0] > 0).mean() == pytest.approx(0.5, abs=0.03)
    cost = truncation.cost.as_metrics("j")
    assert cost["j/acceptance"] == pytest.approx(0.70, abs=0.03)
    assert cost["j/d_evals_per_sample"] == 0 and cost["j/seconds_per_1000"] > 0


def test_a_generator_with_one_stretch_everywhere_is_left_as_it_is():
    torch.manual_seed(0)
    G = LinearG()
    truncation = _truncation(G, drop=20, seed=3)
    kept = truncation.draw(500)
    assert kept.shape == (500, 2)
    # every proposal up to the last one kept was kept: nothing dropped
    assert truncation.cost.as_metrics("j")["j/acceptance"] == 1
    assert truncation.cut[None] == pytest.approx(G.layer.weight.norm().item(), rel=1e-6)


def test_dropping_nothing_gives_gs_own_samples():
    G = BridgeG()
    truncation = _truncation(G, drop=0, seed=3)
    kept = truncation.draw(300)
    own = G(Latent.from_config(LATENT, torch.device("cpu"), 3 + 1, portable=True).sample(300))
    assert torch.equal(kept, own)
    assert truncation.cost.as_metrics("j")["j/acceptance"] == 1


def test_each_class_has_its_own_cut_and_keeps_its_labels():
    G = BridgeG(steepness=(5.0, 1.0))
    truncation = _truncation(G, drop=30)
    assert set(truncation.cut) == {0, 1}
    assert truncation.cut[0] != pytest.approx(truncation.cut[1], rel=0.2)
    y = torch.tensor([0, 1] * 500)
    kept = truncation.draw(1000, y)
    z = Latent(2, "normal", torch.device("cpu"), seed=7).sample(1000)
    _, norms = jacobian_norms(G, z, y)
    for c in (0, 1):
        shares = (norms[y == c] > truncation.cut[c]).float().mean().item()
        assert shares == pytest.approx(0.30, abs=0.05)  # each class drops its 30%
    assert high_quality(kept[y == 0].numpy(), CENTRES, STD) > 0.99


def test_refused_drops_are_one_line(make_cfg):
    with pytest.raises(UserError, match=r"the Jacobian drop must be a percentage in \[0, 100\), got 100"):
        _truncation(BridgeG(), drop=100)
    with pytest.raises(UserError) as info:
        validate(make_cfg("eval.sampler=jacobian", "eval.jacobian_drop=-1"))
    assert str(info.value) == "eval.jacobian_drop must be a percentage in [0, 100), got -1"


def test_a_run_without_a_discriminator_reports_jacobian_samples(make_cfg, tmp_path):
    """jacobian reads G alone, so objective=mse accepts it, in a run and in gan-sample."""
    settings = ["train.steps=20", "train.eval_every=20", "train.sample_every=20", "dataset.eval_points=500"]
    run_dir = f"run_dir={tmp_path / 'mse'}"
    cfg = make_cfg("experiment=toy_mse", *settings, "eval.sampler=jacobian", run_dir, tiny=False)
    metrics = run(cfg)
    saved = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert saved == metrics
    assert 0 <= saved["toy/high_quality_refined"] <= 1 and saved["toy/w1_refined"] > 0
    assert saved["refine/acceptance"] == pytest.approx(0.95, abs=0.03)  # eval.jacobian_drop's 5%
    assert saved["refine/d_evals_per_sample"] == 0

    out = tmp_path / "j.npz"
    done = run_cli(
        "gan-sample",
        str(tmp_path / "mse"),
        "--num",
        "200",
        "--sampler",
        "jacobian",
        "--jacobian-drop",
        "10",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert np.load(out)["samples"].shape == (200, 2)
    [line] = done.stderr.strip().splitlines()  # nothing else on stderr
    acceptance = float(line.removeprefix("gan-sample: jacobian: acceptance ").split(",")[0])
    assert 0.8 < acceptance <= 1 and line.endswith(" s per 1,000 samples")
    bad = run_cli(
        "gan-sample", str(tmp_path / "mse"), "--sampler", "jacobian", "--jacobian-drop", "100", cwd=tmp_path
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "gan-sample: error: --jacobian-drop must be a percentage in [0, 100), got 100"
    ]


def test_gan_eval_repeats_a_toy_runs_last_evaluation(make_cfg, tmp_path):
    """gan-eval scores a 2D toy's checkpoint as the run did: toy/* of G's own
    samples and of the run's eval.sampler, to the last digit."""
    from gan_cli.commands.evaluate import evaluate_checkpoint
    from gan_cli.run.checkpoint import load_checkpoint

    settings = ["train.steps=40", "train.batch_size=128", "train.eval_every=40", "dataset.eval_points=800"]
    cfg = make_cfg("experiment=toy_gan", *settings, "eval.sampler=jacobian", "train.ema=0.9", tiny=False)
    metrics = run(cfg)
    again = evaluate_checkpoint(load_checkpoint(cfg.run_dir))
    toy = {k for k in metrics if k.startswith("toy/")}
    assert {"toy/high_quality", "toy/w1", "toy/coverage", "toy/high_quality_refined", "toy/w1_refined"} <= toy
    assert {k: again[k] for k in toy} == {k: metrics[k] for k in toy}
    # the run's cost also counts the refined picture's samples: the same drop, not the same count
    assert again["refine/acceptance"] == pytest.approx(metrics["refine/acceptance"], abs=0.02)

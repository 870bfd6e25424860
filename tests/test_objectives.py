"""wgan_gp, hinge, lsgan and fgan: their critics estimate the divergence they
claim to, each trains through run(cfg), and conditional=true works for every
objective."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gan_cli.config.build import build_models
from gan_cli.config.checks import validate
from gan_cli.data import Batch
from gan_cli.errors import UserError
from gan_cli.latent import Latent
from gan_cli.models import Discriminator
from gan_cli.objectives import FGAN, WGANGP, HingeGAN, LeastSquaresGAN, fdiv
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run

# --- each critic, trained alone, estimates its divergence ----------------------
# P = N(0, 1) (the data), Q = N(1, 1) (a fixed "generator": z + 1). True values
# by numerical integration on a fine grid (W1 = the shift, 1).
GRID = np.linspace(-12, 13, 200_001)
DENS_P = np.exp(-(GRID**2) / 2) / math.sqrt(2 * math.pi)
DENS_Q = np.exp(-((GRID - 1) ** 2) / 2) / math.sqrt(2 * math.pi)


def _integral(values):
    return float(np.trapezoid(values, GRID))


def _f_divergence(name):
    f = fdiv.DIVERGENCES[name].f
    return _integral(DENS_Q * f(torch.from_numpy(DENS_P / DENS_Q)).numpy())


CASES = [(FGAN(divergence=name), _f_divergence(name), 0.1) for name in fdiv.DIVERGENCES] + [
    (HingeGAN(), 0.5 * _integral(np.abs(DENS_P - DENS_Q)), 0.1),  # TV
    (LeastSquaresGAN(), _integral((DENS_P - DENS_Q) ** 2 / (DENS_P + DENS_Q)), 0.1),  # chi^2
    (WGANGP(critic_steps=1), 1.0, 0.1),  # W1
]
# Pearson's optimal critic 2(p/q - 1) grows like exp(-x): a small net in 200
# steps gets within 15%.
CASES[list(fdiv.DIVERGENCES).index("pearson")] = (FGAN(divergence="pearson"), math.e - 1, 0.15)


@pytest.mark.parametrize(
    "objective,truth,rel",
    CASES,
    ids=[f"{c[0].name}-{getattr(c[0], 'divergence', None) and c[0].divergence.name}" for c in CASES],
)
def test_trained_critic_estimates_the_divergence_it_claims(objective, truth, rel):
    torch.manual_seed(0)
    D = Discriminator(
        nn.Sequential(
            nn.Linear(1, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)
        ),
        num_classes=0,
    )
    opt = torch.optim.Adam(D.parameters(), 1e-3)
    latent = Latent(1, "normal", torch.device("cpu"), seed=1)
    data = torch.Generator().manual_seed(2)

    def G(z, y):
        return z + 1.0

    def batch(n):
        return Batch(torch.randn(n, 1, generator=data), None, torch.arange(n))

    for _ in range(200):
        loss, _ = objective.discriminator_loss(G, D, batch(256), latent)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, stats = objective.discriminator_loss(G, D, batch(20_000), latent)
    estimate = stats[objective.estimate_name].item()
    print(f"{objective.estimate_name}: estimate {estimate:.4f}, true {truth:.4f}")
    assert estimate == pytest.approx(truth, rel=rel)


# --- through run(cfg) -----------------------------------------------------------

FAST = ["train.steps=4", "train.log_every=2", "train.sample_every=4", "train.checkpoint_every=4"]


@pytest.mark.parametrize(
    "overrides,estimate,identity",
    [
        (
            ["objective=wgan_gp"],
            "wasserstein_estimate",
            lambda m: -m["wasserstein_estimate"] + 10 * m["gradient_penalty"],
        ),
        (["objective=hinge"], "tv_estimate", lambda m: 2 * (1 - m["tv_estimate"])),
        (
            ["objective=rpgan", "objective.r1=1", "objective.r2=2"],
            "rp_estimate",
            lambda m: math.log(2) - m["rp_estimate"] + m["r1_penalty"] / 2 + m["r2_penalty"],
        ),
        (["objective=lsgan"], "chi2_estimate", lambda m: (2 - m["chi2_estimate"]) / 2),
        (
            ["objective=lsgan", "objective.a=0", "objective.c=1"],
            "chi2_estimate",
            lambda m: (2 - m["chi2_estimate"]) / 8,
        ),
        # Every divergence's loss is checked on fixed tensors; two run here.
        *[
            (
                ["objective=fgan", f"objective.divergence={name}"],
                "fdiv_estimate",
                lambda m: -m["fdiv_estimate"],
            )
            for name in ("kl", "gan")
        ],
        (
            ["objective=fgan", "objective.generator_loss=saddle"],
            "fdiv_estimate",
            lambda m: -m["fdiv_estimate"],
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_new_objective_trains_and_logs_its_estimate(make_cfg, overrides, estimate, identity):
    cfg = make_cfg(*overrides, *FAST)
    metrics = run(cfg)
    assert all(math.isfinite(metrics[k]) for k in ("loss/d", "loss/g", estimate))
    # The logged estimate is the one the D loss implies (means over the same steps).
    assert metrics["loss/d"] == pytest.approx(identity(metrics), rel=1e-4, abs=1e-5)
    state = load_checkpoint(cfg.run_dir)
    assert state["step"] == 4 and state["discriminator"] is not None


def test_wgan_gp_runs_five_critic_steps_per_generator_step(make_cfg, monkeypatch):
    calls = {"d": 0, "g": 0}
    original_d, original_g = WGANGP.discriminator_loss, WGANGP.generator_loss

    def counting_d(self, *args):
        calls["d"] += 1
        return original_d(self, *args)

    def counting_g(self, *args):
        calls["g"] += 1
        return original_g(self, *args)

    monkeypatch.setattr(WGANGP, "discriminator_loss", counting_d)
    monkeypatch.setattr(WGANGP, "generator_loss", counting_g)
    run(make_cfg("objective=wgan_gp", *FAST))
    assert calls == {"d": 20, "g": 4}


@pytest.mark.parametrize(
    "objective,optimizer,lr,betas,extra",
    [
        ("wgan_gp", "adam_gp", 1e-4, [0.5, 0.9], {"critic_steps": 5, "gp_weight": 10.0}),
        ("hinge", "adam", 2e-4, [0.5, 0.999], {"critic_steps": 1}),
        ("rpgan", "adam_no_momentum", 2e-4, [0.0, 0.99], {"critic_steps": 1, "r1": 0.0, "r2": 0.0}),
        ("lsgan", "adam", 2e-4, [0.5, 0.999], {"a": -1.0, "b": 1.0, "c": 0.0}),
        ("fgan", "adam", 2e-4, [0.5, 0.999], {"divergence": "kl", "generator_loss": "alternative"}),
    ],
)
def test_each_new_objective_brings_its_paper_defaults(make_cfg, objective, optimizer, lr, betas, extra):
    cfg = make_cfg(f"objective={objective}", tiny=False)
    assert cfg.optimizer.name == optimizer
    assert (cfg.optimizer.g.lr, cfg.optimizer.d.lr) == (lr, lr)
    assert list(cfg.optimizer.g.betas) == list(cfg.optimizer.d.betas) == betas
    assert {k: cfg.objective[k] for k in extra} == extra
    assert cfg.objective.conditional is False
    assert make_cfg(f"objective={objective}", "optimizer=rmsprop").optimizer.name == "rmsprop"


@pytest.mark.parametrize("objective", ["mse", "gan", "wgan", "wgan_gp", "hinge", "rpgan", "lsgan", "fgan"])
def test_conditional_switch_gives_every_objective_a_grid_row_per_class(make_cfg, objective):
    cfg = make_cfg(
        f"objective={objective}",
        "objective.conditional=true",
        "train.grid_columns=6",
        "train.steps=2",
        "train.log_every=1",
        "train.sample_every=2",
        "train.checkpoint_every=2",
    )
    run(cfg)
    with Image.open(Path(cfg.run_dir) / "samples" / "step_2.png") as png:
        assert png.size == (6 * 10 + 2, 10 * 10 + 2)  # 6 columns, one row per digit class
    state = load_checkpoint(cfg.run_dir)
    assert state["model_args"]["num_classes"] == 10
    assert state["fixed_noise"]["y"].tolist() == [k for k in range(10) for _ in range(6)]
    G, D = build_models(state["config"], state["model_args"])
    G.load_state_dict(state["generator"])
    # G really reads y: the same z with two different classes gives two different images.
    G.eval()
    z = torch.randn(1, cfg.latent.dim).repeat(2, 1)
    with torch.no_grad():
        images = G(z, torch.tensor([3, 7]))
    assert not torch.allclose(images[0], images[1])


# --- wgan_gp and batch norm in the critic -----------------------------------------


@pytest.fixture
def folder_16px(tmp_path):
    folder = tmp_path / "pictures16"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(folder / f"{i}.png")
    return folder


def _dcgan_on(folder):
    return [
        "model=dcgan",
        "model.g_channels=4",
        "model.d_channels=4",
        "dataset=image_folder",
        f"dataset.path={folder}",
        "dataset.size=16",
        "dataset.channels=1",
        "latent.dim=8",
        "train.batch_size=4",
        "train.steps=2",
        "train.log_every=1",
        "train.checkpoint_every=2",
    ]


def test_wgan_gp_refuses_a_batch_norm_critic_and_trains_with_layer_norm(make_cfg, folder_16px):
    # The requirement shows in the config: a batch-norm critic is refused in
    # one line, before anything is built, and the fix it names runs.
    with pytest.raises(UserError) as caught:
        run(make_cfg("objective=wgan_gp", *_dcgan_on(folder_16px), tiny=False))
    assert str(caught.value) == (
        "objective=wgan_gp needs a critic without batch norm (its penalty "
        "is per sample); add model.d_norm=layer (or none), as "
        "experiment=wgan_gp_mnist does"
    )
    assert not (folder_16px.parent / "run0" / "checkpoints").exists()
    cfg = make_cfg("objective=wgan_gp", *_dcgan_on(folder_16px), "model.d_norm=layer", tiny=False)
    assert cfg.model.d_norm == "layer"  # what --cfg job shows
    run(cfg)
    state = load_checkpoint(cfg.run_dir)
    assert state["config"]["model"]["d_norm"] == "layer"
    G, D = build_models(state["config"], state["model_args"])
    D.load_state_dict(state["discriminator"])  # the checkpoint rebuilds this D
    kinds = {type(m).__name__ for m in D.modules()}
    assert "GroupNorm" in kinds and "BatchNorm2d" not in kinds
    assert "BatchNorm2d" in {type(m).__name__ for m in G.modules()}  # G keeps its batch norm


@pytest.mark.parametrize(
    "objective,refused", [("hinge", False), ("fgan", False), ("wgan", False), ("wgan_gp", True)]
)
def test_only_an_objective_that_forbids_it_refuses_a_batch_norm_critic(make_cfg, objective, refused):
    cfg = make_cfg(f"objective={objective}", "model=dcgan", tiny=False)
    if refused:
        with pytest.raises(UserError, match="needs a critic without batch norm"):
            validate(cfg)
    else:
        validate(cfg)
    for norm in ("layer", "none"):  # nothing to refuse
        validate(make_cfg(f"objective={objective}", "model=dcgan", f"model.d_norm={norm}", tiny=False))


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["objective=fgan", "objective.divergence=chi"],
            "objective.divergence must be one of kl, reverse_kl, pearson, hellinger, jensen_shannon, gan, "
            "got 'chi'",
        ),
        (
            ["objective=fgan", "objective.generator_loss=minimax"],
            "objective.generator_loss must be one of alternative, saddle, got 'minimax'",
        ),
        (["objective=lsgan", "objective.a=1"], "objective.a and objective.b must differ"),
        (["objective=lsgan", "objective.c=high"], "objective.c must be a number, got 'high'"),
        (
            ["objective=wgan_gp", "objective.gp_weight=-1"],
            "objective.gp_weight must be a number >= 0, got -1",
        ),
        (
            ["objective=hinge", "objective.critic_steps=0"],
            "objective.critic_steps must be a whole number >= 1",
        ),
        (
            ["objective=hinge", "model=dcgan", "model.d_norm=instance", "dataset=digits"],
            "model.d_norm must be one of batch, layer, none, got 'instance'",
        ),
    ],
)
def test_bad_objective_settings_get_one_clear_line(make_cfg, overrides, message):
    cfg = make_cfg(*overrides, "train.steps=1", tiny="model=dcgan" not in overrides)
    with pytest.raises(UserError) as caught:
        run(cfg)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_mode_seeking_ratio_is_image_spread_over_noise_spread():
    from gan_cli.objectives.losses import mode_seeking_ratio

    fake_a, fake_b = torch.zeros(2, 2), torch.tensor([[2.0, 4.0], [0.0, 6.0]])  # mean |diff| 3
    z_a, z_b = torch.zeros(2, 3), torch.full((2, 3), 0.5)  # mean |diff| 0.5
    assert mode_seeking_ratio(fake_a, fake_b, z_a, z_b).item() == pytest.approx(6.0)


class Recorder(nn.Module):
    """G: z's first coordinate as a one-pixel image, keeping the classes asked for."""

    num_classes = 10

    def forward(self, z, y=None):
        self.y = y
        return z[:, :1]


def test_mode_seeking_pairs_share_classes_and_add_its_term_to_gs_loss():
    from gan_cli.objectives import MinimaxGAN

    objective = MinimaxGAN("cgan", conditional=True, mode_seeking=2.0)
    G = Recorder()
    latent = Latent(4, "normal", torch.device("cpu"), seed=0)
    batch = Batch(torch.zeros(6, 1), torch.tensor([1, 2, 3, 4, 5, 6]), torch.arange(6))
    plain = MinimaxGAN("cgan", conditional=True)

    def D(x, y):  # a constant critic: G's own loss is the same for any sample
        return torch.zeros(len(x))

    loss, stats = objective.generator_loss(G, D, batch, latent)
    assert G.y.tolist() == [1, 2, 3, 1, 2, 3]  # the second half asks for the first half's classes
    z = Latent(4, "normal", torch.device("cpu"), seed=0).sample(6)  # the same draw
    ratio = (z[:3, 0] - z[3:, 0]).abs().mean() / (z[:3] - z[3:]).abs().mean()
    assert stats["mode_seeking_ratio"].item() == pytest.approx(ratio.item(), rel=1e-6)
    base, _ = plain.generator_loss(G, D, batch, Latent(4, "normal", torch.device("cpu"), seed=0))
    assert loss.item() == pytest.approx(base.item() + 2.0 / (ratio.item() + 1e-5), rel=1e-6)
    assert G.y.tolist() == [1, 2, 3, 4, 5, 6]  # off: the batch's own classes, as ever


def test_rpgan_pairs_each_fake_with_a_real_example_in_gs_loss_too():
    from gan_cli.objectives import RelativisticGAN

    G = Recorder()
    batch = Batch(torch.tensor([[0.5], [1.0], [-2.0], [3.0]]), torch.tensor([1, 2, 3, 4]), torch.arange(4))

    def D(x, y):  # d(x) = x
        return x.view(-1)

    D.score_pair = lambda real, fake, y: (D(real, y), D(fake, y))
    fake = Latent(4, "normal", torch.device("cpu"), seed=0).sample(4)[:, :1]
    loss, _ = RelativisticGAN(conditional=True).generator_loss(
        G, D, batch, Latent(4, "normal", torch.device("cpu"), seed=0)
    )
    assert loss.item() == pytest.approx(torch.nn.functional.softplus(batch.x - fake).mean().item(), rel=1e-6)
    # With MSGAN's term the second half asks for the first half's classes, and
    # the real examples it is paired with are the first half's too.
    seen = []
    D.score_pair = lambda real, fake, y: (
        seen.append((real.view(-1).tolist(), y.tolist())) or (real.view(-1), fake.view(-1))
    )
    RelativisticGAN(conditional=True, mode_seeking=1.0).generator_loss(
        G, D, batch, Latent(4, "normal", torch.device("cpu"), seed=0)
    )
    assert seen == [([0.5, 1.0, 0.5, 1.0], [1, 2, 1, 2])]

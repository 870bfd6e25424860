"""What keeps an unconditional GAN's modes: G's moving average, spectral norm
on D, the R1 penalty, packing and the mixture prior; each checked against a hand computation,
refused in one line where impossible, and resumed bit for bit."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same
from torch import nn

from gan_cli.commands.sample import draw
from gan_cli.commands.sample import main as sample_main
from gan_cli.config.build import build_models
from gan_cli.config.checks import validate
from gan_cli.data import Batch
from gan_cli.errors import UserError
from gan_cli.latent import Latent, mixture_centres
from gan_cli.models import Discriminator, build_dcgan, build_toy_mlp
from gan_cli.objectives import WGANGP, MinimaxGAN
from gan_cli.run.checkpoint import generator_from_checkpoint, load_checkpoint
from gan_cli.run.runner import run
from gan_cli.training.ema import GeneratorEMA
from gan_cli.training.experiment import Experiment

# --- G's moving average ----------------------------------------------------------


class TinyG(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)


def _set(G, value: float, buffers: float):
    with torch.no_grad():
        for p in G.parameters():
            p.fill_(value)
        G.bn.running_mean.fill_(buffers)
        G.bn.num_batches_tracked.fill_(int(value * 10))


def test_ema_is_the_closed_form_average_of_known_weights():
    G = TinyG()
    _set(G, 1.0, buffers=10.0)
    ema = GeneratorEMA(G, decay=0.5)  # the average starts as a copy of G
    _set(G, 3.0, buffers=20.0)
    ema.update(1)  # 0.5 * 1 + 0.5 * 3
    _set(G, 7.0, buffers=40.0)
    ema.update(2)  # 0.5 * 2 + 0.5 * 7
    avg = ema.average
    for p in avg.parameters():
        assert torch.equal(p, torch.full_like(p, 4.5))
    assert torch.equal(avg.bn.running_mean, torch.full((2,), 27.5))  # 0.5 * 15 + 0.5 * 40
    assert int(avg.bn.num_batches_tracked) == 70  # integers are copied
    assert not any(p.requires_grad for p in avg.parameters()) and not avg.training
    assert G.lin.weight.data_ptr() != avg.lin.weight.data_ptr()


def test_ema_follows_g_exactly_until_its_start():
    G = TinyG()
    _set(G, 0.0, buffers=0.0)
    ema = GeneratorEMA(G, decay=0.9, start=2)
    _set(G, 5.0, buffers=0.0)
    ema.update(1)
    _set(G, 6.0, buffers=0.0)
    ema.update(2)  # still warming up: a copy
    assert torch.equal(ema.average.lin.weight, torch.full((2, 2), 6.0))
    _set(G, 16.0, buffers=0.0)
    ema.update(3)  # 0.9 * 6 + 0.1 * 16
    assert torch.allclose(ema.average.lin.weight, torch.full((2, 2), 7.0))


# --- spectral norm -----------------------------------------------------------------


def _weighted_layers(D):
    return [m for m in D.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.mark.parametrize("build,shape", [(build_toy_mlp, [2]), (build_dcgan, [1, 8, 8])])
def test_spectral_norm_bounds_every_layer_of_d_near_one(build, shape):
    torch.manual_seed(0)
    _, D = build(shape, 3, 4, spectral_norm=True)
    _, plain = build(shape, 3, 4)
    layers = _weighted_layers(D)
    assert len(layers) == len(_weighted_layers(plain)) >= 2
    x, y = torch.randn(8, *shape), torch.arange(8) % 3
    for _ in range(30):  # one power iteration per training forward
        D(x, y)
    for layer in layers:
        assert "weight" in layer.parametrizations
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.02)
    # Without it the same layers are far from 1 (so the check above can fail).
    sigmas = [
        float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) for m in _weighted_layers(plain)
    ]
    assert any(abs(s - 1) > 0.1 for s in sigmas)


def test_spectral_norm_checkpoint_loads_into_d_rebuilt_from_its_config(make_cfg):
    cfg = make_cfg("objective=gan", "model.spectral_norm=true", "train.steps=4")
    run(cfg)
    state = load_checkpoint(cfg.run_dir)
    saved = state["discriminator"]
    assert any(k.endswith("parametrizations.weight.original") for k in saved)
    assert any(k.endswith("parametrizations.weight.0._u") for k in saved)
    _, D = build_models(state["config"], state["model_args"])
    D.load_state_dict(saved)  # strict: the same keys
    assert all(torch.equal(D.state_dict()[k], v) for k, v in saved.items())


# --- R1 --------------------------------------------------------------------------


class ZeroG(nn.Module):
    def forward(self, z, y=None):
        return torch.zeros(len(z), 2)


def _linear_d(pack: int = 1, w=(0.3, -1.2), b: float = 0.1):
    net = nn.Linear(2 * pack, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([list(w) * pack]))
        net.bias.fill_(b)
    return Discriminator(net, 0, pack=pack), torch.tensor(list(w) * pack)


def _d_loss(objective, D, x):
    latent = Latent(2, "normal", torch.device("cpu"), seed=0)
    loss, stats = objective.discriminator_loss(ZeroG(), D, Batch(x, None, None), latent)
    fake = torch.zeros_like(x)
    plain = objective.d_loss(*D.score_pair(x, fake))
    return (loss - plain).item(), stats


@pytest.mark.parametrize("penalty", ["r1", "r2"])
@pytest.mark.parametrize("pack", [1, 2])
def test_r1_and_r2_on_a_linear_d_are_half_gamma_times_the_squared_weight_norm(pack, penalty):
    # D(x) = w.x + b has grad_x D = w everywhere, at real x (R1) and at G's
    # samples (R2) alike: gamma / 2 ||w||^2, and with packing the gradient of
    # each joined input is w repeated pack times.
    D, w = _linear_d(pack)
    x = torch.randn(8, 2)
    extra, stats = _d_loss(MinimaxGAN(pack=pack, **{penalty: 4.0}), D, x)
    assert extra == pytest.approx(4.0 / 2 * float(w @ w), rel=1e-5)
    assert {"r1_penalty", "r2_penalty"} & set(stats) == {f"{penalty}_penalty"}
    assert stats[f"{penalty}_penalty"].item() == pytest.approx(float(w @ w), rel=1e-5)
    assert extra == pytest.approx(2.0 * pack * (0.3**2 + 1.2**2), rel=1e-5)


def test_r1_and_r2_add_up_on_the_same_lazy_steps():
    D, w = _linear_d()
    x = torch.randn(8, 2)
    both, _ = _d_loss(MinimaxGAN(r1=1.0, r2=4.0), D, x)
    assert both == pytest.approx((1.0 + 4.0) / 2 * float(w @ w), rel=1e-5)
    # Lazy: both on every k-th step, each weighted by k.
    objective = MinimaxGAN(r1=1.0, r2=4.0, r1_every=2)
    extras = [_d_loss(objective, D, x)[0] for _ in range(4)]
    assert extras == pytest.approx([5.0 * float(w @ w), 0, 5.0 * float(w @ w), 0], abs=1e-5)
    # The lazy rhythm is host state CUDA graphs capture by: R2 alone sets it too.
    alone = MinimaxGAN(r2=1.0, r1_every=2)
    assert alone.phase() == 0
    _d_loss(alone, D, x)
    assert alone.phase() == 1


def test_lazy_r1_applies_every_kth_d_step_with_weight_gamma_times_k():
    D, w = _linear_d()
    objective = MinimaxGAN(r1=4.0, r1_every=3)
    x = torch.randn(8, 2)
    extras = [_d_loss(objective, D, x)[0] for _ in range(7)]
    full = 4.0 * 3 / 2 * float(w @ w)
    assert extras == pytest.approx([full, 0, 0, full, 0, 0, full], abs=1e-5)
    assert objective.state_dict() == {"d_steps": 7}
    again = MinimaxGAN(r1=4.0, r1_every=3)
    again.load_state_dict(objective.state_dict())  # resumes the rhythm
    assert [_d_loss(again, D, x)[0] for _ in range(3)] == pytest.approx([0, 0, full], abs=1e-5)


def test_r1_works_with_a_gradient_penalty_objective_too():
    D, w = _linear_d()
    x = torch.randn(8, 2)
    with_r1, stats = _d_loss(WGANGP(r1=2.0), D, x)
    without, _ = _d_loss(WGANGP(), D, x)
    assert {"gradient_penalty", "r1_penalty"} <= set(stats)
    # The two-sided penalty of a linear critic is (||w|| - 1)^2 wherever it looks.
    gp = 10.0 * (math.sqrt(float(w @ w)) - 1) ** 2
    assert without == pytest.approx(gp, rel=1e-5)
    assert with_r1 - without == pytest.approx(float(w @ w), rel=1e-5)


# --- packing ---------------------------------------------------------------------


class Capture(nn.Module):
    """A stand-in for D's net: remembers what it was given, scores 0."""

    def forward(self, h):
        self.seen = h
        return h.new_zeros(len(h), 1)


def test_packing_joins_consecutive_examples_with_their_labels():
    net = Capture()
    D = Discriminator(net, num_classes=3, pack=2)
    x = torch.arange(8.0).view(4, 2)  # examples (0,1) (2,3) (4,5) (6,7)
    y = torch.tensor([0, 2, 1, 1])
    assert D(x, y).shape == (2,)
    onehot = torch.eye(3)
    want = torch.stack(
        [torch.cat([x[0], onehot[0], x[1], onehot[2]]), torch.cat([x[2], onehot[1], x[3], onehot[1]])]
    )
    assert torch.equal(net.seen, want)
    # A pack never mixes real and fake samples.
    D = Discriminator(net, num_classes=0, pack=2)
    real_out, fake_out = D.score_pair(x, -x)
    assert real_out.shape == fake_out.shape == (2,)
    assert torch.equal(net.seen, torch.cat([x, -x]).view(4, 4))


def test_packing_stacks_image_channels_and_first_layers_grow():
    net = Capture()
    D = Discriminator(net, num_classes=2, image_input=True, pack=2)
    x = torch.randn(4, 1, 8, 8)
    D(x, torch.tensor([0, 1, 1, 0]))
    assert net.seen.shape == (2, 2 * (1 + 2), 8, 8)
    assert torch.equal(net.seen[0, 0], x[0, 0]) and torch.equal(net.seen[0, 3], x[1, 0])
    assert torch.equal(net.seen[0, 1], torch.ones(8, 8)) and torch.equal(net.seen[0, 5], torch.ones(8, 8))
    _, D = build_dcgan([1, 8, 8], 2, 4, pack=4)
    assert D.net[0].in_channels == 4 * 3
    assert D(torch.randn(8, 1, 8, 8), torch.arange(8) % 2).shape == (2,)
    _, D = build_toy_mlp([2], 0, 4, pack=4)
    assert D.net[0].in_features == 8 and D.score_each(torch.randn(5, 2)).shape == (5,)


def test_a_packed_d_is_still_drawn_point_by_point():
    from gan_cli.data import load_toy
    from gan_cli.evaluation.toy_picture import SURFACE_CELLS, _generator_moves, _surface

    _, D = build_toy_mlp([2], 0, 2, g_hidden=[8], d_hidden=[8], pack=3)
    objective = MinimaxGAN(pack=3)
    values, _, _ = _surface(load_toy("ring8", 0.02), D, objective, torch.device("cpu"))
    assert values.shape == (SURFACE_CELLS, SURFACE_CELLS)  # 25,600 points, not a multiple of 3
    points, moves = _generator_moves(D, objective, torch.randn(20, 2), None, count=7)
    assert points.shape == moves.shape == (7, 2)


# --- the mixture prior ------------------------------------------------------------

MIXTURE = {"dim": 4, "distribution": "mixture", "components": 5, "component_std": 0.05}


def test_mixture_prior_draws_every_component_equally_at_its_std():
    latent = Latent.from_config(MIXTURE, "cpu", seed=0)
    assert torch.equal(latent.centres, mixture_centres(5, 4))
    z = latent.sample(20_000)
    # The centres lie far apart next to 0.05, so each z's nearest centre is its own.
    assert torch.pdist(latent.centres).min() > 0.5
    nearest = torch.cdist(z, latent.centres).argmin(1)
    shares = torch.bincount(nearest, minlength=5) / len(z)
    assert torch.allclose(shares, torch.full((5,), 0.2), atol=0.015)
    offset = z - latent.centres[nearest]
    assert torch.allclose(offset.std(0), torch.full((4,), 0.05), atol=0.0015)
    assert offset.mean(0).abs().max() < 0.0015


def test_mixture_centres_are_the_same_for_every_seed():
    a, b = Latent.from_config(MIXTURE, "cpu", seed=0), Latent.from_config(MIXTURE, "cpu", seed=1)
    assert torch.equal(a.centres, b.centres)
    z = a.sample(8)
    assert not torch.equal(z, b.sample(8))
    assert torch.equal(z, Latent.from_config(MIXTURE, "cpu", seed=0).sample(8))
    # A checkpoint's config from before the mixture prior has no mixture keys.
    assert Latent.from_config({"dim": 4, "distribution": "normal"}, "cpu", seed=0).centres is None


# --- one line per impossible value -------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["objective=gan", "objective.pack=3"],
            "train.batch_size=32 is not divisible by objective.pack=3: D judges whole packs of 3 samples",
        ),
        (["objective=gan", "objective.pack=0"], "objective.pack must be a whole number >= 1, got 0"),
        (["objective=hinge", "objective.r1=-1"], "objective.r1 must be a number >= 0, got -1"),
        (["objective=rpgan", "objective.r2=-0.5"], "objective.r2 must be a number >= 0, got -0.5"),
        (["objective=gan", "objective.r1_every=0"], "objective.r1_every must be a whole number >= 1, got 0"),
        (["train.ema=1"], "train.ema must be a decay in [0, 1) (0 = off), got 1"),
        (["train.ema=-0.5"], "train.ema must be a decay in [0, 1) (0 = off), got -0.5"),
        (["train.ema_start=-1"], "train.ema_start must be a whole number >= 0, got -1"),
        (
            ["train.lr_decay=1.5"],
            "train.lr_decay must be a fraction of train.steps in [0, 1] "
            "(0 = constant learning rates), got 1.5",
        ),
        (
            ["train.lr_decay=true"],
            "train.lr_decay must be a fraction of train.steps in [0, 1] "
            "(0 = constant learning rates), got True",
        ),
        (["eval.use_ema=maybe"], "eval.use_ema must be one of true, false, got 'maybe'"),
        (["train.compile=maybe"], "train.compile must be one of true, false, got 'maybe'"),
        (["model.spectral_norm=2"], "model.spectral_norm must be one of true, false, got 2"),
        (
            ["latent.distribution=gamma"],
            "latent.distribution must be one of normal, uniform, mixture, got 'gamma'",
        ),
        (
            ["latent.distribution=mixture", "latent.components=0"],
            "latent.components must be a whole number >= 1, got 0",
        ),
        (
            ["latent.distribution=mixture", "latent.component_std=0"],
            "latent.component_std must be a number > 0, got 0",
        ),
        (
            ["objective=mse", "objective.pack=2"],
            "objective=mse has no discriminator, so objective.pack=2 does not apply",
        ),
        (
            ["objective=mse", "objective.mode_seeking=1"],
            "objective=mse has no discriminator, so objective.mode_seeking=1 does not apply",
        ),
        (  # augmenting what D sees, or normalising D: a traceback, or silently nothing, before
            ["objective=mse", "train.augment=[translation]", "model.spectral_norm=true"],
            "objective=mse has no discriminator, so train.augment=['translation'], model.spectral_norm=True "
            "do not apply",
        ),
        (["objective.mode_seeking=-1"], "objective.mode_seeking must be a number >= 0, got -1"),
        (  # a ValueError traceback from batch norm, and a "diverged" line for the pairs, before
            ["train.batch_size=1", "model=mlp"],
            "train.batch_size=1 is too small for batch norm in the MLP's G (model.batch_norm=true): it "
            "normalises each unit over the batch; use 2 or more, or model.batch_norm=false",
        ),
        (
            ["train.batch_size=1", "model.batch_norm=false", "objective.mode_seeking=1"],
            "objective.mode_seeking compares pairs of G's samples; train.batch_size=1 has none",
        ),
    ],
)
def test_impossible_values_are_refused_in_one_line(make_cfg, overrides, message):
    with pytest.raises(UserError) as info:
        validate(make_cfg(*overrides))
    assert str(info.value) == message


def test_gan_train_refuses_a_batch_that_packs_do_not_divide(tmp_path):
    from conftest import TINY, run_cli

    done = run_cli("gan-train", *TINY, "objective.pack=5", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gan-train: error: train.batch_size=32 is not divisible by objective.pack=5: D judges whole "
        "packs of 5 samples"
    ]


def test_lr_decay_holds_the_rates_then_falls_linearly_to_zero():
    from gan_cli.training.schedule import LinearDecay

    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    schedule = LinearDecay([opt, None], steps=10, fraction=0.4)  # decays over steps 6..9
    rates = []
    for step in range(10):
        schedule(step)
        rates.append(opt.param_groups[0]["lr"])
    assert rates == pytest.approx([0.1] * 6 + [0.1, 0.075, 0.05, 0.025])
    schedule.scale(0.5)  # a rollback halves the base rate
    schedule(8)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    whole = LinearDecay([opt], steps=4, fraction=1.0)
    assert [whole.factor(s) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]


def test_a_decaying_run_is_not_captured_and_says_why(make_cfg):
    from gan_cli.training.cuda_graphs import capture_plan

    cfg = make_cfg("objective=gan", "train.lr_decay=0.5", "device=cpu")
    exp = Experiment(cfg)
    ok, why = capture_plan(cfg, exp.parts, torch.device("cuda"))
    assert not ok and why.startswith("train.lr_decay changes the learning rates every step")


# --- runs: resume bit for bit, the average in pictures, metrics and gan-sample -----

SHORT = [
    "train.steps=12",
    "train.log_every=3",
    "train.checkpoint_every=3",
    "train.sample_every=6",
    "train.eval_every=6",
]
OPTIONS = {
    "ema": ["train.ema=0.8", "train.ema_start=4"],
    "spectral_norm": ["model.spectral_norm=true"],
    "r1": ["objective.r1=1.0", "objective.r1_every=4"],
    "pack": ["objective.pack=4"],
    "lr_decay": ["train.lr_decay=0.75"],
    "mixture": ["latent.distribution=mixture", "latent.components=7"],
}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_resumed_run_with_each_option_equals_straight_run_bit_for_bit(make_cfg, option):
    given = ["objective=gan", *SHORT, *OPTIONS[option]]
    straight = make_cfg(*given)
    run(straight)
    if option == "lr_decay":  # the rates depend on train.steps: go on from step 6's file
        copy = Path(straight.run_dir).with_name("from_step_6")
        shutil.copytree(straight.run_dir, copy)
        for later in ("last.pt", "step_9.pt", "step_12.pt"):
            (copy / "checkpoints" / later).unlink()
        half = make_cfg(*given, f"run_dir={copy}", f"resume={copy}/checkpoints/step_6.pt")
    else:
        half = make_cfg(*given, "train.steps=6")
        run(half)
        half = make_cfg(*given, "resume=true", f"run_dir={half.run_dir}")
    run(half)
    a, b = load_checkpoint(straight.run_dir), load_checkpoint(half.run_dir)
    assert a["step"] == b["step"] == 12
    a["config"].pop("run_dir"), b["config"].pop("run_dir")
    b["config"]["resume"] = a["config"]["resume"]
    assert_same(a, b)
    if option == "ema":
        assert a["generator_ema"] is not None
        assert any(not torch.equal(a["generator_ema"][k], a["generator"][k]) for k in a["generator"])
    if option == "r1":
        assert a["objective"] == {"d_steps": 12}
    if option == "lr_decay":  # step 12 of 12 ran at 1/9 of the rate: 9 decaying steps
        lr = make_cfg(*given).optimizer.g.lr
        assert a["opt_g"]["param_groups"][0]["lr"] == pytest.approx(lr / 9)


def test_the_average_is_what_metrics_pictures_and_gan_sample_use(make_cfg, tmp_path, capsys):
    cfg = make_cfg(
        "experiment=toy_gan",
        "train.steps=30",
        "train.ema=0.9",
        "train.ema_start=0",
        "train.log_every=10",
        "train.sample_every=30",
        "dataset.eval_points=200",
        tiny=False,
    )
    metrics = run(cfg)
    state = load_checkpoint(cfg.run_dir)
    averaged, _ = draw(state, 200, seed=3)  # the default: the average
    raw, _ = draw(state, 200, seed=3, ema=False)
    assert torch.equal(averaged, draw(state, 200, seed=3, ema=True)[0])
    assert not torch.equal(averaged, raw)
    # The run's metrics came from the average as well.
    from gan_cli.training.experiment import Experiment

    exp = Experiment(cfg)
    exp.restore(state)
    assert exp.sampling_generator is exp.ema.average
    assert exp.evaluate() == {k: v for k, v in metrics.items() if k.startswith("toy/")}
    out = tmp_path / "raw.npz"
    sample_main([str(cfg.run_dir), "--num", "200", "--seed", "3", "--raw", "--out", str(out)])
    assert np.array_equal(np.load(out)["samples"], raw.numpy())

    plain = make_cfg("experiment=toy_gan", "train.steps=2", "dataset.eval_points=200", tiny=False)
    run(plain)
    old = load_checkpoint(plain.run_dir)
    assert old["generator_ema"] is None
    del old["generator_ema"]  # a checkpoint from before the average existed
    assert generator_from_checkpoint(old) is not None
    capsys.readouterr()
    with pytest.raises(SystemExit):
        sample_main([str(plain.run_dir), "--ema"])
    assert capsys.readouterr().err.strip() == (
        "gan-sample: error: this checkpoint holds no moving average of G (its run had train.ema=0); "
        "use the trained G (drop --ema)"
    )


def test_every_option_shows_in_hparams(make_cfg):
    from gan_cli.run.monitor import run_hparams

    params = run_hparams(
        make_cfg("objective=gan", "train.ema=0.99", "objective.pack=2", "train.lr_decay=0.5")
    )
    assert params["train.ema"] == 0.99 and params["objective.pack"] == 2
    assert params["train.lr_decay"] == 0.5 and params["latent.distribution"] == "normal"
    assert {"model.spectral_norm", "objective.r1", "objective.r2", "objective.r1_every"} <= set(params)
    assert "latent.components" not in params  # shown only where the mixture uses it
    params = run_hparams(make_cfg("latent.distribution=mixture", "latent.components=50"))
    assert params["latent.components"] == 50 and params["latent.component_std"] == 0.1


def test_resuming_a_run_saved_before_these_options_is_no_change():
    from gan_cli.config.checks import changed_keys
    from gan_cli.run.checkpoint import upgrade

    old = {"train": {"steps": 5}, "objective": {"name": "gan"}, "model": {"name": "mlp"}}
    new = {
        "train": {"steps": 5, "ema": 0.0, "ema_start": 0, "lr_decay": 0.0},
        "objective": {"name": "gan", "pack": 1, "r1": 0.0, "r1_every": 1, "mode_seeking": 0.0, "r2": 0.0},
        "model": {"name": "mlp", "spectral_norm": False},
        "latent": {"components": 1000, "component_std": 0.1},
    }
    assert changed_keys(upgrade(old), new, []) == []
    new["objective"]["pack"] = 2
    new["objective"]["mode_seeking"] = 0.1
    new["latent"]["components"] = 100
    new["objective"]["r2"] = 1.0
    changed = ["latent.components", "objective.mode_seeking", "objective.pack", "objective.r2"]
    assert changed_keys(upgrade(old), new, []) == changed


def test_the_mixture_keys_an_old_config_lacks_compare_as_the_defaults(make_cfg):
    """A config saved before the mixture prior lacks its keys, and resuming it
    compares them as ADDED_KEYS says: that must be what conf/config.yaml holds,
    or every old run would be refused after a change of the defaults."""
    from gan_cli.config.checks import ADDED_KEYS

    latent = make_cfg().latent
    assert ADDED_KEYS["latent.components"] == latent.components
    assert ADDED_KEYS["latent.component_std"] == latent.component_std


# --- the preset on a real toy run ---------------------------------------------------


def test_short_run_of_the_best_preset_spreads_g_over_the_ring(make_cfg):
    """The first 300 of toy_best's 9,000 steps: G's points leave the origin
    for the ring (W1 falls at every evaluation); the full run reaches 8/8
    modes (slow test)."""
    from conftest import tensorboard_events

    cfg = make_cfg(
        "experiment=toy_best",
        "train.steps=300",
        "train.eval_every=100",
        "train.sample_every=300",
        "train.log_every=100",
        "dataset.eval_points=1000",
        tiny=False,
    )
    result = run(cfg)
    w1 = [e.value for e in tensorboard_events(cfg.run_dir).Scalars("toy/w1")]
    assert len(w1) == 3 and w1[0] > w1[1] > w1[2]
    assert result["toy/w1"] < 0.8 * w1[0] and result["toy/w1"] < 0.6
    state = load_checkpoint(cfg.run_dir)
    assert state["generator_ema"] is not None and state["objective"]["d_steps"] == 300


@pytest.mark.slow
def test_best_preset_keeps_every_ring_mode():
    """experiment=toy_best in full on ring8 (about 2 minutes of one CPU
    core); docs/toys.md gives what seeds 0-4 measured."""
    import tempfile

    from gan_cli.config.compose import compose_config

    with tempfile.TemporaryDirectory() as folder:
        result = run(
            compose_config(
                ["experiment=toy_best", "train.sample_every=4000", f"run_dir={Path(folder) / 'run'}"]
            )
        )
    assert result["toy/modes"] == 8
    assert result["toy/high_quality"] >= 0.95 and result["toy/reverse_kl"] <= 0.05


def _full_grid_run(experiment: str) -> dict:
    """A preset's whole run on grid25 (pictures every 4,000 steps), in a folder removed afterwards."""
    import tempfile

    from gan_cli.config.compose import compose_config

    with tempfile.TemporaryDirectory() as folder:
        overrides = [f"experiment={experiment}", "dataset=grid25", "train.sample_every=4000"]
        return run(compose_config([*overrides, f"run_dir={Path(folder) / 'run'}"]))


@pytest.mark.slow
def test_best_preset_reaches_every_grid_mode():
    """experiment=toy_best dataset=grid25 in full (about 2 minutes of one CPU
    core): all 25 modes, evenly, nearly all points within 3 std of a centre;
    docs/toys.md gives what seeds 0-4 measured."""
    result = _full_grid_run("toy_best")
    assert result["toy/modes"] >= 24 and result["toy/reverse_kl"] <= 0.05
    assert result["toy/high_quality"] >= 0.9


@pytest.mark.slow
def test_refined_preset_is_sharper_than_its_generator():
    """experiment=toy_refined dataset=grid25 in full (toy_best plus one refined
    evaluation, about 4 minutes of one slower CPU core): the threshold drops
    G's points between clusters, so the refined samples are clearly sharper
    than G's own, every mode kept; docs/refined_sampling.md gives seeds 0-4."""
    result = _full_grid_run("toy_refined")
    assert result["toy/modes_refined"] == 25
    assert result["toy/high_quality_refined"] >= max(0.97, result["toy/high_quality"] + 0.02)
    assert 0.85 < result["refine/acceptance"] < 1


@pytest.mark.slow
def test_jacobian_preset_reaches_the_grids_ceiling():
    """experiment=toy_jacobian dataset=grid25 in full (about 3.5 minutes of one
    CPU core here): toy_best with R1 at 0.3, less the 10% of G's samples
    where it stretches its noise most, leaves nearly every point within 3
    std of a centre, every mode kept; docs/refined_sampling.md gives seeds 0-4."""
    result = _full_grid_run("toy_jacobian")
    assert result["toy/modes_refined"] == 25
    assert result["toy/high_quality_refined"] >= max(0.98, result["toy/high_quality"] + 0.02)
    assert result["refine/acceptance"] == pytest.approx(0.90, abs=0.02)
    assert result["refine/d_evals_per_sample"] == 0


@pytest.mark.parametrize("side", [12, 6, 20])
def test_a_dcgan_side_that_does_not_halve_to_4_or_7_is_named_as_given(side):
    with pytest.raises(UserError) as info:
        build_dcgan([1, side, side], 0, 4)
    assert (
        str(info.value)
        == f"model=dcgan needs a square side that halves to 4 or 7 (8, 28, 32, 64...), got {side}"
    )

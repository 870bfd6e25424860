"""2D toys: the distributions, the mode-coverage metrics on constructed point
sets, the GAN Lab picture, and short real training runs on ring8."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_pictures, tensorboard_events
from PIL import Image

from gan_cli.commands.sample import main as sample_main
from gan_cli.config.checks import validate
from gan_cli.data import load_toy
from gan_cli.errors import UserError
from gan_cli.evaluation.toys import EVAL_SEED, ToyEvaluation
from gan_cli.latent import Latent
from gan_cli.metrics import toy as metrics
from gan_cli.run.runner import run


def draw(name: str, n: int, seed: int):
    toy = load_toy(name, {"ring8": 0.02, "grid25": 0.05}.get(name, 0.05))
    x, y = toy.draw(n, torch.Generator().manual_seed(seed))
    return toy, x.numpy(), None if y is None else y.numpy()


# --- the distributions ---------------------------------------------------------


def test_ring8_is_eight_distinct_centres_at_radius_two_with_std_002():
    toy, x, y = draw("ring8", 40_000, seed=0)
    centres = toy.centres.numpy()
    assert toy.shape == (2,) and toy.num_classes == 8
    assert np.allclose(np.linalg.norm(centres, axis=1), 2.0, atol=1e-6)
    angles = np.sort(np.mod(np.arctan2(centres[:, 1], centres[:, 0]), 2 * np.pi))
    assert np.allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-6)
    offsets = x - centres[y]
    assert offsets.std(axis=0) == pytest.approx([0.02, 0.02], rel=0.03)
    assert np.bincount(y, minlength=8).min() > 0.11 * len(y)  # about 1/8 each


def test_grid25_centres_are_the_grid_and_std_is_005():
    toy, x, y = draw("grid25", 50_000, seed=1)
    expected = {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(c) for c in toy.centres.numpy().round().astype(int).tolist()} == expected
    assert toy.num_classes == 25
    assert (x - toy.centres.numpy()[y]).std(axis=0) == pytest.approx([0.05, 0.05], rel=0.03)


@pytest.mark.parametrize("name", ["spiral", "moons", "circles"])
def test_continuous_shapes_have_no_labels_and_fit_the_frame(name):
    toy, x, y = draw(name, 5000, seed=2)
    assert y is None and toy.num_classes == 0 and x.shape == (5000, 2)
    assert np.abs(x).max() < toy.extent and np.abs(x).max() > 0.6 * toy.extent
    if name == "circles":
        radii = np.linalg.norm(x, axis=1)
        near = np.minimum(np.abs(radii - 1), np.abs(radii - 2))
        assert np.quantile(near, 0.99) < 0.2 and 0.4 < (radii > 1.5).mean() < 0.6


def test_sampler_state_is_its_generator_and_resumes_the_same_batches():
    toy = load_toy("ring8", 0.02)
    a = toy.sampler(64, torch.device("cpu"), seed=5)
    first = a.next()
    assert first.x.shape == (64, 2) and first.y.shape == (64,) and first.index.shape == (64,)
    state = a.state_dict()
    expected = [a.next() for _ in range(3)]
    b = toy.sampler(64, torch.device("cpu"), seed=99)
    b.load_state_dict(state)
    for want in expected:
        got = b.next()
        assert torch.equal(got.x, want.x) and torch.equal(got.y, want.y)
    fresh = toy.sampler(64, torch.device("cpu"), seed=5).next()
    assert torch.equal(fresh.x, first.x)  # seeded
    assert not torch.equal(a.next().x, first.x)  # fresh every batch


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "dataset.name=ring9",
            "dataset.name must be one of ring8, grid25, spiral, moons, circles, got 'ring9'",
        ),
        ("dataset.std=0", "dataset.std must be a number > 0, got 0"),
        ("dataset.arrows=-1", "dataset.arrows must be a whole number >= 0, got -1"),
        ("dataset.eval_points=5", "dataset.eval_points must be a whole number >= 6, got 5"),
    ],
)
def test_bad_toy_settings_name_the_key_and_what_is_allowed(make_cfg, override, message):
    with pytest.raises(UserError) as info:
        validate(make_cfg("dataset=ring8", override, tiny=False))
    assert str(info.value) == message


# --- metrics on constructed point sets -------------------------------------------


@pytest.mark.parametrize("name,k,floor", [("ring8", 8, 0.2), ("grid25", 25, 0.25)])
def test_perfect_samples_cover_every_mode_at_the_real_vs_real_floor(name, k, floor):
    toy, fake, _ = draw(name, 2500, seed=10)
    _, real, _ = draw(name, 2500, seed=11)
    m = metrics.mixture_metrics(fake, real, toy.centres.numpy(), toy.std)
    # In 2D, P(|N(0, s^2 I)| <= 3s) = 1 - exp(-4.5) = 98.9%.
    assert m["toy/modes"] == k
    assert m["toy/high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.006)
    assert m["toy/reverse_kl"] < 0.02
    # Two real samples of 2,500 measured 0.04-0.13 apart (ring8), 0.16-0.18 (grid25);
    # a blob at the mean is 2.0 (ring8) or 3.0 (grid25) away.
    assert m["toy/w1"] < floor


def test_all_points_at_the_mean_cover_no_mode():
    toy, real, _ = draw("ring8", 2500, seed=3)
    fake = np.zeros((2500, 2))
    centres = toy.centres.numpy()
    assert metrics.modes(fake, centres, toy.std) == 0
    assert metrics.high_quality(fake, centres, toy.std) == 0.0
    assert metrics.reverse_kl(fake, centres, toy.std) == pytest.approx(math.log(8))
    # Against a single point every plan costs the same: the mean distance.
    assert metrics.w1(fake, real) == pytest.approx(np.linalg.norm(real, axis=1).mean(), rel=1e-9)


def test_uniform_noise_is_rarely_high_quality_and_covers_no_mode_at_one_percent():
    toy, _, _ = draw("ring8", 10, seed=0)
    fake = np.random.default_rng(0).uniform(-3, 3, size=(2500, 2))
    centres = toy.centres.numpy()
    hq = metrics.high_quality(fake, centres, toy.std)
    assert 0 < hq < 0.01  # expected 8 * pi * 0.06^2 / 36 = 0.25%
    assert metrics.modes(fake, centres, toy.std) == 0
    assert metrics.modes(fake, centres, toy.std, min_fraction=0.0001) >= 3


def test_a_mode_counts_from_one_percent_of_all_samples():
    centres = load_toy("ring8", 0.02).centres.numpy()
    fake = np.full((2500, 2), 50.0)  # far from everything
    fake[:1000] = centres[0]
    fake[1000:1025] = centres[1]  # 25 = 1%: counts
    fake[1025:1049] = centres[2] + [0.05, 0.0]  # 24, within 3 std: too few
    assert metrics.modes(fake, centres, 0.02) == 2
    assert metrics.high_quality(fake, centres, 0.02) == pytest.approx(1049 / 2500)
    p = np.array([1000, 25, 24]) / 1049
    assert metrics.reverse_kl(fake, centres, 0.02) == pytest.approx(float((p * np.log(8 * p)).sum()))
    fake[1025:1049] = centres[2] + [0.07, 0.0]  # beyond 3 std: not HQ
    assert metrics.high_quality(fake, centres, 0.02) == pytest.approx(1025 / 2500)


def test_w1_is_exact_and_the_fallback_agrees(monkeypatch):
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert metrics.w1(a, a + [0.0, 1.0]) == pytest.approx(1.0)
    assert metrics.w1(a, a[::-1]) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [1.0, 0.0]
    with_pot = metrics.w1(x, y)
    monkeypatch.setitem(__import__("sys").modules, "ot", None)  # import ot fails
    assert metrics.w1(x, y) == pytest.approx(with_pot, rel=1e-9)
    with pytest.raises(ValueError, match="equally many"):
        metrics.w1(x, y[:10])


class _Points(torch.nn.Module):
    """A 'generator' that emits a toy set's real points (or class centres)."""

    def __init__(self, toy, conditional=False):
        super().__init__()
        self.toy, self.conditional, self.num_classes = toy, conditional, toy.num_classes
        self.generator = torch.Generator().manual_seed(7)

    def forward(self, z, y=None):
        if self.conditional:
            return self.toy.centres[y.cpu()].to(z.device)
        return self.toy.draw(len(z), self.generator)[0].to(z.device)


def test_evaluate_scores_a_perfect_generator_and_asks_each_class_equally():
    toy = load_toy("ring8", 0.02, eval_points=1000)
    latent = Latent(4, "normal", torch.device("cpu"), seed=0)
    m = ToyEvaluation(toy, None, "cpu", 8).metrics(_Points(toy), latent, num_classes=0)
    manifold = {
        f"toy/{k}{end}" for k in ("precision", "recall", "density", "coverage") for end in ("", "_floor")
    }
    assert set(m) == {"toy/high_quality", "toy/modes", "toy/reverse_kl", "toy/w1", "toy/w1_floor", *manifold}
    assert m["toy/modes"] == 8 and m["toy/high_quality"] > 0.98 and m["toy/w1"] < 0.2
    # W1's floor: the exact distance of a second real sample to the same real points
    real, other = (toy.draw(1000, torch.Generator().manual_seed(EVAL_SEED + i))[0].numpy() for i in (0, 1))
    assert m["toy/w1_floor"] == metrics.w1(other, real) and 0 < m["toy/w1_floor"] < 0.2
    # A generator of real points scores as a second real sample does.
    for key in ("precision", "recall", "coverage"):
        assert m[f"toy/{key}"] == pytest.approx(m[f"toy/{key}_floor"], abs=0.03) and m[f"toy/{key}"] > 0.9
    m = ToyEvaluation(toy, None, "cpu", 8).metrics(_Points(toy, conditional=True), latent, num_classes=8)
    assert m["toy/high_quality"] == 1.0 and m["toy/reverse_kl"] < 1e-4
    shape = load_toy("moons", 0.05, eval_points=1000)
    assert set(ToyEvaluation(shape, None, "cpu", 8).metrics(_Points(shape), latent, 0)) == {
        "toy/w1",
        "toy/w1_floor",
        *manifold,
    }


# --- the picture ------------------------------------------------------------------


def test_generator_arrows_follow_the_discriminator_uphill():
    from gan_cli.evaluation.toy_picture import _generator_moves
    from gan_cli.models.conditioning import Discriminator
    from gan_cli.objectives import WGAN, MinimaxGAN

    D = torch.nn.Linear(2, 1)
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, -1.0]]))
    fake = torch.randn(50, 2)
    for objective in (MinimaxGAN(), WGAN()):
        points, moves = _generator_moves(Discriminator(D, 0), objective, fake, None, count=10)
        assert len(points) == 10
        cosine = torch.nn.functional.cosine_similarity(moves, torch.tensor([[3.0, -1.0]]))
        assert torch.allclose(cosine, torch.ones(10), atol=1e-5)
    assert D.weight.grad is None  # D left untouched


# --- real training runs --------------------------------------------------------------


def test_dataset_picks_the_toy_model_and_the_command_line_wins(make_cfg):
    assert make_cfg("dataset=ring8", tiny=False).model.name == "toy_mlp"
    assert make_cfg("model=mlp", "dataset=ring8", tiny=False).model.name == "mlp"
    assert make_cfg("dataset=digits", tiny=False).model.name == "mlp"
    with pytest.raises(UserError, match="objective.pairing=resample"):
        run(make_cfg("dataset=ring8", "objective=mse", "objective.pairing=fixed", tiny=False))
    with pytest.raises(UserError, match="has no class labels"):
        run(make_cfg("dataset=moons", "objective=cgan", tiny=False))


SHORT = ["train.log_every=50", "train.checkpoint_every=1000", "dataset.eval_points=2500"]


@pytest.fixture(scope="module")
def mse_ring8(tmp_path_factory):
    """The failure every objective must beat: mse's blob at the mean."""
    from gan_cli.config.compose import compose_config

    run_dir = tmp_path_factory.mktemp("mse") / "run"
    cfg = compose_config(
        ["experiment=toy_mse", "train.steps=150", "train.sample_every=50", *SHORT, f"run_dir={run_dir}"]
    )
    return run(cfg), run_dir


def test_mse_collapses_to_one_blob_at_the_mean(mse_ring8):
    metrics_, run_dir = mse_ring8
    assert metrics_["toy/modes"] == 0 and metrics_["toy/high_quality"] < 0.01
    assert metrics_["toy/w1"] > 1.5  # every real point is ~2 from the mean
    assert json.loads((run_dir / "metrics.json").read_text())["toy/w1"] == metrics_["toy/w1"]
    # No discriminator, so no surface: the picture is still drawn, frames and all.
    acc = tensorboard_events(run_dir)
    assert [e.step for e in acc.Images("toy/scatter")] == [50, 100, 150]
    with Image.open(run_dir / "samples" / "evolution.gif") as gif:
        assert gif.n_frames == 3


def test_gan_eval_of_a_toy_run_scores_its_eval_points_and_refuses_num_samples(mse_ring8, capsys):
    from gan_cli.commands.evaluate import main as eval_main

    metrics_, run_dir = mse_ring8
    capsys.readouterr()
    eval_main([str(run_dir)])
    assert f"toy/w1                   {metrics_['toy/w1']:.4g}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:  # it would change nothing
        eval_main([str(run_dir), "--num-samples", "100"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "gan-eval: error: --num-samples counts generated images; a 2D toy run scores its "
        "dataset.eval_points=2500 points"
    )


def test_short_cgan_run_on_ring8_covers_the_modes_and_writes_its_pictures(
    make_cfg, mse_ring8, tmp_path, capsys
):
    cfg = make_cfg(
        "experiment=toy_cgan",
        "train.steps=700",
        "train.sample_every=350",
        "train.eval_every=350",
        "dataset.arrows=16",
        *SHORT,
        tiny=False,
    )
    result = run(cfg)
    run_dir = Path(cfg.run_dir)
    # Measured (seed 0, 700 steps): 8 modes, 90.8% high quality, W1 0.075; mse: W1 2.0.
    # At 350 steps it was 7 modes at 23%: the thresholds leave room for that.
    assert result["toy/modes"] >= 6
    assert result["toy/w1"] < 0.5 * mse_ring8[0]["toy/w1"]
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert {"toy/modes", "toy/high_quality", "toy/reverse_kl", "toy/w1"} <= set(saved)
    acc = tensorboard_events(run_dir)
    assert [e.step for e in acc.Scalars("toy/modes")] == [350, 700]
    assert_pictures(run_dir, acc, "toy/scatter", [350, 700], (560, 500))
    with Image.open(run_dir / "samples" / "evolution.gif") as gif:
        assert gif.size == (560, 500) and gif.n_frames == 2
        assert gif.info["loop"] == 0

    # gan-sample: points, labels; a grid of points is refused in one line.
    out = tmp_path / "points.npz"
    sample_main([str(run_dir), "--num", "40", "--out", str(out)])
    arrays = np.load(out)
    assert arrays["samples"].shape == (40, 2) and arrays["labels"].tolist() == [i % 8 for i in range(40)]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        sample_main([str(run_dir), "--grid", str(tmp_path / "g.png")])
    assert "not images" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("dataset,modes,high_quality", [("ring8", 8, 0.90), ("grid25", 24, 0.85)])
def test_documented_cgan_configuration_meets_the_target(make_cfg, dataset, modes, high_quality):
    """The best configuration of docs/toys.md, in full (about 40 s of CPU each); the
    sweep measured 8/8 at 99.5% (ring8) and 24.7/25 at 96.4% (grid25)."""
    result = run(make_cfg("experiment=toy_cgan", f"dataset={dataset}", "train.sample_every=1000", tiny=False))
    assert result["toy/modes"] >= modes and result["toy/high_quality"] >= high_quality

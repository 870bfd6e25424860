"""Sampling with the discriminator: calibration, DRS and MH on constructed toy generators."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gan_cli.data import load_toy
from gan_cli.errors import UserError
from gan_cli.evaluation.ratio import Tuning, fine_tuned
from gan_cli.evaluation.refine import Refiner, build_refiner, calibrate
from gan_cli.latent import Latent
from gan_cli.metrics.toy import high_quality, modes
from gan_cli.models.conditioning import Discriminator

RING = load_toy("ring8", std=0.02)


class RingG(nn.Module):
    """z [B, 4] -> ring8 points: the component from z0, the offset from z1, z2.
    With `junk` > 0, that share of z (by z3) lands anywhere in the box instead."""

    def __init__(self, junk: float = 0.0):
        super().__init__()
        self.junk = junk
        self.anchor = nn.Parameter(torch.zeros(()))  # a parameter, so it is a net like any G

    def forward(self, z, y=None):
        u = torch.special.ndtr(z)  # uniform (0, 1) per coordinate
        k = (u[:, 0] * 8).long().clamp(max=7)
        points = RING.centres[k] + RING.std * z[:, 1:3] + self.anchor
        spread = (u[:, 1:3] * 2 - 1) * 2.5
        return torch.where((u[:, 3] < self.junk)[:, None], spread, points)


def _trained_d(G, seed: int = 0, steps: int = 1000) -> Discriminator:
    torch.manual_seed(seed)
    D = Discriminator(
        nn.Sequential(
            nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)
        ),
        0,
    )
    opt = torch.optim.Adam(D.parameters(), 1e-3)
    latent, draws = Latent(4, "normal", torch.device("cpu"), seed=1), torch.Generator().manual_seed(2)
    for _ in range(steps):
        real, fake = RING.draw(256, draws)[0], G(latent.sample(256)).detach()
        loss = nn.functional.softplus(-D(real)).mean() + nn.functional.softplus(D(fake)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return D


def _refiner(method, G, D, **options):
    real_draws = torch.Generator().manual_seed(3)
    return Refiner(
        method,
        G,
        D,
        Latent(4, "normal", torch.device("cpu"), seed=4),
        lambda n: RING.draw(n, real_draws),
        lambda n: None,
        torch.Generator().manual_seed(5),
        **options,
    )


def _scores(points):
    centres = RING.centres.numpy()
    return high_quality(points.numpy(), centres, RING.std), modes(points.numpy(), centres, RING.std)


def test_calibration_recovers_a_known_log_ratio():
    """Real N(1, 1) against generated N(-1, 1) in one coordinate: log p/q = 2x.
    A D that scores 3x - 1 calibrates to 2x: scale 2/3 and offset 2/3."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(20_000, 1, generator=g) + 1, torch.randn(20_000, 1, generator=g) - 1
    D = Discriminator(nn.Linear(1, 1), 0)
    with torch.no_grad():
        D.net.weight.fill_(3.0)
        D.net.bias.fill_(-1.0)
    ratio = calibrate(D, real, None, fake, None)
    assert ratio.scale == pytest.approx(2 / 3, abs=0.03) and ratio.offset == pytest.approx(2 / 3, abs=0.03)


@pytest.fixture(scope="module")
def junky():
    """A G with 30% of its points anywhere, and a D trained against it."""
    G = RingG(junk=0.3)
    return G, _trained_d(G)


@pytest.mark.parametrize("method", ["drs", "mh", "threshold"])
def test_the_sampler_removes_a_generators_junk(method, junky):
    G, D = junky
    latent = Latent(4, "normal", torch.device("cpu"), seed=6)
    raw_hq, _ = _scores(G(latent.sample(2000)).detach())
    refiner = _refiner(method, G, D, **({"chain": 30} if method == "mh" else {}))
    refined = refiner.draw(2000)
    hq, covered = _scores(refined)
    assert raw_hq == pytest.approx(0.7, abs=0.04)
    assert hq >= (0.9 if method == "mh" else 0.95) and covered == 8  # sharper, every mode still there
    cost = refiner.cost.as_metrics(method)
    assert 0 < cost[f"{method}/acceptance"] < 1 and cost[f"{method}/d_evals_per_sample"] > 1


@pytest.mark.parametrize("method", ["drs", "mh", "threshold"])
def test_a_perfect_generator_is_left_as_it_is(method):
    G = RingG(junk=0.0)
    D = _trained_d(G, steps=100)  # nothing to learn: real and generated are one distribution
    latent = Latent(4, "normal", torch.device("cpu"), seed=6)
    raw_hq, _ = _scores(G(latent.sample(4000)).detach())
    refiner = _refiner(method, G, D, **({"chain": 10} if method == "mh" else {}))
    hq, covered = _scores(refiner.draw(4000))
    assert abs(refiner.ratio.scale) < 1.0  # calibration finds D's score all but meaningless
    assert hq == pytest.approx(raw_hq, abs=0.01) and covered == 8


def test_a_runs_evaluation_scores_the_refined_samples_beside_gs_own(make_cfg, junky):
    """eval.sampler=drs through the evaluation room (as a run calls it): the
    junky G's 70% high-quality points become at least 95%, every mode kept."""
    from gan_cli.config.build import build_data
    from gan_cli.evaluation import Evaluation
    from gan_cli.latent import evaluation_latent

    G, D = junky
    cfg = make_cfg(
        "experiment=toy_gan", "dataset.eval_points=1000", "latent.dim=4", "eval.sampler=drs", tiny=False
    )
    evaluation = Evaluation(build_data(cfg.dataset), cfg, torch.device("cpu"), grid_columns=8)
    raw = evaluation.metrics(G, evaluation_latent(cfg.latent, "cpu", cfg.seed), num_classes=0)
    values, (tag, picture) = evaluation.refined(G, D, None, torch.randn(64, 4), None, num_classes=0)
    assert raw["toy/high_quality"] == pytest.approx(0.7, abs=0.04) and raw["toy/modes"] == 8
    assert values["toy/high_quality_refined"] >= 0.95 and values["toy/modes_refined"] == 8
    refined_keys = {f"{k}_refined" for k in raw if not k.endswith("_floor")}
    assert set(values) == refined_keys | {
        "refine/acceptance",
        "refine/d_evals_per_sample",
        "refine/seconds_per_1000",
    }
    assert 0 < values["refine/acceptance"] < 1 and values["refine/d_evals_per_sample"] > 1
    assert tag == "toy/scatter_refined" and picture.shape[0] == 3


def test_refused_configurations_are_one_line():
    G = RingG()
    with pytest.raises(UserError, match="sampler must be one of drs, mh, threshold, jacobian, got 'best'"):
        _refiner("best", G, _trained_d(G, steps=1))
    with pytest.raises(UserError, match="sampler=drs reads the discriminator, and this run has none"):
        _refiner("drs", G, None)
    with pytest.raises(UserError, match="percentile must be in"):
        _refiner("drs", G, _trained_d(G, steps=1), percentile=100)
    with pytest.raises(UserError, match=r"threshold percentile must be in \(0, 100\), got 0"):
        _refiner("threshold", G, _trained_d(G, steps=1), threshold_percentile=0)


def test_the_threshold_keeps_what_d_rates_as_real_as_real_data(junky):
    """The cut is the percentile of the calibrated score over the held-out
    real points; every kept sample scores at least that, and the share of
    G's samples below it is what is dropped."""
    G, D = junky
    refiner = _refiner("threshold", G, D, threshold_percentile=5.0)
    real = RING.draw(2000, torch.Generator().manual_seed(3))[0]  # the calibration's real points
    assert refiner.cut == pytest.approx(torch.quantile(refiner.ratio(real, None).double(), 0.05).item())
    kept = refiner.draw(1000)
    assert (refiner.ratio(kept, None) >= refiner.cut).all()
    proposals = G(Latent(4, "normal", torch.device("cpu"), seed=9).sample(4000)).detach()
    dropped = (refiner.ratio(proposals, None) < refiner.cut).float().mean().item()
    assert 0.25 < dropped < 0.4  # about the 30% junk, and few of the ring's own points
    assert refiner.cost.as_metrics("t")["t/acceptance"] == pytest.approx(1 - dropped, abs=0.04)


def test_a_generator_far_from_the_data_gets_its_best_samples_and_a_count(junky):
    """Every sample of G below the cut: after MAX_PROPOSALS per sample the
    threshold stops and fills in with the highest-scored proposals."""
    from gan_cli.evaluation.draws import MAX_PROPOSALS

    G, D = RingG(), junky[1]
    G.anchor.data.fill_(1.0)  # every point 1 from its ring component, off the data
    refiner = _refiner("threshold", G, D, threshold_percentile=50.0)
    samples = refiner.draw(50)
    assert samples.shape == (50, 2)
    below = refiner.cost.extra["unaccepted"]
    assert 0 < below <= 50 and refiner.cost.proposed >= MAX_PROPOSALS * 50


def test_rejection_sampling_that_accepts_nothing_stops_at_the_cap(junky):
    """DRS's chance is relative to the largest ratio it has seen: one far
    outlier (here r_max raised by 50 after the burn-in) makes every chance
    about e^-50, and the draw used to run on without end, its memory growing.
    It now stops after MAX_PROPOSALS per sample, as the threshold does."""
    from gan_cli.evaluation.draws import MAX_PROPOSALS

    G, D = junky
    refiner = _refiner("drs", G, D)
    refiner.draw(1)  # the burn-in sets r_max
    refiner.r_max += 50.0
    proposed = refiner.cost.proposed
    samples = refiner.draw(50)
    assert samples.shape == (50, 2) and torch.isfinite(samples).all()
    assert refiner.cost.extra["unaccepted"] == 50
    assert MAX_PROPOSALS * 50 <= refiner.cost.proposed - proposed <= MAX_PROPOSALS * 50 + 164


def test_gan_sample_refines_with_the_runs_discriminator(make_cfg, tmp_path, capsys):
    import numpy as np

    from gan_cli.commands.sample import main as sample_main
    from gan_cli.run.runner import run

    settings = ["train.steps=60", "train.sample_every=1000", "train.eval_every=1000", "train.batch_size=128"]
    run(make_cfg("experiment=toy_gan", *settings, f"run_dir={tmp_path / 'gan'}", tiny=False))
    capsys.readouterr()
    for method in ("drs", "mh", "threshold"):
        out = tmp_path / f"{method}.npz"
        sample_main(
            [str(tmp_path / "gan"), "--num", "300", "--sampler", method, "--refine-steps", "50"]
            + (["--mh-chain", "5"] if method == "mh" else [])
            + ["--out", str(out)]
        )
        samples = np.load(out)["samples"]
        assert samples.shape == (300, 2) and np.isfinite(samples).all()
        assert f"gan-sample: {method}: acceptance " in capsys.readouterr().err
    # An option of another sampler, or of none, would change nothing: one line.
    for args, message in [
        (
            ["--sampler", "drs", "--mh-chain", "5"],
            "--mh-chain acts on --sampler mh only; the sampler here is drs",
        ),
        (
            ["--refine-steps", "50"],
            "--refine-steps acts on --sampler drs/mh/threshold only; no sampler is in use",
        ),
        (["--sampler", "mh", "--jacobian-drop", "9"], "--jacobian-drop acts on --sampler jacobian only"),
    ]:
        with pytest.raises(SystemExit):
            sample_main([str(tmp_path / "gan"), "--out", str(tmp_path / "unused.npz"), *args])
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"gan-sample: error: {message}")
    assert not (tmp_path / "unused.npz").exists()
    run(make_cfg("experiment=toy_mse", "train.steps=2", f"run_dir={tmp_path / 'mse'}", tiny=False))
    with pytest.raises(SystemExit) as stopped:
        sample_main([str(tmp_path / "mse"), "--sampler", "drs"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1]
        == "gan-sample: error: --sampler drs reads the discriminator, and this run has none (objective mse)"
    )


class Shifted(nn.Module):
    """A "G" of N(shift, 1) in one coordinate: z + shift."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(shift))

    def forward(self, z, y=None):
        return z + self.shift


class NormalBatches:
    """A data set's sampler of N(0, 1) points: .next() -> batch with .x, .y."""

    def __init__(self, n: int, seed: int):
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def next(self):
        return SimpleNamespace(x=torch.randn(self.n, 1, generator=self.generator), y=None)


def _small_d(spectral_norm: bool = False) -> Discriminator:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(1, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1)
    )
    return Discriminator(net, 0, spectral_norm=spectral_norm)


@pytest.mark.parametrize("layers", ["all", "last"])
def test_fine_tuning_makes_d_the_known_log_density_ratio(layers):
    """Real N(0, 1) against G's N(0.5, 1): log p_data / p_G = 0.125 - 0.5 x.
    A D that knows nothing (random weights) becomes that line, within 0.1
    over [-2, 2], once fine-tuned and calibrated on held-out points."""
    G, D = Shifted(0.5), _small_d()
    tuning = Tuning(steps=600, lr=1e-3, batch=512, layers=layers)
    latent = Latent(1, "normal", torch.device("cpu"), seed=1)
    tuned, evaluations, seconds = fine_tuned(D, G, latent, NormalBatches(512, seed=2), tuning)
    assert evaluations == 600 * 2 * 512 and seconds > 0
    held_out = torch.Generator().manual_seed(3)
    real = torch.randn(20_000, 1, generator=held_out)
    fake = torch.randn(20_000, 1, generator=held_out) + 0.5
    ratio = calibrate(tuned, real, None, fake, None)
    x = torch.linspace(-2, 2, 41)[:, None]
    error = (ratio(x, None) - (0.125 - 0.5 * x[:, 0])).abs().max().item()
    assert error < 0.1 and ratio.scale == pytest.approx(1, abs=0.1)  # the logit is the ratio already
    untuned = calibrate(D, real, None, fake, None)
    assert (untuned(x, None) - (0.125 - 0.5 * x[:, 0])).abs().max().item() > 2 * error


def test_fine_tuning_leaves_the_runs_d_as_it_was():
    """A copy is trained: D's weights, spectral-norm vectors and mode stay."""
    G, D = Shifted(0.5), _small_d(spectral_norm=True)
    D.train()
    before = {k: v.clone() for k, v in D.state_dict().items()}
    tuned, _, _ = fine_tuned(
        D, G, Latent(1, "normal", torch.device("cpu"), seed=1), NormalBatches(64, seed=2), Tuning(steps=20)
    )
    assert tuned is not D and D.training and not tuned.training
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    assert all(p.requires_grad for p in D.parameters())


def test_the_same_seed_gives_the_same_refined_samples(junky):
    G, D = junky
    latent = {"dim": 4, "distribution": "normal"}

    def samples(method, seed):
        refiner = build_refiner(
            method, G, D, RING, latent, torch.device("cpu"), seed, chain=5, refine_steps=30
        )
        return refiner.draw(300)

    for method in ("drs", "mh"):
        assert torch.equal(samples(method, 0), samples(method, 0))
        assert not torch.equal(samples(method, 0), samples(method, 1))


def test_bad_refine_steps_are_one_line(make_cfg, junky, capsys):
    from gan_cli.commands.sample import main as sample_main
    from gan_cli.config.checks import validate

    with pytest.raises(UserError) as info:
        validate(make_cfg("eval.refine_steps=-1"))
    assert str(info.value) == "eval.refine_steps must be a whole number >= 0, got -1"
    G, D = junky
    with pytest.raises(
        UserError, match=r"^refine steps must be a whole number >= 0 \(0: D as trained\), got 2.5$"
    ):
        build_refiner(
            "drs", G, D, RING, {"dim": 4, "distribution": "normal"}, torch.device("cpu"), 0, refine_steps=2.5
        )
    with pytest.raises(SystemExit) as stopped:
        sample_main(["no-such-run", "--sampler", "drs", "--refine-steps", "-3"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "gan-sample: error: --refine-steps must be >= 0 (0: D as trained), got -3"
    ]


@pytest.mark.parametrize(
    "option, value, line",
    [
        ("--drs-percentile", "100", "--drs-percentile must be in (0, 100), got 100"),
        ("--mh-chain", "0", "--mh-chain must be >= 1, got 0"),
        ("--threshold-percentile", "-1", "--threshold-percentile must be in (0, 100), got -1"),
    ],
)
def test_bad_sampler_settings_are_one_line_naming_the_option(option, value, line, capsys):
    from gan_cli.commands.sample import main as sample_main

    # refused before the (missing) run is read
    with pytest.raises(SystemExit) as stopped:
        sample_main(["no-such-run", "--sampler", "mh", option, value])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"gan-sample: error: {line}"]


def test_the_refiner_names_which_setting_is_impossible(junky):
    G, D = junky
    for settings, line in (
        ({"percentile": 0.0}, "the DRS percentile must be in (0, 100), got 0.0"),
        ({"chain": 0}, "the MH chain must be at least 1 step, got 0"),
    ):
        with pytest.raises(UserError) as info:
            Refiner("mh", G, D, None, None, None, torch.Generator(), **settings)
        assert str(info.value) == line

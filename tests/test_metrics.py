"""Image quality metrics: the formulas, the classifier behind them, and what a
run, gan-eval and gan-classifier report."""

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_cli import classifier as classifiers
from gan_cli.commands.classifier import main as classifier_main
from gan_cli.commands.evaluate import main as eval_main
from gan_cli.evaluation.scorer import ImageScorer, score
from gan_cli.latent import Latent
from gan_cli.metrics.image import (
    class_accuracy,
    class_histogram,
    classes_present,
    confidence,
    feature_stats,
    frechet_distance,
    kl_to_uniform,
    place_kls,
)
from gan_cli.run.runner import run


# --- formulas ------------------------------------------------------------------
def test_frechet_distance_matches_closed_forms():
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    # Same Gaussian: zero; the diagonal case: sum over dimensions.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    s = a @ a.T
    assert frechet_distance(np.ones(6), s, np.ones(6), s) == pytest.approx(0, abs=1e-8)
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 3 + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert frechet_distance(np.zeros(3), np.diag(d1), np.ones(3), np.diag(d2)) == pytest.approx(expected)
    # Full covariances: the textbook sqrtm(S1 S2) form.
    b = rng.normal(size=(6, 6))
    t = b @ b.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    textbook = (
        ((mu1 - mu2) ** 2).sum() + np.trace(s) + np.trace(t) - 2 * np.trace(scipy.linalg.sqrtm(s @ t)).real
    )
    assert frechet_distance(mu1, s, mu2, t) == pytest.approx(textbook, rel=1e-6)


def test_class_statistics_by_hand():
    predicted = torch.tensor([3, 3, 3, 1, 3, 3, 3, 3, 3, 3])
    hist = class_histogram(predicted, 4)
    assert hist.tolist() == [0.0, 0.1, 0.0, 0.9]
    assert classes_present(hist) == 2  # 10% >= 2.5%: present
    assert classes_present(class_histogram(torch.tensor([0] * 99 + [1]), 4)) == 1  # 1% < 2.5%
    assert kl_to_uniform(hist) == pytest.approx(0.1 * math.log(0.4) + 0.9 * math.log(3.6))
    assert kl_to_uniform(torch.full((10,), 0.1, dtype=torch.float64)) == pytest.approx(0.0, abs=1e-12)
    assert kl_to_uniform(torch.tensor([1.0] + [0.0] * 9)) == pytest.approx(math.log(10))
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    assert confidence(probs) == pytest.approx(0.75)
    overall, per_class = class_accuracy(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), 3)
    assert overall == 0.75 and per_class[:2] == [0.5, 1.0] and math.isnan(per_class[2])


def test_a_numbers_kl_is_its_places_kls_and_their_dependence():
    every = torch.arange(1000)
    # Every place's digits even, but the places copy each other (000, 111, ..., 999).
    copied = every % 10 * 111
    assert place_kls(copied, 3) == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert kl_to_uniform(class_histogram(copied, 1000)) == pytest.approx(math.log(100))
    # The hundreds always 7, the other places even and independent (700-799).
    sevens = 700 + every % 100
    assert place_kls(sevens, 3) == pytest.approx([math.log(10), 0.0, 0.0], abs=1e-12)
    assert kl_to_uniform(class_histogram(sevens, 1000)) == pytest.approx(math.log(10))
    # In general the numbers' KL is at least the places' sum (their total correlation >= 0).
    drawn = torch.randint(0, 1000, (500,), generator=torch.Generator().manual_seed(0)) ** 2 % 1000
    assert kl_to_uniform(class_histogram(drawn, 1000)) > sum(place_kls(drawn, 3)) > 0.1


# --- the classifier ------------------------------------------------------------
def test_classifier_reaches_its_measured_accuracy_on_held_out_digits(digits_classifier):
    data, clf = digits_classifier
    r = clf.record
    assert r["heldout_source"] == "stratified 20% of digits" and r["heldout_count"] == 359
    assert r["train_count"] + r["heldout_count"] == len(data) == 1797
    # Measured again here, on the same seeded stratified split.
    _, held = classifiers.stratified_split(data.labels, 0.2, classifiers.SEED)
    assert torch.bincount(data.labels[held]).tolist() == [
        round(0.2 * n) for n in torch.bincount(data.labels).tolist()
    ]
    _, probs = clf.score(data.scaled()[held])
    accuracy = (probs.argmax(1) == data.labels[held]).double().mean().item()
    assert accuracy == pytest.approx(r["heldout_accuracy"])
    assert accuracy >= 0.97


def test_cached_classifier_is_a_plain_dict_keyed_by_the_data(digits_classifier, classifier_cache):
    data, clf = digits_classifier
    path = classifiers.cache_file(classifier_cache, "digits", None, data.images, data.labels)
    assert path.name == f"digits-all-{classifiers.data_hash(data.images, data.labels)}.pt"
    record = torch.load(path, weights_only=True)
    assert record["format"] == classifiers.FORMAT and record["shape"] == [1, 8, 8]
    assert set(record["state_dict"]) == set(clf.net.state_dict())
    # It keeps the real images' feature statistics, so runs need not compute them.
    mu, sigma = feature_stats(clf.score(data.scaled())[0])
    assert np.allclose(record["real_mu"].numpy(), mu, atol=1e-5)
    assert np.allclose(record["real_sigma"].numpy(), sigma, atol=1e-5)
    # One changed pixel, or one changed label, is another data set.
    images = data.images.clone()
    images[0, 0, 0, 0] ^= 1
    labels = data.labels.clone()
    labels[0] = (labels[0] + 1) % 10
    names = {
        path.name,
        classifiers.cache_file(classifier_cache, "digits", None, images, data.labels).name,
        classifiers.cache_file(classifier_cache, "digits", None, data.images, labels).name,
    }
    assert len(names) == 3
    # An unreadable cache file is not used (it is trained again instead).
    bad = classifier_cache / "classifiers" / "broken.pt"
    bad.write_bytes(b"not a torch file")
    assert classifiers.load(bad) is None


def test_classifier_training_is_deterministic_and_leaves_random_state_alone():
    from gan_cli.data import load_sklearn_digits

    data = load_sklearn_digits()
    x, y = data.images[:300], data.labels[:300]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    one = classifiers.fit(x, y, 10, torch.device("cpu"), steps=15)
    assert torch.equal(torch.get_rng_state(), before)
    two = classifiers.fit(x, y, 10, torch.device("cpu"), steps=15)
    for (name, a), (_, b) in zip(one.state_dict().items(), two.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_cache_dir_comes_from_config_then_environment_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_CLI_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert classifiers.cache_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert classifiers.cache_root(None) == tmp_path / "env"
    monkeypatch.delenv("GAN_CLI_CACHE")
    assert classifiers.cache_root(None) == tmp_path / "xdg" / "gan-cli"


# --- metrics on real, noise and fixed images ---------------------------------
def test_frechet_distance_real_vs_real_near_the_floor_and_noise_far_above(digits_classifier):
    data, clf = digits_classifier
    floor = clf.record["fd_floor"]
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))
    half_a, half_b = (clf.score(data.scaled()[i])[0] for i in (order[:898], order[898:]))
    real_vs_real = frechet_distance(*feature_stats(half_a), *feature_stats(half_b))
    noise = torch.rand(898, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    real_vs_noise = frechet_distance(*feature_stats(clf.score(noise)[0]), *feature_stats(half_b))
    assert floor > 0 and 0.3 * floor < real_vs_real < 2.5 * floor
    assert real_vs_noise > 50 * floor


def test_class_accuracy_of_real_labelled_images_is_the_classifiers_accuracy(digits_classifier):
    data, clf = digits_classifier
    _, held = classifiers.stratified_split(data.labels, 0.2, classifiers.SEED)
    features, probs = clf.score(data.scaled()[held])
    real_stats = feature_stats(clf.score(data.scaled())[0])
    values = score(probs, features, real_stats, 10, wanted=data.labels[held])
    assert values["eval/class_accuracy"] == pytest.approx(clf.accuracy, abs=1e-12)
    per_class = [values[f"eval/class_accuracy/{k}"] for k in range(10)]
    assert min(per_class) >= 0.9 and values["eval/classes_present"] == 10
    assert values["eval/classes_kl"] < 0.01 and values["eval/confidence"] > 0.9


class OneDigit(torch.nn.Module):
    """A 'generator' that draws the same real image whatever z and y ask for."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.register_buffer("image", image)
        self.num_classes = 10

    def forward(self, z, y=None):
        return self.image.expand(len(z), *self.image.shape)


def test_a_generator_of_one_digit_has_one_class_present(digits_classifier):
    data, clf = digits_classifier
    three = data.scaled()[(data.labels == 3).nonzero()[0, 0]]
    scorer = ImageScorer(data, None, num_samples=1000, cache_dir=None, device="cpu")
    latent = Latent(16, "normal", torch.device("cpu"), seed=0)
    values = scorer(OneDigit(three), latent, num_classes=10)
    assert values["eval/classes_present"] == 1 and values["eval/class_share/3"] == 1.0
    assert values["eval/classes_kl"] == pytest.approx(math.log(10))
    # Asked for every class in turn, it is right only when 3 was asked for.
    assert values["eval/class_accuracy"] == pytest.approx(0.1)
    assert values["eval/class_accuracy/3"] == 1.0 and values["eval/class_accuracy/7"] == 0.0
    assert values["eval/fd"] > 20 * values["eval/fd_floor"]
    # Sharp but no variety: every image sits among real threes, and almost no real digit is near it.
    assert values["eval/recall"] < 0.05 and values["eval/coverage"] < 0.05
    assert values["eval/kid"] > 10 * abs(values["eval/kid_floor"])


class RealDigits(torch.nn.Module):
    """A 'generator' that draws real images in turn: as varied and as sharp as the data."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.register_buffer("images", images)
        self.num_classes, self.drawn = 0, 0

    def forward(self, z, y=None):
        index = (torch.arange(len(z)) * 7 + self.drawn) % len(self.images)
        self.drawn += len(z)
        return self.images[index]


def test_real_images_score_precision_and_recall_at_the_floor(digits_classifier):
    data, _ = digits_classifier
    scorer = ImageScorer(data, None, num_samples=800, cache_dir=None, device="cpu")
    values = scorer(RealDigits(data.scaled()), Latent(16, "normal", torch.device("cpu"), seed=0), 0)
    for key in ("precision", "recall", "density", "coverage"):
        floor = values[f"eval/{key}_floor"]
        assert floor > 0.5 and values[f"eval/{key}"] == pytest.approx(floor, abs=0.1), key
    assert values["eval/precision"] > 0.8 and values["eval/recall"] > 0.8
    # KID is unbiased: near zero for real images, on the scale a collapsed generator sets.
    three = data.scaled()[(data.labels == 3).nonzero()[0, 0]]
    collapsed = scorer(OneDigit(three), Latent(16, "normal", torch.device("cpu"), seed=0), 0)["eval/kid"]
    assert abs(values["eval/kid"]) < 0.05 * collapsed and abs(values["eval/kid_floor"]) < 0.05 * collapsed


def test_the_real_side_is_computed_once_per_classifier_and_sample_size(
    digits_classifier, tmp_path, monkeypatch
):
    """The real features and floors are stored beside the classifier and read
    back (same numbers, nothing scored); another sample size, a retrained
    classifier or a broken file computes them again."""
    from gan_cli.data import load_sklearn_digits

    cache = tmp_path / "cache"
    (cache / "classifiers").mkdir(parents=True)
    for trained in Path(os.environ["GAN_CLI_CACHE"], "classifiers").glob("digits-all-*.pt"):
        shutil.copy2(trained, cache / "classifiers")  # the classifier alone, no real side yet
    data = load_sklearn_digits()
    computed = []
    real_side = ImageScorer._real_side

    def counted(self):
        computed.append(self.num_samples)
        return real_side(self)

    monkeypatch.setattr(ImageScorer, "_real_side", counted)

    def prepared(num_samples):
        scorer = ImageScorer(data, None, num_samples=num_samples, cache_dir=str(cache), device="cpu")
        scorer.prepare()
        return scorer

    first = prepared(400)
    stored = sorted(cache.glob("classifiers/real/digits-all-*.pt"))
    assert computed == [400] and len(stored) == 1
    second = prepared(400)
    assert computed == [400]  # read back
    assert second.floors == first.floors and torch.equal(second.real_features, first.real_features)
    assert first.real_features.shape == (400, classifiers.FEATURES)
    assert set(first.floors) == {
        f"eval/{k}_floor" for k in ("precision", "recall", "density", "coverage", "kid")
    }
    prepared(300)
    assert computed == [400, 300] and len(sorted(cache.glob("classifiers/real/*.pt"))) == 2
    stored[0].write_bytes(stored[0].read_bytes()[:100])  # cut short
    again = prepared(400)
    assert computed == [400, 300, 400] and again.floors == first.floors
    (classifier_file,) = cache.glob("classifiers/digits-all-*.pt")
    os.utime(classifier_file, ns=(0, 0))  # as if trained again
    prepared(400)
    assert computed == [400, 300, 400, 400]


# --- in a run ------------------------------------------------------------------
def test_a_run_logs_and_returns_the_metrics_and_gan_eval_reproduces_them(make_cfg, tmp_path, capsys):
    cfg = make_cfg("objective=cgan", "train.eval_every=10")
    metrics = run(cfg)
    run_dir = Path(cfg.run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == pytest.approx(metrics, nan_ok=True)
    for key in (
        "eval/fd",
        "eval/classes_present",
        "eval/classes_kl",
        "eval/confidence",
        "eval/class_accuracy",
        "eval/class_accuracy/9",
        "eval/fd_floor",
        "eval/precision",
        "eval/recall",
        "eval/density",
        "eval/coverage",
        "eval/kid",
        "eval/recall_floor",
    ):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert 0 <= metrics["eval/class_accuracy"] <= 1 and 1 <= metrics["eval/classes_present"] <= 10
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/fd")] == [10, 20]
    assert acc.Scalars("eval/fd")[-1].value == pytest.approx(metrics["eval/fd"], rel=1e-6)

    # gan-eval from the checkpoint alone: the same numbers as the run's last evaluation.
    out = tmp_path / "eval.json"
    capsys.readouterr()
    eval_main([str(run_dir), "--json", str(out), "--device", "auto"])  # where the run ran
    shown = capsys.readouterr().out
    assert "eval/fd" in shown and "eval/class_accuracy/<k>" in shown
    again = json.loads(out.read_text())
    assert set(again) == {k for k in metrics if k.startswith("eval/")}
    for key, value in again.items():
        assert value == pytest.approx(metrics[key], rel=1e-5, abs=1e-9, nan_ok=True), key


def test_building_an_experiment_obtains_no_classifier_until_it_evaluates(make_cfg, tmp_path):
    from gan_cli.training.experiment import Experiment

    cache = tmp_path / "empty-cache"
    exp = Experiment(make_cfg("dataset=mnist_subset", f"eval.cache_dir={cache}"))
    assert exp.evaluation.room.scorer is not None and exp.evaluation.room.scorer.classifier is None
    assert not cache.exists()  # gan-bench builds experiments; it never trains one


def test_unconditional_runs_get_no_class_accuracy_and_off_means_off(make_cfg):
    metrics = run(make_cfg("objective=gan", "train.steps=4"))
    assert "eval/fd" in metrics and "eval/class_accuracy" not in metrics
    quiet = run(make_cfg("objective=gan", "train.steps=4", "eval.classifier=off"))
    assert not any(k.startswith("eval/") for k in quiet)


def test_a_run_that_finds_no_classifier_trains_it_and_says_so(tmp_path, make_cfg, capsys):
    cache = tmp_path / "cache"
    metrics = run(make_cfg("train.steps=2", f"eval.cache_dir={cache}"))
    said = capsys.readouterr().err
    assert "no classifier for digits" in said and "held-out accuracy" in said
    assert "eval/fd" in metrics
    [file] = (cache / "classifiers").glob("digits-all-*.pt")
    # The console script finds it there and reports what it measured.
    shown = run_cli("gan-classifier", "dataset=digits", f"eval.cache_dir={cache}", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"digits: cached classifier {file}" in shown.stdout
    accuracy = float(shown.stdout.split("held-out accuracy ")[1].split()[0])
    assert accuracy == pytest.approx(torch.load(file, weights_only=True)["heldout_accuracy"], abs=1e-4)
    assert accuracy >= 0.97


@pytest.mark.parametrize(
    "main,args,message",
    [
        (
            classifier_main,
            ["dataset=image_folder", "dataset.path=FOLDER", "dataset.size=8"],
            "has no class labels",
        ),
        (classifier_main, ["dataset=nonsense"], "dataset=nonsense is not an option of dataset"),
        (classifier_main, ["dataset=digits", "train.steps=abc"], "train.steps must be a whole number >= 0"),
        (eval_main, ["FOLDER"], "no checkpoint in"),
        (eval_main, ["RUN", "--num-samples", "5"], "--num-samples must be >= 6"),
    ],
    ids=["unlabelled", "unknown-option", "bad-value", "no-checkpoint", "num-samples"],
)
def test_bad_input_to_the_metric_commands_gets_one_line(tmp_path, make_cfg, capsys, main, args, message):
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.new("L", (8, 8), color=90).save(folder / "a.png")
    run_dir = tmp_path / "run"
    if "RUN" in args:
        run(make_cfg("train.steps=1", "eval.classifier=off", f"run_dir={run_dir}"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("FOLDER", str(folder)).replace("RUN", str(run_dir)) for a in args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    prog = "gan-classifier" if main is classifier_main else "gan-eval"
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error:") and message in lines[0], lines


def test_the_metrics_see_mse_collapse_to_one_average_digit(make_cfg):
    # Regression with fresh z each step learns the mean image: one "digit".
    metrics = run(
        make_cfg(
            "objective=mse",
            "train.steps=200",
            "train.log_every=100",
            "train.sample_every=200",
            "train.checkpoint_every=200",
        )
    )
    assert metrics["eval/classes_present"] <= 2 and metrics["eval/classes_kl"] > 1.5
    assert metrics["eval/fd"] > 50 * metrics["eval/fd_floor"]


@pytest.mark.slow  # ~7 min on 2 CPU cores
def test_cgan_mnist_preset_draws_the_requested_class_95_percent_of_the_time(make_cfg):
    cfg = make_cfg("experiment=cgan_mnist", "train.eval_every=16000", "train.log_every=1000", tiny=False)
    assert cfg.train.steps == 16000
    metrics = run(cfg)
    assert metrics["eval/class_accuracy"] >= 0.95
    assert metrics["eval/classes_present"] == 10 and metrics["eval/fd"] < 10

"""The experiment presets: each composes to its paper's settings, runs on the
bundled digits by default and takes dataset=mnist; cgan_mnist trains."""

from pathlib import Path

import pytest
from PIL import Image
from test_config import options

from gan_cli.config.checks import validate
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run

PRESETS = {
    "wgan_paper": {
        "objective.name": "wgan",
        "objective.reference_schedule": True,
        "objective.critic_steps": 5,
        "objective.clip_value": 0.01,
        "optimizer.name": "rmsprop",
        "optimizer.d.lr": 5e-5,
        "train.batch_size": 64,
    },
    "wgan_gp_mnist": {
        "objective.name": "wgan_gp",
        "objective.critic_steps": 5,
        "objective.gp_weight": 10.0,
        "model.name": "dcgan",
        "model.d_norm": "layer",
        "optimizer.name": "adam_gp",
        "optimizer.d.lr": 1e-4,
        "optimizer.d.betas": [0.5, 0.9],
        "train.batch_size": 50,
    },
    "dcgan_mnist": {
        "objective.name": "gan",
        "objective.generator_loss": "non_saturating",
        "model.name": "dcgan",
        "model.batch_norm": True,
        "optimizer.name": "adam",
        "optimizer.d.lr": 2e-4,
        "optimizer.d.betas": [0.5, 0.999],
        "train.batch_size": 128,
    },
    "cgan_mnist": {
        "objective.name": "cgan",
        "objective.conditional": True,
        "model.name": "mlp",
        "optimizer.name": "adam",
        "train.steps": 16000,
        "train.ema": 0.0,
    },
    "stacked_dcgan": {
        "dataset.name": "stacked_mnist",
        "objective.name": "gan",
        "model.name": "dcgan",
        "model.batch_norm": True,
        "optimizer.name": "adam",
        "train.batch_size": 64,
        "objective.pack": 1,
        "train.ema": 0.0,
    },
    "stacked_resnet": {
        "dataset.name": "stacked_mnist",
        "dataset.size": 32,
        "objective.name": "hinge",
        "objective.critic_steps": 5,
        "model.name": "resnet",
        "model.spectral_norm": True,
        "optimizer.name": "adam",
        "optimizer.betas": [0.0, 0.9],
        "train.batch_size": 64,
        "train.ema": 0.0,
    },
    "stacked_pacgan": {
        "dataset.name": "stacked_mnist",
        "objective.name": "gan",
        "model.name": "dcgan",
        "objective.pack": 2,
        "train.ema": 0.999,
        "train.batch_size": 64,
    },
    "stacked_best": {
        "dataset.name": "stacked_mnist",
        "objective.name": "gan",
        "model.name": "dcgan",
        "objective.pack": 1,
        "objective.r1": 1.0,
        "objective.r1_every": 4,
        "train.ema": 0.999,
        "train.ema_start": 2000,
        "train.steps": 35000,
    },
    "sngan_cifar10": {
        "dataset.name": "cifar10",
        "model.name": "resnet",
        "model.spectral_norm": True,
        "objective.name": "hinge",
        "objective.critic_steps": 5,
        "optimizer.name": "adam",
        "optimizer.g.lr": 2e-4,
        "optimizer.d.betas": [0.0, 0.9],
        "train.batch_size": 64,
        "train.lr_decay": 1.0,
        "train.ema": 0.0,
        "train.steps": 100000,
    },
}
# The papers' presets show the paper's G itself: no moving average.
for _name in ("wgan_paper", "wgan_gp_mnist", "dcgan_mnist"):
    PRESETS[_name].update({"train.ema": 0.0, "train.steps": 5000})


def _value(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return list(node) if hasattr(node, "__len__") and not isinstance(node, str) else node


def test_every_image_preset_is_listed_here():
    # The toy_* presets are checked with the toys (tests/test_toys.py).
    assert {n for n in options("experiment") if not n.startswith("toy_")} == set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_composes_to_its_paper_settings(make_cfg, tmp_path, name):
    # (stacked digits and CIFAR-10 come from files: their root, as gan-train's job sets it)
    extra = [f"dataset.root={tmp_path}"] if "stacked" in name or "cifar" in name else []
    cfg = make_cfg(f"experiment={name}", *extra, tiny=False)
    validate(cfg)
    assert {key: _value(cfg, key) for key in PRESETS[name]} == PRESETS[name]
    if cfg.dataset.name == "stacked_mnist":  # stacks of the bundled digits
        assert cfg.dataset.source == "mnist_subset"
        assert (
            make_cfg(
                f"experiment={name}", "dataset.source=mnist", f"dataset.root={tmp_path}", tiny=False
            ).dataset.source
            == "mnist"
        )
        return
    if name == "sngan_cifar10":  # CIFAR-10's own setting: its data on disk or downloaded
        return
    assert cfg.dataset.name == "mnist_subset"  # offline by default
    assert make_cfg(f"experiment={name}", "dataset=mnist", tiny=False).dataset.name == "mnist"


def test_cgan_mnist_preset_runs_and_draws_a_row_per_class(make_cfg):
    _run_cgan_mnist_for_two_steps(make_cfg)


def _run_cgan_mnist_for_two_steps(make_cfg):
    # No evaluation: the preset's nets and pictures are the point, the
    # classifier's metrics have tests of their own.
    cfg = make_cfg(
        "experiment=cgan_mnist", "train.steps=2", "train.log_every=1", "eval.classifier=off", tiny=False
    )
    metrics = run(cfg)
    assert {"loss/d", "loss/g", "js_estimate"} <= set(metrics)
    with Image.open(Path(cfg.run_dir) / "samples" / "step_2.png") as png:
        assert png.size == (8 * 30 + 2, 10 * 30 + 2)  # 28px digits, 8 columns, 10 classes
    assert load_checkpoint(cfg.run_dir)["model_args"] == {
        "data_shape": [1, 28, 28],
        "num_classes": 10,
        "latent_dim": cfg.latent.dim,
    }


@pytest.mark.slow  # 900 steps of the default job and three evaluations: minutes on 2 cores
def test_a_short_run_of_the_default_job_gets_better_as_it_trains(make_cfg, tmp_path):
    # The default job itself (tiny=False: cgan, G's average, mnist_subset),
    # shortened: eval/fd, from the shipped classifier, falls as it trains.
    cfg = make_cfg(
        "train.steps=900",
        "train.eval_every=300",
        "eval.num_samples=1000",
        "train.sample_every=900",
        "train.checkpoint_every=900",
        tiny=False,
    )
    assert (cfg.objective.name, cfg.dataset.name) == ("cgan", "mnist_subset")
    run(cfg)
    from conftest import tensorboard_events

    fd = [e.value for e in tensorboard_events(cfg.run_dir).Scalars("eval/fd")]
    assert len(fd) == 3 and fd[2] < fd[1] < fd[0] and fd[2] < 0.8 * fd[0]


@pytest.mark.slow  # the whole default job, evaluated once at the end: 8 minutes on the tests' one thread
def test_the_default_job_is_sharp_and_covers_most_of_the_digits_variety(make_cfg):
    # docs/default_job.md: precision 0.95, recall 0.82-0.85 (floors 0.96 and
    # 0.96), eval/fd 1.2-1.4 on seeds 0-2; DCGAN's Adam betas gave recall 0.70.
    cfg = make_cfg("train.eval_every=8000", "train.sample_every=8000", tiny=False)
    assert (cfg.train.steps, cfg.optimizer.name) == (8000, "adam_no_momentum")
    metrics = run(cfg)
    assert metrics["eval/precision"] >= 0.93
    assert metrics["eval/recall"] >= 0.78
    assert metrics["eval/fd"] <= 2.0
    assert metrics["eval/classes_present"] == 10 and metrics["eval/class_accuracy"] >= 0.95

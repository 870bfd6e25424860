"""Stacked MNIST: three real digits per image, the 1,000-mode count read
channel by channel, and a short real run."""

import copy
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gan_cli.config.checks import changed_keys, validate
from gan_cli.data.sampler import to_unit_range
from gan_cli.data.stacked import load_stacked
from gan_cli.errors import UserError
from gan_cli.evaluation.stacked import StackedEvaluation, mode_metrics, read_numbers
from gan_cli.latent import Latent
from gan_cli.run.checkpoint import upgrade
from gan_cli.run.runner import run

CONF = Path(__file__).resolve().parents[1] / "conf"
FEW = {"eval": {"num_samples": 500}}  # fd, precision & co. over 500 stacks: a quick test


@pytest.fixture(scope="module")
def stacked():
    return load_stacked(eval_samples=26_000)


def test_each_channel_is_a_real_digit_and_the_label_spells_them(stacked):
    sampler = stacked.sampler(64, torch.device("cpu"), seed=3)
    batch = sampler.next()
    assert batch.x.shape == (64, 3, 28, 28) and stacked.num_classes == 1000
    digits = to_unit_range(stacked.digits[:, 0])  # [5000, 28, 28]
    for image, number in zip(batch.x, batch.y.tolist(), strict=True):
        for channel, place in zip(image, (100, 10, 1), strict=True):
            match = (digits == channel).flatten(1).all(1).nonzero().view(-1)
            assert len(match) >= 1
            assert stacked.labels[match[0]].item() == number // place % 10
    # Seeded and resumable: the generator is the sampler's whole state.
    state = sampler.state_dict()
    again = sampler.next()
    sampler.load_state_dict(state)
    assert torch.equal(sampler.next().x, again.x)


class _Real(torch.nn.Module):
    """A 'generator' that returns real stacked images (or one fixed image)."""

    def __init__(self, data, constant=False):
        super().__init__()
        self.data, self.num_classes = data, 0
        self.generator = torch.Generator().manual_seed(11)
        self.constant = data.draw(1, self.generator)[0] if constant else None

    def forward(self, z, y=None):
        if self.constant is not None:
            return to_unit_range(self.constant.expand(len(z), -1, -1, -1))
        return to_unit_range(self.data.draw(len(z), self.generator)[0])


@pytest.mark.slow  # 26,000 stacks read twice: 156,000 digits through the classifier
def test_real_stacks_cover_all_1000_modes_and_a_constant_one(stacked):
    evaluation = StackedEvaluation(stacked, FEW, "cpu", 8)
    latent = Latent(4, "normal", torch.device("cpu"), seed=0)
    real = evaluation.metrics(_Real(stacked), latent, num_classes=0)
    assert real["eval/modes"] >= 995 and real["eval/modes_kl"] < 0.05
    assert real["eval/modes_kl_digits"] < 0.005  # the channels are drawn apart, each even
    assert real["eval/confidence"] > 0.9
    one = evaluation.metrics(_Real(stacked, constant=True), latent, num_classes=0)
    assert one["eval/modes"] == 1 and one["eval/modes_kl"] == pytest.approx(math.log(1000))


def test_padded_stacks_are_32x32_with_the_same_digits_in_the_middle(stacked):
    padded = load_stacked(size=32)
    assert padded.shape == (3, 32, 32) and stacked.shape == (3, 28, 28)
    plain = stacked.sampler(16, torch.device("cpu"), seed=5).next()
    batch = padded.sampler(16, torch.device("cpu"), seed=5).next()
    assert batch.x.shape == (16, 3, 32, 32) and torch.equal(batch.y, plain.y)  # the same draws
    assert torch.equal(batch.x[..., 2:30, 2:30], plain.x)  # the digits as they are
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (batch.x[..., border] == -1).all()  # MNIST's background, in [-1, 1]


def test_padded_real_stacks_read_as_the_unpadded_ones():
    """The evaluation crops the border off before the classifier: real padded
    stacks score exactly as the same stacks unpadded."""
    latent = Latent(4, "normal", torch.device("cpu"), seed=0)
    scores = []
    for size in (28, 32):
        data = load_stacked(eval_samples=2000, size=size)
        scores.append(StackedEvaluation(data, FEW, "cpu", 8).metrics(_Real(data), latent, num_classes=0))
    plain, padded = scores
    assert plain.keys() == padded.keys() >= {"eval/modes", "eval/fd", "eval/precision", "eval/recall"}
    assert padded == pytest.approx(plain)
    assert plain["eval/modes"] > 800 and plain["eval/precision"] > 0.9


def test_sizes_other_than_28_and_32_and_too_few_scored_stacks_are_one_line(make_cfg, tmp_path):
    root = f"dataset.root={tmp_path}"
    validate(make_cfg("dataset=stacked_mnist", "dataset.size=32", root, tiny=False))
    with pytest.raises(UserError, match="dataset.size must be one of 28, 32, got 30") as info:
        validate(make_cfg("dataset=stacked_mnist", "dataset.size=30", root, tiny=False))
    assert "\n" not in str(info.value)
    # Precision and recall read the first min(eval.num_samples, these) stacks.
    with pytest.raises(UserError, match="dataset.eval_samples must be a whole number >= 6, got 5"):
        validate(make_cfg("dataset=stacked_mnist", "dataset.eval_samples=5", root, tiny=False))


def test_a_checkpoint_from_before_size_resumes_as_size_28():
    """A stacked_mnist run saved before dataset.size existed drew 28x28
    stacks: loading its checkpoint fills size 28, so resuming it is no
    change, and resuming it at size 32 still is one."""
    dataset = OmegaConf.to_container(OmegaConf.load(CONF / "dataset" / "stacked_mnist.yaml"))
    dataset["root"] = "data"  # resolved, as a saved config holds it
    current = upgrade({"seed": 0, "dataset": dataset})
    saved = copy.deepcopy(current)
    del saved["dataset"]["size"]
    upgrade(saved)
    assert saved["dataset"]["size"] == 28 and changed_keys(saved, current, []) == []
    current["dataset"]["size"] = 32
    assert changed_keys(saved, current, []) == ["dataset.size"]
    other = {"dataset": {"_target_": "gan_cli.data.load_image_folder", "path": "x"}}
    assert "size" not in upgrade(other)["dataset"]  # only the loader's own `added` keys


def test_numbers_are_read_place_by_place():
    class Fixed:
        def score(self, images):
            # channel k of image i reads as digit (i + k) % 10, surely
            n = len(images) // 3
            digits = (torch.arange(n)[:, None] + torch.arange(3)[None]) % 10
            return None, torch.nn.functional.one_hot(digits.reshape(-1), 10).float()

    numbers, sure = read_numbers(Fixed(), torch.zeros(4, 3, 28, 28))
    assert numbers.tolist() == [12, 123, 234, 345] and sure.tolist() == [1.0] * 4
    values = mode_metrics(numbers, sure, 1000, wanted=torch.tensor([12, 123, 0, 345]))
    assert values["eval/modes"] == 4 and values["eval/class_accuracy"] == 0.75
    assert values["eval/modes_kl"] == pytest.approx(math.log(1000 / 4))
    # each place holds 4 of the 10 digits once each; the rest is their dependence
    assert values["eval/modes_kl_digits"] == pytest.approx(3 * math.log(10 / 4))
    assert values["eval/modes_kl_dependence"] == pytest.approx(math.log(1000 / 4) - 3 * math.log(10 / 4))


def test_a_short_stacked_run_logs_the_modes(make_cfg, tmp_path, capsys):
    cfg = make_cfg(
        "dataset=stacked_mnist",
        "model=dcgan",
        "model.g_channels=8",
        "model.d_channels=8",
        "objective=gan",
        "train.batch_size=16",
        "latent.dim=16",
        "train.steps=4",
        "train.log_every=2",
        "dataset.eval_samples=2000",
        f"dataset.root={tmp_path}",
        tiny=False,
    )
    final = run(cfg)
    assert 1 <= final["eval/modes"] <= 1000 and final["eval/modes_kl"] >= 0
    split = final["eval/modes_kl_digits"] + final["eval/modes_kl_dependence"]
    assert final["eval/modes_kl_digits"] > 0 and split == pytest.approx(final["eval/modes_kl"])
    # gan-classifier names the classifier the run's evaluation just used: its source's.
    from gan_cli.commands.classifier import main as classifier_main

    capsys.readouterr()
    classifier_main(["dataset=stacked_mnist", f"dataset.root={tmp_path}"])
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("stacked_mnist (each channel read by mnist_subset's digit classifier): cached")
    assert first.split("/")[-1].startswith("mnist_subset-")

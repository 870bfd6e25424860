"""Stacked MNIST: three real digits per image, the 1,000-mode count read
channel by channel, and a short real run."""

import math

import pytest
import torch

from gan_cli.data.sampler import to_unit_range
from gan_cli.data.stacked import load_stacked
from gan_cli.evaluation.stacked import StackedEvaluation, mode_metrics, read_numbers
from gan_cli.latent import Latent
from gan_cli.run.runner import run


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


def test_real_stacks_cover_all_1000_modes_and_a_constant_one(stacked):
    evaluation = StackedEvaluation(stacked, None, "cpu", 8)
    latent = Latent(4, "normal", torch.device("cpu"), seed=0)
    real = evaluation.metrics(_Real(stacked), latent, num_classes=0)
    assert real["eval/modes"] >= 995 and real["eval/modes_kl"] < 0.05
    assert real["eval/confidence"] > 0.9
    one = evaluation.metrics(_Real(stacked, constant=True), latent, num_classes=0)
    assert one["eval/modes"] == 1 and one["eval/modes_kl"] == pytest.approx(math.log(1000))


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


def test_a_short_stacked_run_logs_the_modes(make_cfg, tmp_path):
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

"""DiffAugment: each operation does what it says on fixed images, gradients
reach G through it, a seed fixes it, and train.augment runs."""

import pytest
import torch

from gan_cli.config.checks import validate
from gan_cli.errors import UserError
from gan_cli.latent import Latent
from gan_cli.models.augment import DiffAugment, color, cutout, translation
from gan_cli.run.runner import run


def _gen(seed=0):
    """Uniform noise as a run's Latent gives it."""
    return Latent(1, "normal", torch.device("cpu"), seed=seed)


def test_translation_moves_each_image_whole_and_pads_with_zeros():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8) + 1  # no zeros inside
    out = translation(x, _gen(3))
    for image, moved in zip(x[:, 0], out[:, 0], strict=True):
        # Some shift (dy, dx) in [-1, 1]^2 maps the image onto its translation.
        matches = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                padded = torch.nn.functional.pad(image, [1, 1, 1, 1])
                want = padded[1 + dy : 9 + dy, 1 + dx : 9 + dx]
                matches.append(torch.equal(moved, want))
        assert sum(matches) == 1


def test_cutout_zeroes_one_square_of_half_the_side():
    x = torch.ones(4, 3, 8, 8)
    out = cutout(x, _gen(1))
    for image in out:
        zero = (image == 0).all(0)  # same pixels in every channel
        rows, cols = zero.any(1).nonzero().view(-1), zero.any(0).nonzero().view(-1)
        # the square may be clipped at an edge: at most 4 x 4, a full rectangle
        assert 0 < len(rows) <= 4 and 0 < len(cols) <= 4
        assert zero.sum() == len(rows) * len(cols)
        assert (image[:, ~zero] == 1).all()


def test_color_shifts_brightness_and_keeps_a_flat_image_flat():
    x = torch.full((3, 1, 4, 4), 0.2)
    out = color(x, _gen(2))
    assert all(len(image.unique()) == 1 for image in out)  # flat stays flat
    assert (out.view(3, -1)[:, 0] - 0.2).abs().max() <= 0.5 + 1e-6
    assert not torch.allclose(out, x)


def test_augmentation_is_differentiable_and_fixed_by_its_seed():
    z = torch.randn(6, 3, 8, 8, requires_grad=True)
    augment = DiffAugment(["color", "translation", "cutout"], _gen(5))
    out = augment(torch.tanh(z))
    out.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # gradients reach G's output
    again = DiffAugment(["color", "translation", "cutout"], _gen(5))(torch.tanh(z.detach()))
    assert torch.equal(out.detach(), again)
    other = DiffAugment(["color", "translation", "cutout"], _gen(6))(torch.tanh(z.detach()))
    assert not torch.equal(out.detach(), other)


def test_train_augment_runs_changes_training_and_is_checked(make_cfg):
    plain = run(make_cfg("objective=gan", "train.steps=6", "eval.classifier=off"))
    augmented = run(
        make_cfg(
            "objective=gan",
            "train.steps=6",
            "eval.classifier=off",
            "train.augment=[translation,cutout,color]",
        )
    )
    assert augmented["loss/d"] != plain["loss/d"]
    with pytest.raises(
        UserError,
        match=r"train.augment must be a list from color, translation, "
        r"cutout, got \['flip'\]",
    ):
        validate(make_cfg("train.augment=[flip]"))
    with pytest.raises(UserError, match="train.augment transforms images; dataset ring8 gives points"):
        run(make_cfg("dataset=ring8", "train.augment=[color]", tiny=False))

"""eval.inception: torch-fidelity's FID, IS and KID from a local weights file, never a download.

The weights here are torch-fidelity's Inception-v3 with random values, made
locally; the net is run at 75x75 (its smallest input) instead of 299x299 to
keep the tests short: both ways of scoring below use the same net."""

from unittest import mock

import numpy as np
import pytest
import torch

from gan_cli.config.checks import check_inception_weights
from gan_cli.errors import UserError
from gan_cli.evaluation.inception import inception_metrics, real_sample, rgb_uint8

fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A file of torch-fidelity's Inception-v3 architecture, random weights
    scaled so features keep their spread through the layers."""
    torch.manual_seed(0)
    net_class = fidelity.FeatureExtractorInceptionV3
    with (
        mock.patch.object(fidelity, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(net_class, "load_state_dict", lambda self, state: None),
    ):
        net = net_class("inception-v3-compat", ["2048", "logits_unbiased"])
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.05)
    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def small_inputs(monkeypatch):
    monkeypatch.setattr(fidelity.FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)


def _write_pngs(images: torch.Tensor, folder):
    from PIL import Image

    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.movedim(0, -1).numpy()).save(folder / f"{i:03d}.png")


@pytest.mark.slow  # three square roots of 2,048 x 2,048 matrices: about a minute on 2 cores
def test_the_numbers_are_torch_fidelitys_on_the_exported_png_folders(weights, tmp_path):
    import torch_fidelity

    g = torch.Generator().manual_seed(1)
    generated = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1  # as G gives them: one channel, [-1, 1]
    data = (torch.rand(40, 1, 28, 28, generator=g) * 180).to(torch.uint8)  # a data set's uint8 images
    fake, real = rgb_uint8(generated), real_sample(data, len(generated))
    assert fake.shape == real.shape == (16, 3, 28, 28) and fake.dtype == real.dtype == torch.uint8
    ours = inception_metrics(fake, real, weights, torch.device("cpu"))
    _write_pngs(fake, tmp_path / "fake")
    _write_pngs(real, tmp_path / "real")
    theirs = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "fake"),
        input2=str(tmp_path / "real"),
        fid=True,
        isc=True,
        kid=True,
        feature_extractor_weights_path=str(weights),
        kid_subset_size=16,
        cuda=False,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )
    assert ours["eval/fid_inception"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours["eval/is"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours["eval/kid_inception"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    assert ours["eval/fid_inception"] > 1  # two different sets: the random net still tells them apart
    same = inception_metrics(real, real, weights, torch.device("cpu"))
    assert abs(same["eval/fid_inception"]) < 1e-3


def test_the_real_sample_is_seeded_and_rgb():
    data = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 1, 4, 4).contiguous()
    a, b = real_sample(data, 10), real_sample(data, 10)
    assert torch.equal(a, b) and a.shape == (10, 3, 4, 4)
    assert len(np.unique(a[:, 0, 0, 0].numpy())) == 10
    assert real_sample(data, 100).shape == (50, 3, 4, 4)


def test_a_missing_or_wrong_weights_file_is_one_line(tmp_path, weights):
    images = torch.zeros(12, 3, 8, 8, dtype=torch.uint8)
    cpu = torch.device("cpu")
    with pytest.raises(UserError, match="eval.inception=.*nothing.pth: no such file"):
        inception_metrics(images, images, tmp_path / "nothing.pth", cpu)
    with pytest.raises(
        UserError, match=f"^--inception {tmp_path}: a folder \\(give the Inception weights file"
    ):
        check_inception_weights(tmp_path, f"--inception {tmp_path}")  # as gan-eval names it
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(UserError, match="not a readable weights file"):
        inception_metrics(images, images, tmp_path / "text.pth", cpu)
    torch.save({"net.0.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="not torch-fidelity's Inception-v3 weights"):
        inception_metrics(images, images, tmp_path / "other.pth", cpu)
    wrong = torch.load(weights, weights_only=True)
    wrong["fc.weight"] = wrong["fc.weight"][:10]
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="torch-fidelity cannot use these weights"):
        inception_metrics(images, images, tmp_path / "wrong.pth", cpu)


@pytest.mark.slow  # two runs of torch-fidelity (a 2,048 x 2,048 square root each)
def test_a_run_logs_them_and_gan_eval_gives_the_same_numbers(make_cfg, weights, tmp_path, capsys):
    import json

    from gan_cli.commands.evaluate import main as eval_main
    from gan_cli.run.runner import run

    cfg = make_cfg(
        f"eval.inception={weights}", "eval.num_samples=24", "eval.classifier=off", "train.steps=10"
    )
    metrics = run(cfg)
    assert {"eval/fid_inception", "eval/is", "eval/kid_inception"} <= set(metrics)
    assert metrics["eval/fid_inception"] > 0 and metrics["eval/is"] >= 1
    out = tmp_path / "eval.json"
    eval_main([cfg.run_dir, "--json", str(out)])
    again = json.loads(out.read_text())
    for key in ("eval/fid_inception", "eval/is", "eval/kid_inception"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-5), key


def test_a_missing_weights_file_is_refused_before_the_run(make_cfg, tmp_path):
    from gan_cli.config.checks import validate

    with pytest.raises(UserError, match="eval.inception=.*nothing.pth: no such file"):
        validate(make_cfg(f"eval.inception={tmp_path / 'nothing.pth'}"))

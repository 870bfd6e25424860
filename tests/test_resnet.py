"""model=resnet: SNGAN's ResNet G and D at 32x32 and 64x64, projection D when conditional."""

import pytest
import torch
from torch import nn

from gan_cli.errors import UserError
from gan_cli.models import build_resnet
from gan_cli.run.runner import run


@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("classes", [0, 10])
def test_shapes_and_gradients_reach_every_block(side, classes):
    torch.manual_seed(0)
    G, D = build_resnet([3, side, side], classes, latent_dim=16, g_channels=32, d_channels=32)
    z = torch.randn(4, 16)
    y = torch.tensor([0, 3, 3, 9]) if classes else None
    fake = G(z, y)
    assert fake.shape == (4, 3, side, side) and fake.abs().max() <= 1  # tanh
    score = D(fake, y)
    assert score.shape == (4,)
    (score.sum() + fake.square().mean()).backward()
    for net in (G, D):
        for name, param in net.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_the_papers_widths_and_sides():
    G, D = build_resnet([3, 32, 32], 0, latent_dim=128, g_channels=256, d_channels=128)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert {c.out_channels for c in convs} == {128} and len(convs) == 8  # four blocks of two
    assert sum(p.numel() for p in G.parameters()) == pytest.approx(4.28e6, rel=0.01)  # SNGAN's 4.3M
    assert sum(p.numel() for p in D.parameters()) == pytest.approx(1.05e6, rel=0.01)  # and 1.0M
    _, D64 = build_resnet([3, 64, 64], 0, latent_dim=128, g_channels=64, d_channels=64)
    widths = [m.out_channels for m in D64.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert widths == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64]  # d/16 ... d, doubling block by block


def test_a_conditional_d_projects_the_class_onto_its_features():
    torch.manual_seed(0)
    _, D = build_resnet([1, 32, 32], 10, latent_dim=8, g_channels=16, d_channels=16)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        D.embed.weight[3].zero_()  # class 3 adds nothing: the unconditional score
        phi = D.net(x)
        plain = D.head(phi).view(-1)
        assert torch.allclose(D(x, torch.tensor([3, 3])), plain)
        assert torch.allclose(D(x, torch.tensor([5, 5])), plain + phi @ D.embed.weight[5])


def test_spectral_norm_and_packing():
    _, D = build_resnet([3, 32, 32], 0, 8, g_channels=16, d_channels=16, pack=2, spectral_norm=True)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    assert D(torch.randn(6, 3, 32, 32)).shape == (3,)  # three packs of two
    _, Dc = build_resnet([3, 32, 32], 10, latent_dim=8, g_channels=16, d_channels=16, spectral_norm=True)
    assert hasattr(Dc.embed, "parametrizations")


@pytest.mark.parametrize(
    "shape,classes,pack,message",
    [
        ([3, 28, 28], 0, 1, "model=resnet needs square 32x32 or 64x64 images"),
        ([2], 0, 1, "model=resnet needs square 32x32 or 64x64 images"),
        ([3, 32, 32], 10, 2, "a pack of several examples has no one class"),
    ],
)
def test_shapes_and_options_it_cannot_serve_are_one_line(shape, classes, pack, message):
    with pytest.raises(UserError, match=message):
        build_resnet(shape, classes, latent_dim=8, pack=pack)


def test_a_short_hinge_run_with_spectral_norm_trains_and_resumes(make_cfg, tmp_path):
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(40):
        Image.new("RGB", (32, 32), color=(6 * i, 255 - 6 * i, 100)).save(folder / f"{i}.png")
    settings = [
        "model=resnet",
        "objective=hinge",
        "model.spectral_norm=true",
        "model.g_channels=16",
        "model.d_channels=16",
        "dataset=image_folder",
        f"dataset.path={folder}",
        "train.batch_size=8",
        "eval.classifier=off",
        "train.steps=6",
        "train.checkpoint_every=3",
        "train.sample_every=3",
        "train.log_every=3",
        "latent.dim=16",
        f"run_dir={tmp_path / 'run'}",
    ]
    final = run(make_cfg(*settings, tiny=False))
    assert (tmp_path / "run" / "samples" / "step_6.png").is_file()
    assert final and all(torch.isfinite(torch.tensor(v)) for v in final.values())
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 6
    assert any("parametrizations" in key for key in state["discriminator"])
    run(make_cfg(*settings, "train.steps=8", "resume=true", tiny=False))
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert resumed["step"] == 8
    assert not torch.equal(resumed["generator"]["net.0.weight"], state["generator"]["net.0.weight"])


def test_the_sngan_preset_is_the_papers_setting(make_cfg):
    cfg = make_cfg("experiment=sngan_cifar10", tiny=False)
    assert (cfg.model.name, cfg.objective.name, cfg.dataset.name) == ("resnet", "hinge", "cifar10")
    assert cfg.model.spectral_norm and cfg.objective.critic_steps == 5
    assert (cfg.optimizer.g.lr, list(cfg.optimizer.g.betas)) == (2.0e-4, [0.0, 0.9])
    assert (cfg.train.batch_size, cfg.train.lr_decay, cfg.latent.dim) == (64, 1.0, 128)
    G, D = build_resnet([3, 32, 32], 0, cfg.latent.dim, cfg.model.g_channels, cfg.model.d_channels)
    assert G(torch.randn(2, 128)).shape == (2, 3, 32, 32)


def test_a_tiny_resnet_trains_on_stacked_mnist_padded_to_32(make_cfg, tmp_path):
    cfg = make_cfg(
        "experiment=stacked_resnet",
        "model.g_channels=8",
        "model.d_channels=8",
        "objective.critic_steps=2",
        "train.batch_size=8",
        "latent.dim=8",
        "train.steps=2",
        "train.log_every=1",
        "train.checkpoint_every=2",
        "dataset.eval_samples=600",
        "eval.num_samples=300",
        f"dataset.root={tmp_path}",
        tiny=False,
    )
    assert cfg.dataset.size == 32 and cfg.model.spectral_norm and cfg.objective.name == "hinge"
    final = run(cfg)
    assert 1 <= final["eval/modes"] <= 1000 and final["eval/fd"] > final["eval/fd_floor"]
    assert 0 <= final["eval/precision"] <= 1 and 0 <= final["eval/recall"] <= 1

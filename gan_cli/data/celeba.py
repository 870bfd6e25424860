"""CelebA's aligned faces (img_align_celeba, 178x218 JPEGs) as the GAN
papers train on them: centre-cropped to 178x178, resized to 64x64, RGB, no
labels (the 40 attributes are ignored). Decoded once into the image cache
(data/cache.py): reading 200,000 JPEGs every run is what it saves.

The files are torchvision's (torchvision.datasets.CelebA, root/celeba/):
the images folder img_align_celeba/ (or the archive img_align_celeba.zip,
read in place) and list_eval_partition.txt, whose lines `NAME PARTITION`
(0 train, 1 valid, 2 test) pick a split's files in the order torchvision
lists them. torchvision itself is used only to download: its loader also
insists on the four other annotation files and on their checksums, which
none of this needs, so the two files are read here exactly as it reads them."""

import contextlib
import importlib.util
import io
import threading
import zipfile
from pathlib import Path

import numpy as np

from gan_cli.data.cache import BAD_FILE_POLICIES, Source, check_settings, file_stamp, load_images
from gan_cli.data.images import ImageSet
from gan_cli.errors import UserError

FOLDER = "celeba"  # torchvision's CelebA.base_folder, under root
IMAGES = "img_align_celeba"
PARTITIONS = "list_eval_partition.txt"
SPLITS = {"train": 0, "valid": 1, "test": 2, "all": None}


def load_celeba(
    root: str = "data",
    download: bool = True,
    split: str = "train",
    size: int = 64,
    crop: int = 178,
    name: str = "celeba",
    cache_dir: str | None = "auto",
    memory_budget_gb: float = 4.0,
    on_bad_file: str = "skip",
) -> ImageSet:
    """The `split` images of CelebA under root/celeba, each centre-cropped
    to crop x crop (as torchvision's CenterCrop places it) and resized to
    size x size (bilinear, as torchvision's Resize on a PIL image), RGB,
    unlabelled; downloaded by torchvision first when missing and `download`.
    Cached and read as dataset=image_folder is (`cache_dir`,
    `memory_budget_gb`, `on_bad_file`)."""
    check_settings(memory_budget_gb, on_bad_file)
    if split not in SPLITS:
        raise UserError(f"dataset.split must be one of {', '.join(SPLITS)}, got {split!r}")
    base = _files(root, download)
    names = _partition(base / PARTITIONS, split)
    if not names:
        raise UserError(f"{base / PARTITIONS} lists no images of split {split}")

    def prepare(image) -> np.ndarray:
        image = center_crop(image.convert("RGB"), crop).resize((size, size), _bilinear())
        return np.asarray(image, dtype=np.uint8).reshape(size, size, 3).transpose(2, 0, 1)

    folder, archive = base / IMAGES, base / f"{IMAGES}.zip"
    common = {
        "name": name,
        "stem": f"{name}-{split}",
        "items": names,
        "shape": (3, size, size),
        "recipe": {"loader": "celeba", "split": split, "crop": crop, "resize": "bilinear"},
    }
    if folder.is_dir():
        from PIL import Image  # late: only image data sets need PIL

        def decode(file_name: str) -> np.ndarray:
            with Image.open(folder / file_name) as image:
                return prepare(image)

        source = Source(
            origin=str(folder),
            stamps=[_stamp(folder / n, folder) for n in names],
            decode=decode,
            shown=lambda n: str(folder / n),
            **common,
        )
        images, mapped = load_images(source, cache_dir, memory_budget_gb, on_bad_file)
    else:
        with zipfile.ZipFile(archive) as zipped:
            source = _zipped_source(zipped, archive, prepare, common)
            images, mapped = load_images(source, cache_dir, memory_budget_gb, on_bad_file)
    return ImageSet(name, images, None, 0, mapped)


load_celeba.choices = {"split": tuple(SPLITS), "on_bad_file": BAD_FILE_POLICIES}  # read by checks.validate


def celeba_ready(
    root: str = "data",
    download: bool = True,
    memory_budget_gb: float = 4.0,
    on_bad_file: str = "skip",
    **_,
) -> None:
    """Before a run starts: CelebA's files are in root/celeba, or are
    downloaded now, else one line saying which files to put there."""
    check_settings(memory_budget_gb, on_bad_file)
    _files(root, download)


load_celeba.ready = celeba_ready  # read by gan_cli.config.checks.check_data


def center_crop(image, crop: int):
    """The middle crop x crop of a PIL image, placed as torchvision's
    CenterCrop places it (offsets rounded); a side shorter than `crop` is
    kept whole."""
    width, height = image.size
    w, h = min(crop, width), min(crop, height)
    left, top = int(round((width - w) / 2.0)), int(round((height - h) / 2.0))
    return image.crop((left, top, left + w, top + h))


def _bilinear():
    from PIL import Image  # late: only image data sets need PIL

    return Image.Resampling.BILINEAR


def _files(root: str, download: bool) -> Path:
    """root/celeba holding the partition list and the images (folder or
    archive): downloaded by torchvision first if allowed, else one line."""
    base = Path(root).expanduser().absolute() / FOLDER
    if _present(base):
        return base
    gdown = importlib.util.find_spec("gdown") is not None  # torchvision's way to Google Drive
    if not download:
        how = "dataset.download=false"
    elif not gdown:
        how = "torchvision downloads it only with the gdown package (pip install gdown)"
    else:
        how = "it could not be downloaded from Google Drive (no network, or its daily quota?)"
    missing = (
        f"celeba: no data in {base} and {how}; put {IMAGES}/ (the aligned JPEGs, or {IMAGES}.zip) and "
        f"{PARTITIONS} there (CelebA's own file names, as torchvision keeps them), or train on a "
        f"folder of images with dataset=image_folder"
    )
    if download and gdown:
        import torchvision.datasets  # late: only a download needs torchvision

        quiet = io.StringIO()  # torchvision and gdown print their progress
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                torchvision.datasets.CelebA(str(base.parent), split="train", target_type=[], download=True)
        except Exception as exc:  # no network, no gdown, Google Drive's quota, a bad archive
            raise UserError(missing) from exc
    if not _present(base):
        raise UserError(missing)
    return base


def _present(base: Path) -> bool:
    images = (base / IMAGES).is_dir() or (base / f"{IMAGES}.zip").is_file()
    return images and (base / PARTITIONS).is_file()


def _partition(path: Path, split: str) -> list[str]:
    """The file names of `split` in list_eval_partition.txt's order, read
    as torchvision reads it (space-separated, blank runs allowed)."""
    wanted = SPLITS[split]
    names = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise UserError(f"{path}, line {number}: expected 'NAME PARTITION', got {line.strip()!r}")
        if wanted is None or int(fields[1]) == wanted:
            names.append(fields[0])
    return names


def _stamp(path: Path, folder: Path) -> str:
    try:
        return file_stamp(path, folder)
    except OSError:  # listed but absent: decoding it will say so (skipped or refused)
        return f"{path.relative_to(folder).as_posix()}\tmissing"


def _zipped_source(zipped: zipfile.ZipFile, archive: Path, prepare, common: dict) -> Source:
    """The images read from img_align_celeba.zip in place (members
    img_align_celeba/NAME), keyed by each member's size and CRC."""
    from PIL import Image  # late: only image data sets need PIL

    members = {info.filename: info for info in zipped.infolist()}
    lock = threading.Lock()  # one reader of the archive at a time; decoding runs in parallel

    def member(name: str) -> zipfile.ZipInfo:
        info = members.get(f"{IMAGES}/{name}")
        if info is None:
            raise FileNotFoundError(f"no {IMAGES}/{name} in the archive")
        return info

    def decode(name: str) -> np.ndarray:
        with lock:
            data = zipped.read(member(name))
        with Image.open(io.BytesIO(data)) as image:
            return prepare(image)

    def stamp(name: str) -> str:
        info = members.get(f"{IMAGES}/{name}")
        return f"{name}\tmissing" if info is None else f"{name}\t{info.file_size}\t{info.CRC}"

    return Source(
        origin=str(archive),
        stamps=[stamp(n) for n in common["items"]],
        decode=decode,
        shown=lambda n: f"{archive}:{IMAGES}/{n}",
        **common,
    )

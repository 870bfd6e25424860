"""Decoded images kept on disk: the first run decodes every file once into a
single .npy (uint8 [N, C, H, W]) with a small JSON beside it; later runs read
that file, whole into memory when it fits the memory budget, else
memory-mapped so that batches are gathered from disk and nothing copies the
whole set into RAM.

A cache file is named by a hash of what decides its pixels: every input's
name, size and modification time (or an archive member's size and CRC), the
decoded shape and how the images are prepared (size, channels, crop). Adding,
removing or changing a file, or changing dataset.size or dataset.channels,
names another file, which is then built; the stale one of the same source is
removed. Files are written to a temporary name and renamed, so a reader finds
a whole cache file or none.

Unreadable inputs are named in one line each and skipped (on_bad_file=skip),
with a count at the end, or refused in one line (on_bad_file=fail). This
module reports through the `logging` module (the gan_cli logger's handlers:
stderr and train.log in a run) and draws its progress line on stderr."""

import contextlib
import hashlib
import json
import logging
import math
import os
import struct
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gan_cli.errors import UserError, os_reason
from gan_cli.tempfiles import temp_beside

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the file layout or the decoding changes
BAD_FILE_POLICIES = ("skip", "fail")
OFF = (None, False, "off", "none", "null", "")
CHUNK = 256  # files decoded at a time: bounded memory, ordered results
SAY_FROM = 256  # decoding fewer files is quick: no start line, no progress


@dataclass
class Source:
    """What a cache holds: `decode(item)` (uint8 [C, H, W] of `shape`) of
    every item in turn. `stamps[i]` identifies item i's input as it is now
    (name, size, mtime); `recipe` what else decides the pixels."""

    name: str  # the data set, in messages
    origin: str  # the folder or archive read, in messages and the JSON
    stem: str  # the cache file's name before its hash
    items: Sequence
    stamps: Sequence[str]
    decode: Callable[[object], np.ndarray]
    shown: Callable[[object], str]  # an item as messages name it (its path)
    shape: tuple[int, int, int]
    recipe: dict = field(default_factory=dict)

    def key(self) -> str:
        digest = hashlib.sha256()
        head = {"format": FORMAT, "shape": list(self.shape), "recipe": self.recipe}
        digest.update(json.dumps(head, sort_keys=True).encode())
        for stamp in self.stamps:
            digest.update(stamp.encode("utf-8", "surrogateescape") + b"\n")
        return digest.hexdigest()[:16]


def file_stamp(path: Path, root: Path) -> str:
    """A file's name under `root`, size and modification time: what changes
    when the file is added, removed, replaced or written again."""
    st = path.stat()
    return f"{path.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}"


def cache_root(configured) -> Path | None:
    """dataset.cache_dir: None for off; `auto` is where gan-cli keeps its
    other caches ($GAN_CLI_CACHE, else $XDG_CACHE_HOME/gan-cli, else
    ~/.cache/gan-cli, as eval.cache_dir's classifiers), under images/."""
    if configured in OFF or (isinstance(configured, str) and configured.strip().lower() in OFF):
        return None
    if str(configured) != "auto":
        return Path(os.path.expanduser(str(configured)))
    if os.environ.get("GAN_CLI_CACHE"):
        base = Path(os.path.expanduser(os.environ["GAN_CLI_CACHE"]))
    else:
        home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(home) / "gan-cli"
    return base / "images"


def load_images(
    source: Source, cache_dir, memory_budget_gb: float, on_bad_file: str
) -> tuple[torch.Tensor, bool]:
    """(uint8 images [N, C, H, W], whether they are memory-mapped) of
    `source`: from its cache file, built now if missing; decoded into memory
    as ever when cache_dir is off."""
    check_settings(memory_budget_gb, on_bad_file)
    budget = float(memory_budget_gb) * 2**30
    root = cache_root(cache_dir)
    if root is None:
        need = len(source.items) * math.prod(source.shape)
        if need > budget:
            log.warning(
                f"{source.name}: {len(source.items):,} images, {_amount(need)} decoded, held in "
                f"memory (more than dataset.memory_budget_gb={memory_budget_gb}): dataset.cache_dir "
                f"is off, so nothing can be read from disk instead"
            )
        return torch.from_numpy(_decode_into_memory(source, on_bad_file)), False
    path = root / f"{source.stem}-{'x'.join(map(str, source.shape))}-{source.key()}.npy"
    opened = _open(path, source, budget, on_bad_file)
    if opened is None:
        _build(path, source, on_bad_file)
        _remove_stale(path, source)
        opened = _open(path, source, budget, on_bad_file, fresh=True)
    return opened


def cached_table(stem: str, inputs: Sequence[Path], build: Callable[[], np.ndarray]) -> np.ndarray:
    """`build()`, an array parsed from the files `inputs` (a bundled data
    set's text), kept as a .npy in the cache folder (cache_root("auto")) and
    read from there while the inputs' sizes and modification times are
    unchanged: parsing mnist_subset's 9 MB of CSV took longer than the rest
    of a run's own start-up. A cache file that cannot be read is built again;
    one that cannot be written is skipped (the array is still returned)."""
    root = cache_root("auto")
    if root is None:
        return build()
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    for path in inputs:
        st = Path(path).stat()
        digest.update(f"{Path(path).resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    path = root / f"{stem}-{digest.hexdigest()[:16]}.npy"
    with contextlib.suppress(OSError, ValueError, EOFError):
        return np.load(path, allow_pickle=False)
    table = build()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_beside(path)
        try:
            with os.fdopen(fd, "wb") as file:
                np.save(file, table, allow_pickle=False)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        for stale in root.glob(f"{stem}-*.npy"):  # the inputs changed: never read again
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as error:
        log.debug(f"{stem}: not cached in {root}: {os_reason(error)}")
    return table


def check_settings(memory_budget_gb, on_bad_file) -> None:
    """dataset.memory_budget_gb and dataset.on_bad_file of a cached loader
    (its `ready` checks them before a run starts, its load again)."""
    ok = not isinstance(memory_budget_gb, bool) and isinstance(memory_budget_gb, int | float)
    if not ok or memory_budget_gb < 0:
        raise UserError(f"dataset.memory_budget_gb must be a number >= 0, got {memory_budget_gb!r}")
    if on_bad_file not in BAD_FILE_POLICIES:
        allowed = ", ".join(BAD_FILE_POLICIES)
        raise UserError(f"dataset.on_bad_file must be one of {allowed}, got {on_bad_file!r}")


# --- reading a cache file --------------------------------------------------------------
def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _open(path: Path, source: Source, budget: float, on_bad_file: str, fresh: bool = False):
    """The cache file's images and whether they are mapped, or None when
    there is no usable cache file (built then)."""
    if not path.is_file():
        return None
    try:
        meta = json.loads(_meta_path(path).read_text())
        mapped = np.load(path, mmap_mode="r")  # reads the header only
        if list(mapped.shape) != meta["shape"] or mapped.dtype != np.uint8:
            found = f"{mapped.dtype} {list(mapped.shape)}"
            raise ValueError(f"holds {found}, its JSON says uint8 {meta['shape']}")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # half gone, truncated, edited
        if fresh:
            raise UserError(f"{source.name}: cannot read the cache {path} just written: {exc}") from None
        log.warning(f"{source.name}: cannot read the image cache {path} ({exc}); decoding the images again")
        return None
    skipped = meta.get("skipped", [])
    if skipped and not fresh:
        shown, reason = skipped[0]
        if on_bad_file == "fail":
            raise UserError(_refusal(source, shown, reason))
        log.warning(
            f"{source.name}: {len(skipped)} unreadable file(s) skipped when the cache was built "
            f"(listed in {_meta_path(path)})"
        )
    if mapped.nbytes <= budget:
        return torch.from_numpy(np.load(path)), False
    log.info(
        f"{source.name}: {len(mapped):,} images ({_amount(mapped.nbytes)}) read memory-mapped from "
        f"{path}: more than dataset.memory_budget_gb, so batches are gathered from disk"
    )
    with warnings.catch_warnings():  # read-only memory: torch warns that writes would fail
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(mapped), True


# --- decoding --------------------------------------------------------------------------
def _refusal(source: Source, shown: str, reason: str) -> str:
    return (
        f"{source.name}: cannot read {shown}: {reason} (dataset.on_bad_file=fail; remove the file, "
        f"or set dataset.on_bad_file=skip to train without it)"
    )


def _reason(exc: Exception) -> str:
    from PIL import UnidentifiedImageError  # late: PIL loads only where images are decoded

    if isinstance(exc, UnidentifiedImageError):
        return "not an image PIL can read"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _decoded(source: Source, on_bad_file: str, say: bool):
    """(item, uint8 [C, H, W]) of every readable item in order, decoded on
    a few threads (PIL releases the GIL while it decodes and resizes); an
    unreadable one gets its line (skip) or stops everything (fail)."""

    def attempt(item):
        try:
            return source.decode(item), None
        except Exception as exc:  # any way a file can fail to decode: truncated, not an image, no permission
            return None, _reason(exc)

    total, bad, first = len(source.items), 0, None
    progress = _Progress(source.name, total) if say else None
    workers = max(1, min(8, os.cpu_count() or 1))
    try:
        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, total, CHUNK):
                chunk = source.items[start : start + CHUNK]
                for item, (array, reason) in zip(chunk, pool.map(attempt, chunk), strict=True):
                    if array is None:
                        shown = source.shown(item)
                        if on_bad_file == "fail":
                            raise UserError(_refusal(source, shown, reason))
                        if progress is not None:
                            progress.clear()
                        log.warning(f"{source.name}: skipping {shown}: {reason}")
                        bad += 1
                        first = first or (shown, reason)
                        yield item, None, reason
                        continue
                    yield item, array, None
                if progress is not None:
                    progress.show(min(start + CHUNK, total))
    finally:
        if progress is not None:
            progress.clear()
    if bad == total:
        raise UserError(
            f"{source.name}: none of the {total:,} image files in {source.origin} can be read "
            f"(the first: {first[0]}: {first[1]})"
        )
    if bad:
        log.warning(
            f"{source.name}: skipped {bad} unreadable file(s) of {total:,} "
            f"(dataset.on_bad_file=fail refuses them instead)"
        )


def _decode_into_memory(source: Source, on_bad_file: str) -> np.ndarray:
    images = np.empty((len(source.items), *source.shape), np.uint8)
    count = 0
    for _, array, _ in _decoded(source, on_bad_file, say=len(source.items) >= SAY_FROM):
        if array is not None:
            images[count] = array
            count += 1
    return images[:count] if count < len(images) else images


def npy_header(shape, length: int | None = None) -> bytes:
    """The .npy (format 1.0) header of a C-ordered uint8 array of `shape`,
    padded with spaces to `length` bytes when given (a multiple of 64 by
    default): the header of N files is written first and the one of the
    images actually decoded over it, at the same length."""
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    if length is None:
        length = -(-(10 + len(text) + 1) // 64) * 64
    body = text.ljust(length - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


def _build(path: Path, source: Source, on_bad_file: str) -> None:
    """Decode every item into `path` (and its JSON), written under a
    temporary name and renamed: never half a cache file."""
    total = len(source.items)
    say = total >= SAY_FROM
    if say:
        log.info(f"{source.name}: decoding {total:,} images from {source.origin} once, into the cache {path}")
    started = time.perf_counter()
    tmp = None
    try:
        # Decoding failures are caught per file (_decoded): an OSError here is the cache's own file.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_beside(path)
        with os.fdopen(fd, "wb") as file:
            header = npy_header((total, *source.shape))
            file.write(header)
            count, skipped = 0, []
            for item, array, reason in _decoded(source, on_bad_file, say):
                if array is None:
                    skipped.append([source.shown(item), reason])
                    continue
                file.write(np.ascontiguousarray(array, np.uint8).tobytes())
                count += 1
            file.seek(0)
            file.write(npy_header((count, *source.shape), len(header)))
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        seconds = time.perf_counter() - started
        meta = {
            "format": FORMAT,
            "name": source.name,
            "origin": source.origin,
            "recipe": source.recipe,
            "shape": [count, *source.shape],
            "files": total,
            "skipped": skipped,
            "decode_seconds": round(seconds, 3),
        }
        _write_text(_meta_path(path), json.dumps(meta, indent=1) + "\n")
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise UserError(
            f"cannot write the image cache {path}: {os_reason(exc)}; set dataset.cache_dir "
            f"to a writable folder, or to off"
        ) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    if say:
        log.info(
            f"{source.name}: {count:,} images decoded in {seconds:.1f} s "
            f"({count / max(seconds, 1e-9):,.0f}/s); later runs read {path}"
        )


def _write_text(path: Path, text: str) -> None:
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale(path: Path, source: Source) -> None:
    """Earlier cache files of the same source and recipe (the folder has
    changed since): they would never be read again."""
    prefix = path.name.rsplit("-", 1)[0] + "-"
    for other in path.parent.glob(f"{prefix}*.json"):
        if other == _meta_path(path):
            continue
        try:
            meta = json.loads(other.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("origin") == source.origin and meta.get("recipe") == source.recipe:
            other.with_suffix(".npy").unlink(missing_ok=True)
            other.unlink(missing_ok=True)


def _amount(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GB" if nbytes >= 2**30 / 10 else f"{nbytes / 2**20:.1f} MB"


class _Progress:
    """`name: decoding i/N images` redrawn in place on a terminal's stderr;
    elsewhere (a log file, a pipe) a log line every 30 s."""

    EVERY = 30.0

    def __init__(self, name: str, total: int):
        self.name, self.total = name, total
        self.terminal = sys.stderr.isatty()
        self.started = self.last = time.perf_counter()
        self.drawn = False

    def show(self, done: int) -> None:
        now = time.perf_counter()
        rate = done / max(now - self.started, 1e-9)
        line = f"{self.name}: decoding {done:,}/{self.total:,} images ({rate:,.0f}/s)"
        if self.terminal:
            if now - self.last >= 0.2 or done == self.total:
                sys.stderr.write("\r" + line + "\x1b[K")
                sys.stderr.flush()
                self.last, self.drawn = now, True
        elif now - self.last >= self.EVERY:
            log.info(line)
            self.last = now

    def clear(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.drawn = False

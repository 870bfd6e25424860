"""IDX files (the MNIST family's raw format) read and written with numpy.

Reading them here means a run on MNIST or Fashion-MNIST imports no torchvision
(about a second of start-up) unless the files must be downloaded; writing them
is how gan-bench's reference loop and the loader's tests get MNIST files with
no network."""

import gzip
import struct
from pathlib import Path

import numpy as np

from gan_cli.errors import UserError

# The IDX type byte -> numpy dtype; multi-byte values are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (or its .gz, by name) as a numpy array of its own type and
    shape: magic (0, 0, type, ndim), ndim big-endian uint32 sizes, the values.
    A file that is not IDX, or is cut short, is one line naming it."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as error:  # unreadable, or a broken .gz
        raise UserError(f"cannot read {path}: {error}") from error
    if len(data) < 4 or data[0] or data[1] or data[2] not in IDX_DTYPES or not 1 <= data[3] <= 4:
        raise UserError(f"{path} is not an IDX file (its first four bytes are {data[:4].hex() or 'missing'})")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise UserError(f"{path} is cut short: its header ends after {len(data)} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    dtype = IDX_DTYPES[data[2]]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != expected:
        raise UserError(
            f"{path} holds {len(data) - offset} bytes of values, not the {expected} its header "
            f"announces for shape {tuple(shape)}"
        )
    # A writable copy in native byte order: torch.from_numpy needs both.
    return np.frombuffer(data, dtype, offset=offset).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """The IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian sizes, bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.asarray(array).astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def write_mnist_raw(
    root: Path,
    images: np.ndarray,
    labels: np.ndarray,
    test_from: int | None = None,
    compress: bool = False,
    folder: str = "MNIST",
) -> Path:
    """<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte from
    images [N, H, W] and labels [N]: the test split is images[test_from:]
    and the training split the rest, or both are everything (test_from=None).
    folder: torchvision's class name (MNIST, FashionMNIST)."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train = slice(0, test_from)
    test = slice(test_from, None) if test_from is not None else slice(None)
    for prefix, rows in (("train", train), ("t10k", test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[rows], compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[rows], compress)
    return raw

"""Writing torchvision's raw MNIST layout (IDX files) from digits in memory:
how gan-bench's reference loop and the loader's tests get MNIST files with no
network."""

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """The IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian sizes, bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.asarray(array).astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def write_mnist_raw(
    root: Path, images: np.ndarray, labels: np.ndarray, test_from: int | None = None, compress: bool = False
) -> Path:
    """<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte from
    images [N, 28, 28] and labels [N]: the test split is images[test_from:]
    and the training split the rest, or both are everything (test_from=None)."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train = slice(0, test_from)
    test = slice(test_from, None) if test_from is not None else slice(None)
    for prefix, rows in (("train", train), ("t10k", test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[rows], compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[rows], compress)
    return raw

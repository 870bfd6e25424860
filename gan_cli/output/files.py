"""Writing a run's files so that a failure (full disk, read-only file system)
leaves the previous file intact, no temporary file behind, and one line that
names the file and the reason."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from gan_cli.errors import writing
from gan_cli.tempfiles import temp_beside


class _RecordingWriter:
    """A file's write method that remembers the OSError it raised. torch.save
    into a buffered file can turn a failed write (ENOSPC) into a RuntimeError
    about zip positions; the recorded OSError says what really happened."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], durable: bool = True) -> None:
    """write(file) into a temporary file beside `path`, fsync, rename over
    `path`: readers see the old file or the new one, never half of one. On
    any failure the temporary file is removed and `path` left as it was; an
    OSError becomes UserError("cannot write PATH: reason"). durable=False
    skips the two fsyncs (the rename is still atomic for readers): for files
    that can be drawn again, such as sample pictures."""
    path = Path(path)
    tmp = None
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = temp_beside(path)
            with os.fdopen(fd, "wb") as file:
                sink = _RecordingWriter(file)
                try:
                    write(sink)
                except Exception:
                    if sink.error is not None:
                        raise sink.error from None
                    raise
                file.flush()
                if durable:
                    os.fsync(file.fileno())  # the bytes are on disk before the name points at them
            os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """A small text file (metrics.json, a report) written atomically."""
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; best effort (not every file system
    lets a folder be opened for it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save, atomically: a full or read-only disk ends in
    UserError("cannot write PATH: reason"), the file under `path` untouched
    and no temporary file left."""
    atomic_write(path, lambda file: torch.save(obj, file))

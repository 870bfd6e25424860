"""A new temporary file beside the file it will replace, for the writes that
rename a finished file over the old one (output/files.py, data/cache.py)."""

import os
import secrets
from pathlib import Path


def temp_beside(path: Path) -> tuple[int, str]:
    """(an open descriptor for writing, its name): a new file `.NAME.<random>.tmp`
    in `path`'s folder, with the permissions every new file gets there (0666
    less the umask, so 0644 under the usual 022). tempfile.mkstemp's are the
    owner's alone (0600), which a rename would carry over to metrics,
    checkpoints and pictures that a shared machine's other users, or a
    TensorBoard they run, then cannot read."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:  # another writer drew the same name: draw again
            continue

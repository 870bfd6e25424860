"""One writer per run folder.

`with RunLock(run_dir):` around everything a process writes there. A second
process that tries gets one line naming the holder (pid, host, since when);
a lock left behind by a process that died is taken over with a note.

The lock is fcntl.flock on a file in the folder, not a file created with
O_CREAT|O_EXCL. The kernel drops a flock when its holder dies, whatever kills
it (SIGKILL, out of memory, power loss on reboot), so "is the lock held?" is
answered by the kernel, not guessed from a pid: an O_EXCL file outlives its
creator, and telling a stale one from a live one needs the pid to be alive
on this host and not reused by another process (or hidden in another pid
namespace, as with containers sharing a volume); and two processes that both
judge it stale can both take it. The file's contents (pid, host, since) only
describe the holder for messages. flock is reliable on local disks; on NFS,
Linux maps it onto the server's byte-range locks.

Not the `filelock` package: its FileLock takes the same flock but records no
holder to name in a refusal or a takeover note (only its O_EXCL soft locks
record a pid), so that record would still be written here, on top of it.
"""

import datetime
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from gan_cli.errors import UserError, writing
from gan_cli.output.layout import LOCK

LOCK_NAME = LOCK


class RunLock:
    """Exclusive lock on a run folder for as long as the `with` block runs;
    released on exit, also on exceptions. Not re-entrant: a second RunLock
    on the same folder is refused, even in the same process."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        while self.fd is None:
            with writing(self.path):  # a read-only disk: one line naming the lock file
                self.run_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise UserError(refusal(self.run_dir, self.path, holder)) from None
            except BaseException:
                os.close(fd)
                raise
            if not _still_named(fd, self.path):
                # The holder released (and removed) the file between our open
                # and our lock: we locked a file nobody else will look at.
                os.close(fd)
                continue
            previous = _read(fd)
            if previous:
                print(takeover_note(self.path, previous), file=sys.stderr)
            _write(fd, holder_record())
            self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        # Remove the name while still holding the lock: a process that opens
        # the path from now on gets a new file; one that opened it before
        # sees, once it gets the lock, that the name has moved on, and retries.
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def holder_record() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def describe(holder: dict) -> str:
    """'pid 123 on host since 2030-01-01T12:00:00+00:00', or what is known of it."""
    parts = []
    if "pid" in holder:
        parts.append(f"pid {holder['pid']}")
    if "host" in holder:
        parts.append(f"on {holder['host']}")
    if "since" in holder:
        parts.append(f"since {holder['since']}")
    return " ".join(parts) or "another process"


def refusal(run_dir: Path, path: Path, holder: dict) -> str:
    return (
        f"{run_dir} is in use by {describe(holder)} (lock {path.name}): wait for it to "
        f"finish, or choose another hydra.run.dir"
    )


def takeover_note(path: Path, previous: dict) -> str:
    if previous.get("host") == socket.gethostname() and not pid_alive(previous.get("pid")):
        why = "which is no longer running"
    else:
        why = "which no longer holds it"
    return f"note: {path}: taking over the lock left by {describe(previous)}, {why}"


def pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _still_named(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def _read(fd: int) -> dict:
    """The holder recorded in the lock file; {} when empty or unreadable (a
    holder that has just created it and not yet written)."""
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _write(fd: int, holder: dict) -> None:
    """Record the holder. Best effort: the flock is the lock; on a full disk
    the record is missing and a refused process says "another process"."""
    data = (json.dumps(holder) + "\n").encode("utf-8")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass

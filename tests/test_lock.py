"""One writer per run folder: a second process is refused with the holder's
name; a lock whose holder died is taken over with a note."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from gan_cli.errors import UserError
from gan_cli.run.lock import LOCK_NAME, RunLock

HOLD = """
import sys
from gan_cli.run.lock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()          # hold the lock until the test says so
print("released", flush=True)
"""


def _holder(run_dir) -> subprocess.Popen:
    """Another process holding the run folder's lock (started, and locked, on return)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)],
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().strip() == "locked", process.communicate()
    return process


def test_a_second_process_is_refused_with_the_holder_named(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    try:
        with pytest.raises(UserError) as refused, RunLock(run_dir):
            pytest.fail("two processes hold one run folder")
        message = str(refused.value)
        assert "\n" not in message
        assert f"{run_dir} is in use by pid {holder.pid} on {socket.gethostname()} since " in message
        assert "hydra.run.dir" in message
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        out, err = holder.communicate(timeout=30)
    assert out.strip() == "released" and holder.returncode == 0, err
    assert not (run_dir / LOCK_NAME).exists()  # released and removed
    with RunLock(run_dir) as lock:  # free again, and no takeover note
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert capsys.readouterr().err == ""


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_note(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    holder.send_signal(signal.SIGKILL)  # no chance to release: the file stays
    holder.communicate(timeout=30)
    left = json.loads((run_dir / LOCK_NAME).read_text())
    assert left["pid"] == holder.pid
    with RunLock(run_dir) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err.strip()
    assert err.startswith("note: ") and "\n" not in err
    assert f"taking over the lock left by pid {holder.pid} on {socket.gethostname()}" in err
    assert "no longer running" in err


def test_a_stale_record_with_a_dead_pid_is_taken_over(tmp_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"pid": gone.pid, "host": socket.gethostname(), "since": "2030-01-01T00:00:00+00:00"}
    (run_dir / LOCK_NAME).write_text(json.dumps(record))
    with RunLock(run_dir):
        pass
    err = capsys.readouterr().err
    assert (
        f"taking over the lock left by pid {gone.pid} on {socket.gethostname()} since "
        f"2030-01-01T00:00:00+00:00, which is no longer running"
    ) in err


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), RunLock(tmp_path):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path), pytest.raises(UserError, match=f"in use by pid {os.getpid()}"):
        RunLock(tmp_path).acquire()  # not re-entrant, even in one process


def test_a_read_only_folder_gets_one_line(tmp_path, monkeypatch):
    import errno

    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(LOCK_NAME):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(UserError) as info:
        RunLock(tmp_path).acquire()
    assert str(info.value) == f"cannot write {tmp_path / LOCK_NAME}: Read-only file system"

"""Runs a user can trust: a full disk while checkpointing, and a resume whose
last.pt does not load."""

import errno
import os
import stat
from pathlib import Path

import pytest
import torch

from gan_cli.data.cache import cached_table
from gan_cli.errors import UserError, reported
from gan_cli.output.files import atomic_write, write_text_atomic
from gan_cli.run.checkpoint import Checkpointer, load_checkpoint, load_resumable, newest_readable
from gan_cli.run.runner import run

CHECKPOINTS = ["train.steps=20", "train.checkpoint_every=10"]


def _trained(make_cfg, *extra) -> Path:
    cfg = make_cfg("objective=gan", *CHECKPOINTS, *extra)
    run(cfg)
    return Path(cfg.run_dir)


def test_a_full_disk_while_checkpointing_keeps_the_last_good_one(make_cfg, full_disk):
    run_dir = _trained(make_cfg)
    folder = run_dir / "checkpoints"
    before = sorted(os.listdir(folder))
    state = load_checkpoint(folder / "last.pt")
    full_disk(".step_30.pt.")
    with pytest.raises(UserError) as info:
        Checkpointer(folder, keep=1).save({**state, "step": 30}, 30, keep_step_file=True)
    assert str(info.value) == (
        f"cannot write {folder / 'step_30.pt'}: No space left on device; "
        f"last.pt still holds the previous checkpoint"
    )
    assert sorted(os.listdir(folder)) == before  # no .tmp left, nothing pruned
    assert load_checkpoint(folder / "last.pt")["step"] == 20


def test_a_run_that_fills_the_disk_stops_with_one_line(make_cfg, full_disk, capsys):
    from gan_cli.commands.train import main

    cfg = make_cfg("objective=gan", *CHECKPOINTS)
    full_disk(".step_20.pt.")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(cfg)
    assert exit_info.value.code != 0
    folder = Path(cfg.run_dir) / "checkpoints"
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"gan-train: error: cannot write {folder / 'step_20.pt'}: No space left "
        f"on device; last.pt still holds the previous checkpoint"
    )
    assert all(line.startswith("step ") for line in err[:-1])  # progress lines, no traceback
    assert sorted(os.listdir(folder)) == ["last.pt", "step_10.pt"]
    assert load_checkpoint(folder / "last.pt")["step"] == 10


def test_a_read_only_folder_names_the_file(tmp_path, monkeypatch):
    import gan_cli.output.files

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(gan_cli.output.files, "temp_beside", read_only)
    with pytest.raises(UserError) as info:
        write_text_atomic(tmp_path / "metrics.json", "{}")
    assert str(info.value) == f"cannot write {tmp_path / 'metrics.json'}: Read-only file system"


def test_atomic_text_keeps_the_old_file_when_the_disk_is_full(tmp_path, full_disk):
    path = tmp_path / "metrics.json"
    write_text_atomic(path, '{"old": 1}\n')
    full_disk(".metrics.json.")
    with pytest.raises(UserError, match=r"cannot write .*metrics.json: No space left on device$"):
        write_text_atomic(path, "x" * 100_000)
    assert path.read_text() == '{"old": 1}\n' and os.listdir(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_permissions_the_umask_gives(tmp_path, monkeypatch, umask, mode):
    """A file renamed into place (metrics, checkpoints, pictures, the data
    caches) is readable by whoever the umask lets read a new file: not only
    its owner, as tempfile.mkstemp's temporary files are."""
    monkeypatch.setenv("GAN_CLI_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "table.csv"
    source.write_text("1,2\n")
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "metrics.json", "{}\n")
        atomic_write(tmp_path / "picture.png", lambda file: file.write(b"png"), durable=False)
        cached_table("table", [source], lambda: torch.arange(4).numpy())
    finally:
        os.umask(old)
    [cached] = (tmp_path / "cache" / "images").glob("table-*.npy")
    for path in (tmp_path / "metrics.json", tmp_path / "picture.png", cached):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_only_durable_writes_wait_for_the_disk(tmp_path, monkeypatch):
    """Checkpoints and metrics are fsynced (the file, then its folder);
    pictures (durable=False) are renamed into place without waiting."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_write(tmp_path / "kept.bin", lambda file: file.write(b"kept"))
    assert len(synced) == 2
    atomic_write(tmp_path / "picture.png", lambda file: file.write(b"png"), durable=False)
    assert len(synced) == 2
    assert (tmp_path / "picture.png").read_bytes() == b"png"
    assert (tmp_path / "kept.bin").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.bin", "picture.png"]  # no temporary file left


def test_writing_names_the_file_and_reported_keeps_it_to_one_line(tmp_path, capsys):
    from gan_cli.errors import writing

    target = tmp_path / "samples" / "step_10.png"
    with pytest.raises(SystemExit) as exit_info, reported("gan-x"), writing(target):
        raise OSError(errno.ENOSPC)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"gan-x: error: cannot write {target}: No space left on device\n"


def _truncate(path: Path, size: int = 5000) -> None:
    """Cut a file short in place (every hard link to it is cut too)."""
    os.truncate(path, size)


def test_an_unreadable_last_pt_names_the_newest_readable_step(make_cfg):
    run_dir = _trained(make_cfg, "train.keep_checkpoints=3")
    folder = run_dir / "checkpoints"
    last = folder / "last.pt"
    # last.pt is a second name of step_20.pt: cut short, both are unreadable.
    _truncate(last)
    assert newest_readable(folder) == folder / "step_10.pt"
    with pytest.raises(UserError) as info:
        load_resumable(last)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot resume: {last} is not a readable checkpoint")
    assert message.endswith(
        f"the newest readable checkpoint is step 10: continue with resume={(folder / 'step_10.pt').resolve()}"
    )
    # The resume= it names works.
    resumed = make_cfg("objective=gan", *CHECKPOINTS, f"resume={(folder / 'step_10.pt').resolve()}")
    run(resumed)
    assert load_checkpoint(last)["step"] == 20


def test_a_last_pt_replaced_by_a_broken_copy_names_step_20(make_cfg):
    folder = _trained(make_cfg) / "checkpoints"
    last = folder / "last.pt"
    data = last.read_bytes()
    last.unlink()  # a separate file now, not step_20's bytes
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        UserError,
        match=r"newest readable checkpoint is step 20: continue with "
        r"resume=.*step_20\.pt$",
    ):
        load_resumable(last)
    assert load_resumable(folder / "step_20.pt")["step"] == 20


def test_no_readable_checkpoint_at_all_says_so(make_cfg):
    folder = _trained(make_cfg) / "checkpoints"
    for path in folder.glob("step_*.pt"):
        _truncate(path, 100)
    assert newest_readable(folder) is None
    with pytest.raises(UserError, match=r"no readable step_<N>\.pt in .* either: start afresh"):
        load_resumable(folder.parent)  # a run dir means its last.pt


def test_newest_readable_orders_by_step_not_by_name(tmp_path):
    good = {"format": "gan-cli/1", "generator": {}, "step": 0, "config": {}, "model_args": {}}
    for step in (9, 10, 100):
        torch.save({**good, "step": step}, tmp_path / f"step_{step}.pt")
    assert newest_readable(tmp_path) == tmp_path / "step_100.pt"
    assert newest_readable(tmp_path, skip=tmp_path / "step_100.pt") == tmp_path / "step_10.pt"


def test_weights_that_do_not_fit_the_saved_config_are_one_line(make_cfg):
    """A checkpoint whose nets' weights are not those its config builds (one
    of another version's nets, or edited) is refused naming which net, by
    gan-sample, gan-eval and a resume alike: not load_state_dict's traceback."""
    from gan_cli.commands.evaluate import evaluate_checkpoint
    from gan_cli.run.checkpoint import generator_from_checkpoint

    folder = _trained(make_cfg) / "checkpoints"
    state = load_checkpoint(folder / "last.pt")
    first = next(iter(state["generator"]))
    state["generator"][first] = state["generator"][first][:1]  # one row of the first layer
    assert state["generator_ema"] is None  # TINY: train.ema=0, so G itself is the net shown
    with pytest.raises(UserError) as info:
        generator_from_checkpoint(state)
    message = str(info.value)
    assert message.startswith("G in this checkpoint does not fit the net its config builds")
    assert "size mismatch for " + first in message and "\n" not in message
    with pytest.raises(UserError, match="^G in this checkpoint does not fit"):
        evaluate_checkpoint(state, 100)
    torch.save(state, folder / "last.pt")
    with pytest.raises(UserError, match="^G in this checkpoint does not fit"):
        run(
            make_cfg(
                "objective=gan", "train.steps=30", "train.checkpoint_every=10", f"resume={folder / 'last.pt'}"
            )
        )

    state = load_checkpoint(folder / "step_10.pt")
    del state["discriminator"][next(iter(state["discriminator"]))]
    with pytest.raises(
        UserError, match=r'^D in this checkpoint does not fit .*Missing key\(s\) in state_dict: "'
    ):
        run(
            make_cfg(
                "objective=gan",
                "train.steps=30",
                "train.checkpoint_every=10",
                f"resume={_saved(state, folder)}",
            )
        )


def _saved(state: dict, folder: Path) -> Path:
    path = folder.parent / "edited.pt"
    torch.save(state, path)
    return path

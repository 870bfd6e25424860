"""The runner with the run lock, resumable loads and writers that name the
file: what gan-train itself does."""

import os
import signal
from pathlib import Path

import pytest
from conftest import TINY, run_cli, start_gan_train, wait_for

from gan_cli.errors import UserError
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.lock import LOCK_NAME
from gan_cli.run.runner import run


def test_a_live_run_refuses_a_second_writer_and_a_killed_one_is_taken_over(tmp_path, make_cfg, capsys):
    run_dir = tmp_path / "run"
    process = start_gan_train(
        tmp_path, "train.steps=100000", "train.checkpoint_every=5", f"hydra.run.dir={run_dir}"
    )
    try:
        wait_for(run_dir / "checkpoints" / "step_5.pt", process)
        with pytest.raises(UserError, match=f"{run_dir} is in use by pid {process.pid} on "):
            run(make_cfg("resume=true", f"run_dir={run_dir}"))
        last = run_dir / "checkpoints" / "last.pt"  # (step files are pruned as it runs)
        with pytest.raises(UserError, match=f"is in use by pid {process.pid}"):
            run(make_cfg(f"resume={last}"))  # resume=PATH locks that run's folder
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert (run_dir / LOCK_NAME).exists()
    stopped = load_checkpoint(run_dir)["step"]
    capsys.readouterr()
    run(
        make_cfg(
            "resume=true", f"run_dir={run_dir}", "train.checkpoint_every=5", f"train.steps={stopped + 2}"
        )
    )
    assert f"taking over the lock left by pid {process.pid}" in capsys.readouterr().err
    assert not (run_dir / LOCK_NAME).exists()
    assert load_checkpoint(run_dir)["step"] == stopped + 2


def test_resume_true_with_a_truncated_last_pt_names_the_step_file(make_cfg):
    first = make_cfg("objective=gan", "train.steps=20", "train.checkpoint_every=10")
    run(first)
    folder = Path(first.run_dir) / "checkpoints"
    os.truncate(folder / "last.pt", 5000)  # and step_20.pt, its second name
    with pytest.raises(UserError) as info:
        run(
            make_cfg(
                "objective=gan",
                "train.steps=20",
                "train.checkpoint_every=10",
                "resume=true",
                f"run_dir={first.run_dir}",
            )
        )
    assert str(info.value).endswith(f"continue with resume={(folder / 'step_10.pt').resolve()}")


@pytest.mark.parametrize("name_part", [".metrics.json.", ".step_10.png."])
def test_a_full_disk_for_other_files_is_one_line(make_cfg, full_disk, capsys, name_part):
    from gan_cli.commands.train import main

    cfg = make_cfg("objective=gan", "train.steps=10")
    full_disk(name_part)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(cfg)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    target = name_part.strip(".")
    assert last.startswith("gan-train: error: cannot write ") and last.endswith(
        f"{target}: No space left on device"
    )
    assert not [p for p in Path(cfg.run_dir).rglob("*.tmp")]


def test_gan_train_cli_refuses_a_folder_in_use(tmp_path):
    run_dir = tmp_path / "run"
    process = start_gan_train(
        tmp_path, "train.steps=100000", "train.checkpoint_every=5", f"hydra.run.dir={run_dir}"
    )
    try:
        wait_for(run_dir / "checkpoints" / "step_5.pt", process)
        done = run_cli("gan-train", *TINY, f"hydra.run.dir={run_dir}", "resume=true", cwd=tmp_path)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"gan-train: error: {run_dir} is in use by pid {process.pid}")
    )

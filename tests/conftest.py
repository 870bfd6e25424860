"""Shared helpers: configs composed the way gan-train composes them, shrunk so
a run takes seconds on two CPU cores."""

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_cli.config.compose import compose_config

# Small but real: scikit-learn's 8x8 digits and narrow nets, WGAN (Algorithm 1)
# unless a test names another objective, and G itself in pictures and metrics.
TINY = [
    "objective=wgan",
    "train.ema=0",
    "dataset=digits",
    "train.batch_size=32",
    "train.steps=20",
    "train.log_every=5",
    "train.sample_every=10",
    "train.checkpoint_every=10",
    "latent.dim=16",
    "model.g_hidden=[64,64]",
    "model.d_hidden=[64]",
    "eval.num_samples=500",
]


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The tests' tiny nets run faster on one thread than on two threads
    contending for two cores; subprocesses get OMP_NUM_THREADS=1 likewise."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def classifier_cache(tmp_path_factory):
    """One classifier cache for the whole session (in-process runs and the
    console scripts alike, through GAN_CLI_CACHE): the 8x8 digits classifier
    is trained once, by whichever test first needs it, never in ~/.cache."""
    # Under pytest-xdist each worker's base folder sits in one they share: the
    # cache goes there, so a classifier one worker trained is not trained again.
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "classifier-cache"
    folder.mkdir(exist_ok=True)
    before = os.environ.get("GAN_CLI_CACHE")
    os.environ["GAN_CLI_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("GAN_CLI_CACHE", None)
    else:
        os.environ["GAN_CLI_CACHE"] = before


@pytest.fixture(scope="session")
def digits_classifier(classifier_cache):
    """(digits ImageSet, its classifier), from the session's cache."""
    from gan_cli.classifier import obtain
    from gan_cli.data import load_sklearn_digits

    data = load_sklearn_digits()
    clf, _, _ = obtain(data.name, None, data.images, data.labels, data.num_classes)
    return data, clf


@pytest.fixture
def make_cfg(tmp_path):
    """make_cfg(*overrides) -> composed DictConfig writing into a fresh tmp run dir."""
    counter = iter(range(1000))

    def _make(*overrides, tiny=True):
        given = any(o.startswith("run_dir=") for o in overrides)
        run_dir = [] if given else [f"run_dir={tmp_path / f'run{next(counter)}'}"]
        return compose_config([*(TINY if tiny else []), *overrides, *run_dir])

    return _make


def gan_cli_command(name: str) -> list[str]:
    """The installed console script, next to this interpreter."""
    script = Path(sys.executable).with_name(name)
    found = str(script) if script.exists() else shutil.which(name)
    assert found, f"{name} is not installed; pip install -e ."
    return [found]


def run_cli(name: str, *args, cwd, timeout=300) -> subprocess.CompletedProcess:
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        gan_cli_command(name) + [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_gan_train(tmp_path, *overrides) -> subprocess.Popen:
    """gan-train on TINY plus `overrides`, running in the background."""
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        gan_cli_command("gan-train") + TINY + list(overrides),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until `path` exists; fails if the process ends first or time runs out."""
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def assert_one_line_errors(main, prog: str, cases, capsys) -> None:
    """Each (argv, message) of `cases` makes the console script's `main` exit
    with code 2 and one stderr line `<prog>: error: ...` holding `message`."""
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"{prog}: error:") and message in err and err.count("\n") == 1, err


def assert_same(a, b, where="checkpoint") -> None:
    """Every entry of two checkpoints equal: tensors exactly, the rest by value."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def tensorboard_events(run_dir):
    """Every scalar and image a run wrote to <run_dir>/tb."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def assert_pictures(run_dir, acc, tag: str, steps: list[int], size: tuple[int, int]) -> None:
    """The picture `tag` went to TensorBoard at exactly `steps`, and to
    samples/step_<N>.png, always width x height = `size`."""
    from PIL import Image

    images = acc.Images(tag)
    assert [e.step for e in images] == steps
    assert (images[-1].width, images[-1].height) == size
    for step in steps:
        with Image.open(Path(run_dir) / "samples" / f"step_{step}.png") as png:
            assert png.size == size


class _FillsUp:
    """A file on a disk that fills up after `room` bytes."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.file.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC)  # as the kernel's write(2) reports it: a number
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


@pytest.fixture(params=["python", "dev_full"])
def full_disk(request, monkeypatch):
    """full_disk(name_part): from now on, writing any temporary file whose
    name contains `name_part` fails with ENOSPC: after 64 bytes from
    Python's write ("python"), or from the kernel itself ("dev_full", the
    bytes going to /dev/full through a buffered file, as on a real disk)."""
    real_fdopen = os.fdopen

    def arm(name_part: str):
        def fdopen(fd, mode="r", *args, **kwargs):
            name = os.readlink(f"/proc/self/fd/{fd}")
            if name_part not in Path(name).name or "w" not in mode:
                return real_fdopen(fd, mode, *args, **kwargs)
            if request.param == "python":
                return _FillsUp(real_fdopen(fd, mode, *args, **kwargs), room=64)
            os.close(fd)
            return open("/dev/full", "wb")

        monkeypatch.setattr(os, "fdopen", fdopen)

    return arm

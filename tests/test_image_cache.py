"""The decoded image cache (data/cache.py) behind dataset=image_folder and
dataset=celeba: the same pixels as decoding, decoded once, rebuilt when the
folder changes, memory-mapped past the memory budget, unreadable files
skipped or refused in one line; CelebA from a tree in torchvision's layout."""

import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, run_cli
from PIL import Image

from gan_cli.data import load_celeba, load_image_folder
from gan_cli.data.cache import npy_header
from gan_cli.data.images import image_files
from gan_cli.errors import UserError
from gan_cli.run.runner import run
from gan_cli.training.cuda_graphs import capture_plan
from gan_cli.training.experiment import Experiment


def write_pictures(folder: Path, count: int, start: int = 0, side: int = 12) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        pixels = np.random.default_rng(i).integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")


@pytest.fixture
def decodes(monkeypatch):
    """How many times PIL opened a file since the fixture started."""
    opened = []
    original = Image.open

    def counting(*args, **kwargs):
        opened.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return opened


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


def test_a_cached_folder_loads_the_same_pixels_once_decoded(tmp_path, decodes):
    folder, cache = tmp_path / "pictures", tmp_path / "cache"
    write_pictures(folder / "a", 3)
    write_pictures(folder / "b", 3, start=3)  # searched recursively
    plain = load_image_folder(str(folder), size=8, channels=3, cache_dir="off")
    assert not cache.exists() and len(decodes) == 6
    first = load_image_folder(str(folder), size=8, channels=3, cache_dir=str(cache))
    assert len(decodes) == 12
    names = cache_files(cache)
    assert [Path(n).suffix for n in names] == [".json", ".npy"]
    on_disk = np.load(cache / names[1])
    assert on_disk.dtype == np.uint8 and on_disk.shape == (6, 3, 8, 8)
    second = load_image_folder(str(folder), size=8, channels=3, cache_dir=str(cache))
    assert len(decodes) == 12  # read from the cache: not one file decoded
    for data in (first, second):
        assert torch.equal(data.images, plain.images) and not data.mapped
    # size and channels name another cache file
    grey = load_image_folder(str(folder), size=8, channels=1, cache_dir=str(cache))
    assert grey.shape == (1, 8, 8) and len(cache_files(cache)) == 4


def test_the_listing_is_in_sorted_path_order(tmp_path):
    """The order images have always had (sorted(folder.rglob("*"))), which
    a resumed run's sampler positions refer to."""
    names = ["b.png", "a-b.png", "a/9.png", "a/10.png", "a/b/c.PNG", "a.b/x.jpg", "A/z.gif", ".hidden/y.png"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    expected = [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*")) if p.is_file()]
    assert [name for name, _ in image_files(tmp_path)] == [e for e in expected if e != "notes.txt"]


def test_the_cache_is_rebuilt_when_a_file_changes_is_added_or_removed(tmp_path, decodes):
    folder, cache = tmp_path / "pictures", tmp_path / "cache"
    write_pictures(folder, 4)

    def load():
        before = len(decodes)
        data = load_image_folder(str(folder), size=8, cache_dir=str(cache))
        assert torch.equal(data.images, load_image_folder(str(folder), size=8, cache_dir="off").images)
        assert len(cache_files(cache)) == 2  # the stale cache of this folder is gone
        return len(decodes) - before - len(data)  # decodes besides the uncached load

    assert load() == 4
    assert load() == 0
    # the same name, new pixels, a new modification time
    Image.new("RGB", (12, 15), (250, 10, 10)).save(folder / "001.png")
    os.utime(folder / "001.png", ns=(10**18, 10**18))
    assert load() == 4
    write_pictures(folder, 1, start=4)  # added
    assert load() == 5
    (folder / "002.png").unlink()  # removed
    assert load() == 4
    assert load() == 0


def proc_map_of(tensor: torch.Tensor) -> str | None:
    """The file behind the memory holding `tensor` (Linux's /proc/self/maps)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)  # range, permissions, offset, device, inode, path
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) > 5 else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_a_folder_over_the_memory_budget_is_read_memory_mapped(tmp_path):
    folder, cache = tmp_path / "pictures", tmp_path / "cache"
    write_pictures(folder, 6)
    budget = 5 * 3 * 8 * 8 / 2**30  # five images' worth
    data = load_image_folder(str(folder), size=8, cache_dir=str(cache), memory_budget_gb=budget)
    assert data.mapped and len(data) == 6
    npy = next(cache.glob("*.npy"))
    assert proc_map_of(data.images) == str(npy)  # the tensor is the mapped cache file
    sampler = data.sampler(4, torch.device("cpu"), seed=0)
    assert sampler.images.data_ptr() == data.images.data_ptr()  # nothing copied whole
    batch = sampler.next()
    assert torch.equal(batch.x, data.images[batch.index].float() / 127.5 - 1)
    with pytest.raises(UserError, match="memory-mapped.*raise dataset.memory_budget_gb"):
        data.scaled()  # all of it at once (objective=mse's analytic solver)
    under = load_image_folder(str(folder), size=8, cache_dir=str(cache), memory_budget_gb=1)
    assert not under.mapped and torch.equal(under.images, data.images)
    assert proc_map_of(under.images) != str(npy)


def test_a_run_trains_from_the_memory_mapped_cache(make_cfg, tmp_path):
    folder = tmp_path / "pictures"
    write_pictures(folder, 12)
    cfg = make_cfg(
        "dataset=image_folder",
        f"dataset.path={folder}",
        "dataset.size=8",
        "dataset.channels=1",
        "dataset.memory_budget_gb=0",
        "objective=gan",
        "eval.classifier=off",
        "train.batch_size=4",
        "train.steps=4",
        "train.log_every=2",
        "train.sample_every=4",
        "train.checkpoint_every=4",
    )
    parts = Experiment(cfg).parts
    assert parts.sampler.on_device is False
    ok, why = capture_plan(cfg, parts, torch.device("cuda"))  # asked as if on CUDA
    assert not ok and "memory-mapped" in why
    run(cfg)
    log = (Path(cfg.run_dir) / "train.log").read_text()
    assert "read memory-mapped from" in log and "step 4/4" in log


def test_a_corrupt_file_gets_one_line_and_is_skipped(tmp_path, caplog):
    folder, cache = tmp_path / "pictures", tmp_path / "cache"
    write_pictures(folder, 3)
    bad = folder / "001b.png"
    bad.write_bytes(b"\x89PNG not really" + bytes(range(40)))
    with caplog.at_level(logging.INFO, logger="gan_cli"):
        data = load_image_folder(str(folder), size=8, cache_dir=str(cache))
    naming = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert naming == [f"image_folder: skipping {bad}: not an image PIL can read"]
    assert any("skipped 1 unreadable file(s) of 4" in r.getMessage() for r in caplog.records)
    plain = load_image_folder(str(folder), size=8, cache_dir="off")
    assert len(data) == 3 and torch.equal(data.images, plain.images)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gan_cli"):
        again = load_image_folder(str(folder), size=8, cache_dir=str(cache))
    assert torch.equal(again.images, data.images)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "image_folder: 1 unreadable file(s) skipped when the cache was built"
    ]
    with pytest.raises(UserError, match=f"cannot read {bad}: .*on_bad_file=fail"):
        load_image_folder(str(folder), size=8, cache_dir=str(cache), on_bad_file="fail")


def test_a_folder_of_nothing_but_bad_files_is_one_line(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.jpg").write_bytes(b"garbage")
    for cache_dir in ("off", str(tmp_path / "cache")):
        with pytest.raises(UserError, match=r"none of the 2 image files in .* can be read \(the first: "):
            load_image_folder(str(folder), size=8, cache_dir=cache_dir)
    assert cache_files(tmp_path / "cache") == []  # no temporary file left behind


def test_the_npy_header_is_rewritten_in_place():
    assert len(npy_header((5, 3, 8, 8))) % 64 == 0
    long = npy_header((123456789, 3, 8, 8))
    assert len(npy_header((7, 3, 8, 8), len(long))) == len(long)


def one_line_of(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_on_bad_file_fail_stops_gan_train_with_one_line(tmp_path):
    folder = tmp_path / "pictures"
    write_pictures(folder, 3)
    (folder / "broken.png").write_bytes(b"garbage bytes")
    done = run_cli(
        "gan-train",
        *TINY,
        "dataset=image_folder",
        f"dataset.path={folder}",
        "dataset.size=8",
        "dataset.on_bad_file=fail",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    line = one_line_of(done)
    assert line.startswith(f"gan-train: error: image_folder: cannot read {folder / 'broken.png'}: ")


def test_celeba_without_its_files_is_one_line(tmp_path):
    done = run_cli(
        "gan-train",
        *TINY,
        "dataset=celeba",
        f"dataset.root={tmp_path / 'data'}",
        "dataset.download=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    line = one_line_of(done)
    assert line.startswith(f"gan-train: error: celeba: no data in {tmp_path / 'data' / 'celeba'}")
    assert "img_align_celeba/" in line and "list_eval_partition.txt" in line
    assert not (tmp_path / "run").exists()


RED, GREEN = (255, 0, 0), (0, 255, 0)


def fake_celeba(root: Path, partitions: list[int]) -> Path:
    """CelebA in torchvision's layout, its aligned 178x218 JPEGs a green
    178x178 centre between red bands 20 rows high (what the crop drops)."""
    base = root / "celeba"
    images = base / "img_align_celeba"
    images.mkdir(parents=True)
    picture = Image.new("RGB", (178, 218), RED)
    picture.paste(Image.new("RGB", (178, 178), GREEN), (0, 20))
    lines = []
    for i, part in enumerate(partitions, 1):
        name = f"{i:06d}.jpg"
        picture.save(images / name, quality=95)
        lines.append(f"{name} {part}")
    (base / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return base


def test_celeba_from_a_tree_in_torchvisions_layout(tmp_path):
    base = fake_celeba(tmp_path / "data", [0, 0, 1, 0, 2])
    cache = tmp_path / "cache"
    data = load_celeba(root=str(tmp_path / "data"), download=False, cache_dir=str(cache))
    assert data.images.shape == (3, 3, 64, 64) and data.labels is None and data.num_classes == 0
    pixels = data.images.float()
    assert pixels[:, 0].max() < 40 and pixels[:, 1].min() > 215  # green to every edge: no red band left
    uncropped = load_celeba(root=str(tmp_path / "data"), download=False, crop=218, cache_dir="off")
    assert uncropped.images[:, 0, 0].float().mean() > 200  # without the crop the top row is red
    assert len(load_celeba(root=str(tmp_path / "data"), download=False, split="all", cache_dir="off")) == 5
    # img_align_celeba.zip, read in place, gives the same pixels
    with zipfile.ZipFile(base / "img_align_celeba.zip", "w") as archive:
        for file in sorted((base / "img_align_celeba").iterdir()):
            archive.write(file, f"img_align_celeba/{file.name}")
    (base / "img_align_celeba").rename(base / "moved")
    zipped = load_celeba(root=str(tmp_path / "data"), download=False, cache_dir="off")
    assert torch.equal(zipped.images, data.images)


def test_a_checkpoint_from_before_the_cache_keys_resumes(make_cfg, tmp_path):
    """An image_folder run saved before dataset.cache_dir, memory_budget_gb
    and on_bad_file existed resumes with them: they change where pixels are
    read from, never which pixels."""
    folder = tmp_path / "pictures"
    write_pictures(folder, 8)
    common = ["dataset=image_folder", f"dataset.path={folder}", "dataset.size=8", "train.batch_size=4"]
    common += [
        "objective=gan",
        "eval.classifier=off",
        "train.checkpoint_every=2",
        f"run_dir={tmp_path / 'run'}",
    ]
    run(make_cfg(*common, "train.steps=2"))
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    for key in ("cache_dir", "memory_budget_gb", "on_bad_file"):
        del state["config"]["dataset"][key]
    torch.save(state, last)
    run(make_cfg(*common, "train.steps=4", "resume=true", "dataset.memory_budget_gb=0"))
    assert torch.load(last, weights_only=True)["step"] == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gathers on the host for a CUDA device")
def test_a_mapped_set_stays_on_the_host_and_batches_reach_the_device(tmp_path):
    folder = tmp_path / "pictures"
    write_pictures(folder, 6)
    data = load_image_folder(str(folder), size=8, cache_dir=str(tmp_path / "cache"), memory_budget_gb=0)
    sampler = data.sampler(4, torch.device("cuda"), seed=0)
    assert sampler.images.device.type == "cpu" and sampler.images.data_ptr() == data.images.data_ptr()
    batch = sampler.next()
    assert batch.x.device.type == "cuda" and batch.index.device.type == "cuda"
    assert torch.equal(batch.x.cpu(), data.images[batch.index.cpu()].float() / 127.5 - 1)

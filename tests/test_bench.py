"""gan-bench and the data path it measures: correctness, not speed."""

import json

import torch
from conftest import run_cli

from gan_cli.bench.speed import bench_config, fast_loop, reference_loop, write_mnist_idx
from gan_cli.data import load_torchvision
from gan_cli.training.experiment import Experiment


def test_preloaded_batches_equal_torchvision_items_after_to_tensor_normalize(tmp_path):
    from torchvision import datasets, transforms

    write_mnist_idx(tmp_path)
    items = datasets.MNIST(
        str(tmp_path),
        train=True,
        download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]),
    )
    batch = (
        load_torchvision("mnist", root=str(tmp_path), download=False)
        .sampler(32, torch.device("cpu"), seed=1)
        .next()
    )
    for row, index in enumerate(batch.index.tolist()):
        image, label = items[index]
        assert torch.allclose(batch.x[row], image, atol=1e-6)
        assert batch.y[row].item() == label


def test_fast_and_naive_loops_make_the_same_updates(tmp_path):
    write_mnist_idx(tmp_path)
    cfg = bench_config(
        ["objective=wgan", "model.g_hidden=[32]", "model.d_hidden=[32]", "train.batch_size=16", "device=cpu"]
    )
    fast, naive = fast_loop(Experiment(cfg)), reference_loop(cfg, data_root=tmp_path)
    for loop in (fast, naive):
        loop.warm(1)
        assert loop.time(3) > 0
    assert fast.updates == naive.updates == {"g": 3, "d": 15}
    fast.time(2)
    assert fast.updates == {"g": 2, "d": 10}  # each round counts its own updates


def test_gan_bench_prints_every_column(tmp_path):
    out = tmp_path / "bench.json"
    done = run_cli(
        "gan-bench",
        "--steps",
        "2",
        "--rounds",
        "2",
        "--warmup",
        "0",
        "--configs",
        "mlp-wgan-b64",
        "--startup",
        "1",
        "--json",
        out,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("config "))
    for column in (
        "G steps/s",
        "critic steps/s",
        "D images/s",
        "GFLOP/s",
        "% peak",
        "peak MB",
        "naive G steps/s",
        "speed-up",
    ):
        assert column in header
    assert "fp32 matmul peak" in done.stdout
    figures = json.loads(out.read_text())
    row = figures["configs"][0]
    assert row["config"] == "mlp-wgan-b64" and row["g_steps_per_s"] > 0
    assert row["speedup_vs_reference"] > 0 and figures["matmul_peak_gflops"] > 0
    assert row["updates"] == row["reference_updates"] == {"g": 2, "d": 10}
    startup = figures["startup"]
    assert startup["import_torch_torchvision_s"] > 0 and startup["gan_train_1_step_no_eval_s"] > 0
    assert startup["overhead_s"] == startup["gan_train_1_step_s"] - startup["import_torch_torchvision_s"]
    assert "start-up (best of 1): import torch+torchvision" in done.stdout


def test_gan_bench_rejects_an_unknown_config(tmp_path):
    done = run_cli("gan-bench", "--configs", "nope", cwd=tmp_path)
    assert done.returncode == 2 and "unknown config 'nope'" in done.stderr

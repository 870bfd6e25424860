"""gan-bench and the data path it measures: correctness, not speed."""

import json

import pytest
import torch
from conftest import run_cli

from gan_cli.bench.speed import bench_config, fast_loop, kernels_per_step, reference_loop, write_mnist_idx
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


def test_kernels_per_step_counts_a_foreach_update_as_one_kernel():
    tiny = [
        "objective=wgan",
        "model.g_hidden=[32]",
        "model.d_hidden=[32]",
        "train.batch_size=16",
        "device=cpu",
    ]
    counts = {
        foreach: kernels_per_step(Experiment(bench_config([*tiny, f"optimizer.d.foreach={foreach}"])))
        for foreach in ("true", "false")
    }
    # RMSProp's update is 6 operators; D's 4 tensors take 6 foreach calls or
    # 6 per tensor, in each of the step's 5 critic steps.
    assert counts["false"] - counts["true"] == 5 * 6 * (4 - 1)


@pytest.mark.slow  # the whole gan-bench command, every config timed: minutes on 2 cores
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
        "kernels/step",
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
    assert row["kernels_per_g_step"] > 100
    startup = figures["startup"]
    assert startup["import_torch_torchvision_s"] > 0 and startup["gan_train_1_step_no_eval_s"] > 0
    assert startup["overhead_s"] == startup["gan_train_1_step_s"] - startup["import_torch_torchvision_s"]
    assert "start-up (best of 1): import torch+torchvision" in done.stdout


def test_gan_bench_rejects_an_unknown_config(tmp_path):
    done = run_cli("gan-bench", "--configs", "nope", cwd=tmp_path)
    assert done.returncode == 2 and "unknown config 'nope'" in done.stderr


def test_timed_rounds_count_only_their_own_updates_after_the_timers_warm_up(tmp_path):
    """torch.utils.benchmark runs two untimed steps before each timed batch:
    a round's updates and seconds are those of its own steps."""
    cfg = bench_config(["objective=wgan", "model.g_hidden=[16]", "model.d_hidden=[16]", "device=cpu"])
    exp = Experiment(cfg)
    loop = fast_loop(exp)
    seconds = loop.time(4)
    assert seconds > 0 and loop.updates == {"g": 4, "d": 20}
    assert exp.parts.opt_g.state[next(exp.parts.generator.parameters())]["step"].item() == 4 + 2


STUB = """
import pathlib, sys
raw = pathlib.Path("../../data/mnist/MNIST/raw")
images = (raw / "train-images-idx3-ubyte").read_bytes()
with open({marker!r}, "a") as f:
    f.write(" ".join([str(int.from_bytes(images[4:8], "big")), *sys.argv[1:]]) + "\\n")
sys.exit({code})
"""


def test_vs_script_times_whole_processes_in_turns(tmp_path):
    stub, marker = tmp_path / "stub.py", tmp_path / "calls.txt"
    stub.write_text(STUB.format(marker=str(marker), code=0))
    out = tmp_path / "vs.json"
    done = run_cli(
        "gan-bench",
        "--vs-script",
        stub,
        "--vs-runs",
        "2",
        "--vs-epochs",
        "3",
        "--vs-args",
        "--epochs {epochs} --root {data}",
        "--vs-overrides",
        "train.steps=2 model.g_hidden=[16] model.d_hidden=[16]",
        "--device",
        "cpu",
        "--json",
        out,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    calls = marker.read_text().splitlines()
    assert len(calls) == 2  # the script ran in the folder where ../../data/mnist holds the digits
    count, *argv = calls[0].split()
    assert count == "5000" and argv[:2] == ["--epochs", "3"] and argv[3].endswith("data/mnist")
    figures = json.loads(out.read_text())["vs_script"]
    assert len(figures["ours_s"]) == len(figures["theirs_s"]) == 2
    assert figures["speedup"] == figures["theirs_median_s"] / figures["ours_median_s"]
    ours = figures["gan_train_command"]
    assert "objective=wgan" in ours and "train.steps=2" in ours and "device=cpu" in ours
    assert not any(a.startswith("train.steps=") and a != "train.steps=2" for a in ours)
    assert f"{figures['ours_median_s']:.2f} s, stub.py {figures['theirs_median_s']:.2f} s" in done.stdout


def test_vs_script_steps_match_the_reference_critic_updates():
    from gan_cli.bench.speed import vs_steps

    # 79 batches of 64 (the last one short) per epoch, one critic update each, 5 per G step
    assert vs_steps(10) == 158 and vs_steps(50) == 790 and vs_steps(1) == 15


def test_gan_bench_bad_input_is_one_line(tmp_path):
    stub = tmp_path / "stub.py"
    stub.write_text(STUB.format(marker=str(tmp_path / "calls.txt"), code=3))
    cases = {
        ("--vs-script", tmp_path / "missing.py"): f"--vs-script {tmp_path / 'missing.py'}: no such file",
        ("--vs-script", tmp_path): f"--vs-script {tmp_path}: a folder, not a script",
        ("--vs-script", stub, "--vs-runs", "0"): "--vs-epochs and --vs-runs must be >= 1",
        ("--vs-script", stub, "--vs-args", "{n_epochs}"): (
            "--vs-args '{n_epochs}': only {epochs} and {data} are filled in"
        ),
        ("--steps", "0"): "--steps and --rounds must be >= 1",
        ("--no-such-option",): "unrecognized arguments: --no-such-option (see gan-bench --help)",
    }
    for args, message in cases.items():
        done = run_cli("gan-bench", *args, cwd=tmp_path)
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith(f"gan-bench: error: {message}"), lines
    # A reference script that fails: its last line, once, after gan-train's own run.
    done = run_cli(
        "gan-bench",
        "--vs-script",
        stub,
        "--vs-runs",
        "1",
        "--vs-overrides",
        "train.steps=1 model.g_hidden=[16] model.d_hidden=[16]",
        "--device",
        "cpu",
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "gan-bench: error: stub.py failed (exit 3): (no output)"
    ]


def test_every_config_builds_its_data_set_outside_a_hydra_run():
    """gan-bench composes without Hydra's runtime: a config whose data set
    names ${hydra:...} must override it (resnet-hinge-b64: stacked MNIST)."""
    from gan_cli.bench.speed import CONFIGS
    from gan_cli.config.build import build_data

    for name, overrides in CONFIGS.items():
        data = build_data(bench_config(overrides).dataset)
        assert data.shape, name
    resnet = bench_config(CONFIGS["resnet-hinge-b64"])
    assert (resnet.model.g_channels, resnet.model.d_channels, resnet.dataset.size) == (256, 128, 32)

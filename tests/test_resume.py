"""Runs that survive: bit-exact resume, refusals, signals, non-finite losses."""

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from conftest import TINY, assert_same, run_cli, start_gan_train, wait_for
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_cli.errors import UserError
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run

SHORT = [
    "train.steps=12",
    "train.log_every=3",
    "train.checkpoint_every=3",
    "train.sample_every=6",
    "train.eval_every=6",
]


def _curves(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(Path(run_dir) / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
        if not tag.startswith("perf/")
    }


@pytest.mark.parametrize("objective", ["mse", "gan", "wgan", "cgan"])
def test_resumed_run_equals_straight_run_bit_for_bit(make_cfg, objective):
    straight = make_cfg(f"objective={objective}", *SHORT)
    run(straight)
    half = make_cfg(f"objective={objective}", *SHORT, "train.steps=6")
    run(half)
    resumed = make_cfg(f"objective={objective}", *SHORT, "resume=true", f"run_dir={half.run_dir}")
    run(resumed)
    a, b = load_checkpoint(straight.run_dir), load_checkpoint(half.run_dir)
    assert a["step"] == b["step"] == 12
    for net in ("generator", "discriminator"):
        if a[net] is None:
            assert b[net] is None
            continue
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs"
    curves_a, curves_b = _curves(straight.run_dir), _curves(half.run_dir)
    assert curves_a == curves_b
    assert [s for s, _ in curves_b["loss/g"]] == [3, 6, 9, 12]  # no duplicate points


@pytest.mark.parametrize(
    "objective,dataset,extra",
    [
        ("gan", "digits", []),
        ("wgan_gp", "ring8", []),
        ("hinge", "digits", ["train.augment=[color,translation,cutout]"]),
    ],
)
def test_the_whole_checkpoint_does_not_depend_on_where_a_run_stopped(make_cfg, objective, dataset, extra):
    # The half run ends at step 10, so it evaluates and draws a picture there
    # (and, on digits, trains the scoring classifier) before its checkpoint;
    # the straight run does neither at 10. The checkpoints at 20 must still be
    # the same, process-wide random states included.
    cadence = [
        "seed=1",
        "train.log_every=5",
        "train.checkpoint_every=5",
        "train.sample_every=20",
        "train.eval_every=20",
        f"objective={objective}",
        f"dataset={dataset}",
        *extra,
    ]
    if dataset != "digits":
        cadence += ["model.g_hidden=[16]", "model.d_hidden=[16]", "dataset.eval_points=200"]
    straight = make_cfg(*cadence, "train.steps=20")
    run(straight)
    half = make_cfg(*cadence, "train.steps=10")
    run(half)
    run(make_cfg(*cadence, "train.steps=20", "resume=true", f"run_dir={half.run_dir}"))
    a, b = load_checkpoint(straight.run_dir), load_checkpoint(half.run_dir)
    assert a["step"] == b["step"] == 20
    a["config"].pop("run_dir"), b["config"].pop("run_dir")
    b["config"]["resume"] = a["config"]["resume"]
    assert_same(a, b)


def test_random_streams_saved_on_another_device_type_are_reseeded_reproducibly(make_cfg, capsys):
    # A CUDA run's generators save 16 bytes (seed, offset); a CPU generator's
    # state is 5,056. Such a checkpoint resumed on the CPU continues from a
    # seed taken from the saved bytes: it runs, says so, and repeats itself.
    toy = [
        "objective=gan",
        "dataset=ring8",
        "model.g_hidden=[16]",
        "model.d_hidden=[16]",
        "dataset.eval_points=200",
        "train.log_every=3",
        "train.checkpoint_every=3",
        "train.sample_every=100",
        "train.eval_every=100",
    ]
    half = make_cfg(*toy, "train.steps=6")
    run(half)
    path = Path(half.run_dir) / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    cuda_like = torch.arange(16, dtype=torch.uint8)
    state["latent_rng"], state["sampler"]["generator"] = cuda_like, cuda_like + 1
    torch.save(state, path)
    finals = []
    for copy in ("a", "b"):
        run_dir = Path(half.run_dir).with_name(f"resumed_{copy}")
        shutil.copytree(half.run_dir, run_dir)
        capsys.readouterr()
        run(make_cfg(*toy, "train.steps=12", "resume=true", f"run_dir={run_dir}"))
        assert "were made on another device type than cpu" in capsys.readouterr().err
        finals.append(load_checkpoint(run_dir))
    assert finals[0]["step"] == finals[1]["step"] == 12
    for key in finals[0]["generator"]:
        assert torch.equal(finals[0]["generator"][key], finals[1]["generator"][key]), key
    assert not torch.equal(finals[0]["latent_rng"], state["latent_rng"])  # a CPU state now


def test_restore_generator_keeps_exact_states_and_refuses_a_broken_one():
    from gan_cli.rng import restore_generator

    source = torch.Generator().manual_seed(5)
    target = torch.Generator().manual_seed(0)
    assert restore_generator(target, source.get_state()) is True
    assert torch.equal(target.get_state(), source.get_state())
    first = torch.Generator()
    assert restore_generator(first, torch.arange(16, dtype=torch.uint8)) is False
    second = torch.Generator()
    assert restore_generator(second, torch.arange(16, dtype=torch.uint8)) is False
    assert torch.equal(torch.rand(4, generator=first), torch.rand(4, generator=second))
    broken = torch.zeros_like(source.get_state())  # a CPU state's size, not a valid one
    with pytest.raises(RuntimeError):
        restore_generator(torch.Generator(), broken)


def test_resume_refuses_a_changed_config_unless_allowed(make_cfg):
    first = make_cfg("objective=gan", "train.steps=4")
    run(first)
    changed = make_cfg(
        "objective=gan",
        "train.steps=8",
        "optimizer.lr=1e-3",
        "latent.dim=8",
        "resume=true",
        f"run_dir={first.run_dir}",
    )
    with pytest.raises(UserError) as info:
        run(changed)
    message = str(info.value)
    assert "latent.dim" in message and "optimizer.lr" in message and "train.steps" not in message
    longer = [
        "objective=gan",
        "train.steps=8",
        "optimizer.lr=1e-3",
        "resume=true",
        f"run_dir={first.run_dir}",
    ]
    allowed = make_cfg(*longer, "resume_allow=[optimizer]")
    # A name that is no key (a typo) would allow nothing: refused, the run untouched.
    typo = make_cfg(*longer, "resume_allow=[optimiser]")
    with pytest.raises(UserError, match=r"^resume_allow=\[optimiser\]: no such key in the run's config$"):
        run(typo)
    assert load_checkpoint(first.run_dir)["step"] == 4
    run(allowed)
    state = load_checkpoint(first.run_dir)
    assert state["step"] == 8
    assert state["opt_g"]["param_groups"][0]["lr"] == 1e-3  # the allowed change took effect


def test_resume_from_a_checkpoint_path_and_bad_resumes(make_cfg, tmp_path):
    first = make_cfg("objective=wgan", "train.steps=6", "train.checkpoint_every=3")
    run(first)
    step3 = Path(first.run_dir) / "checkpoints" / "step_3.pt"
    again = make_cfg("objective=wgan", "train.steps=6", "train.checkpoint_every=3", f"resume={step3}")
    run(again)  # continues the original run dir from step 3
    assert load_checkpoint(first.run_dir)["step"] == 6
    with pytest.raises(UserError, match="holds no checkpoints/last.pt"):
        run(make_cfg("resume=true"))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(step3.read_bytes()[:1000])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        run(make_cfg(f"resume={broken}"))
    # A metrics.json cut short (a full disk) is named, and kept for the user.
    metrics = Path(first.run_dir) / "metrics.json"
    metrics.write_text(metrics.read_text()[:40])
    longer = make_cfg("objective=wgan", "train.steps=9", f"resume={first.run_dir}")
    with pytest.raises(UserError, match=f"cannot resume: {metrics} is not the JSON object of metrics"):
        run(longer)
    assert load_checkpoint(first.run_dir)["step"] == 6 and len(metrics.read_text()) == 40
    metrics.unlink()  # then the run goes on, and writes it afresh
    assert run(longer)["eval/fd"] > 0 and json.loads(metrics.read_text())["eval/fd"] > 0


def test_a_fresh_run_leaves_an_earlier_runs_files_without_a_checkpoint_alone(make_cfg):
    """A run stopped before its first checkpoint (diverged, killed) left its
    events and pictures; a new run there mixed its curves into them and
    replaced the pictures."""
    first = make_cfg("objective=gan", "train.steps=4", "train.checkpoint_every=1000")
    run(first)
    folder = Path(first.run_dir)
    (folder / "checkpoints" / "last.pt").unlink()
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    again = make_cfg("objective=gan", "train.steps=4", f"run_dir={folder}")
    with pytest.raises(UserError) as info:
        run(again)
    assert str(info.value) == (
        f"{folder} already holds an earlier run's files (checkpoints, samples, tb, metrics.json) but no "
        "checkpoint to continue from; choose another hydra.run.dir, or move them away"
    )
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_divergence_stops_and_keeps_the_last_good_checkpoint(make_cfg):
    cfg = make_cfg(
        "objective=gan",
        "optimizer=sgd",
        "optimizer.lr=1e12",
        "train.steps=40",
        "train.checkpoint_every=1",
        "train.log_every=1",
    )
    with pytest.raises(UserError) as info:
        run(cfg)
    assert "diverged" in str(info.value) and "at step" in str(info.value)
    state = load_checkpoint(cfg.run_dir)
    for net in ("generator", "discriminator"):
        assert all(torch.isfinite(t).all() for t in state[net].values())


def test_rollback_reloads_lowers_the_learning_rate_and_finishes(make_cfg, monkeypatch, capsys):
    from gan_cli.objectives import MinimaxGAN

    original = MinimaxGAN.generator_loss
    calls = {"n": 0}

    def poisoned(self, G, D, batch, latent):  # NaN losses at two generator steps
        calls["n"] += 1
        loss, stats = original(self, G, D, batch, latent)
        return (loss * float("nan"), stats) if calls["n"] in (7, 12) else (loss, stats)

    monkeypatch.setattr(MinimaxGAN, "generator_loss", poisoned)
    cfg = make_cfg(
        "objective=gan",
        "train.steps=12",
        "train.log_every=2",
        "train.checkpoint_every=4",
        "train.on_nonfinite=rollback",
        "train.rollback_lr_factor=0.5",
    )
    metrics = run(cfg)
    err = capsys.readouterr().err
    assert "rolled back to step 4, learning rates x0.5 (rollback 1 of 3)" in err
    assert "learning rates x0.25 (rollback 2 of 3)" in err
    state = load_checkpoint(cfg.run_dir)
    assert state["step"] == 12 and all(map(lambda v: v == v, metrics.values()))
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(cfg.optimizer.lr * 0.25)


def test_sigkill_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train.steps=100000", "train.checkpoint_every=5", "train.log_every=5", f"hydra.run.dir={run_dir}"]
    process = start_gan_train(tmp_path, *args)
    wait_for(run_dir / "checkpoints" / "step_15.pt", process)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    state = load_checkpoint(run_dir)
    assert state["step"] >= 15
    done = run_cli(
        "gan-train", *TINY, *args[1:], f"train.steps={state['step'] + 5}", "resume=true", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(run_dir)["step"] == state["step"] + 5


def test_sigint_checkpoints_says_how_to_resume_and_exits_nonzero(tmp_path):
    run_dir = tmp_path / "run"
    process = start_gan_train(
        tmp_path, "train.steps=100000", "train.checkpoint_every=5", f"hydra.run.dir={run_dir}"
    )
    wait_for(run_dir / "checkpoints" / "step_5.pt", process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGINT
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("gan-train: SIGINT: stopped after step") and "resume=true" in last_line
    stopped_at = load_checkpoint(run_dir)["step"]
    assert f"step {stopped_at};" in last_line and "Traceback" not in err


def test_a_checkpoint_saved_before_the_added_keys_loads_with_them_and_resumes(make_cfg):
    """A saved config lacking the keys added since (config.checks.ADDED_KEYS)
    gets them once, as the checkpoint loads, with the values its run had:
    resuming it is no change, and its G loads with no default of its own."""
    from gan_cli.config.checks import ADDED_KEYS
    from gan_cli.run.checkpoint import generator_from_checkpoint

    common = ["objective=gan", "train.ema_start=0", "train.checkpoint_every=3"]
    first = make_cfg(*common, "train.steps=3")
    run(first)
    last = Path(first.run_dir) / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    config = state["config"]
    for dotted in ADDED_KEYS:
        section, key = dotted.split(".")
        config[section].pop(key, None)
    del config["eval"]  # a run from before evaluation existed
    del state["generator_ema"]  # and before G's average
    torch.save(state, last)

    loaded = load_checkpoint(last)["config"]
    for dotted, value in ADDED_KEYS.items():
        section, key = dotted.split(".")
        assert loaded[section][key] == value, dotted
    assert loaded["eval"] == {
        "use_ema": True,
        "num_samples": 5000,
        "cache_dir": None,
        "inception": None,
        "sampler": None,
        "drs_percentile": 95.0,
        "mh_chain": 100,
        "threshold_percentile": 1.0,
        "jacobian_drop": 5.0,
        "refine_steps": 0,
    }
    G = generator_from_checkpoint(load_checkpoint(last))
    assert torch.equal(G.state_dict()["net.0.weight"], state["generator"]["net.0.weight"])

    run(make_cfg(*common, "train.steps=5", "resume=true", f"run_dir={first.run_dir}"))
    assert load_checkpoint(first.run_dir)["step"] == 5
    # A key whose saved value differs from the current one still counts as changed.
    with pytest.raises(UserError, match=r"the config differs in objective\.r1_every;"):
        run(
            make_cfg(
                *common, "train.steps=7", "objective.r1_every=2", "resume=true", f"run_dir={first.run_dir}"
            )
        )

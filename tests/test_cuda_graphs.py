"""train.cuda_graphs: the capture decision and its note (on any machine), the
graphed step's bookkeeping through its CPU stand-in, and on CUDA the graphed
steps against the eager ones from the same state."""

import logging

import pytest
import torch
from conftest import TINY, assert_same

from gan_cli.config.checks import validate
from gan_cli.errors import UserError
from gan_cli.run.checkpoint import load_checkpoint
from gan_cli.run.runner import run
from gan_cli.training import cuda_graphs
from gan_cli.training.cuda_graphs import (
    GraphedTrainer,
    IndexedBatches,
    _make_capturable,
    capture_plan,
    trainer,
)
from gan_cli.training.experiment import Experiment
from gan_cli.training.loop import run_steps
from gan_cli.training.meter import Meter

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
TOY = [
    "experiment=toy_gan",
    "train.batch_size=64",
    "model.g_hidden=[32,32]",
    "model.d_hidden=[32,32]",
    "train.steps=20",
    "train.log_every=5",
    "train.checkpoint_every=10",
    "train.sample_every=10",
]


def _nothing(step):
    return True


def _log_every_3(meter, logged):
    """An after_step that reads the meter every third step, as a log would."""

    def after(step):
        if step % 3 == 0:
            logged.append(meter.means())
        return True

    return after


def _same_state(a: Experiment, b: Experiment, exact: bool) -> None:
    """Weights, optimizer moments and every random stream of two experiments."""
    check = torch.equal if exact else (lambda x, y: torch.allclose(x, y, rtol=1e-4, atol=1e-6))
    pa, pb = a.parts, b.parts
    for net in ("generator", "discriminator"):
        na, nb = getattr(pa, net), getattr(pb, net)
        if na is None:
            continue
        for (key, x), y in zip(na.state_dict().items(), nb.state_dict().values(), strict=True):
            assert check(x.float(), y.float()), f"{net}.{key} differs"
    if a.ema is not None:  # G's moving average
        for (key, x), y in zip(a.ema.state_dict().items(), b.ema.state_dict().values(), strict=True):
            assert check(x.float(), y.float()), f"generator_ema.{key} differs"
    assert pa.objective.state_dict().keys() == pb.objective.state_dict().keys()
    for key, x in pa.objective.state_dict().items():  # host counters (lazy R1)
        y = pb.objective.state_dict()[key]
        assert torch.equal(x, y) if torch.is_tensor(x) else x == y, f"objective {key} differs"
    for opt_a, opt_b in ((pa.opt_g, pb.opt_g), (pa.opt_d, pb.opt_d)):
        if opt_a is None:
            continue
        sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
        for index in sa:
            for key, x in sa[index].items():
                assert check(x.float().cpu(), sb[index][key].float().cpu()), f"optimizer {key} differs"
    ssa, ssb = pa.sampler.state_dict(), pb.sampler.state_dict()
    for key in ssa:
        x, y = ssa[key], ssb[key]
        assert torch.equal(x, y) if torch.is_tensor(x) else x == y, f"sampler {key} differs"
    assert torch.equal(pa.latent.generator.get_state(), pb.latent.generator.get_state())


def _curves(run_dir) -> dict[str, float]:
    from conftest import tensorboard_events

    acc = tensorboard_events(run_dir)
    return {
        f"{tag}@{e.step}": e.value
        for tag in acc.Tags()["scalars"]
        if not tag.startswith("perf/")
        for e in acc.Scalars(tag)
    }


def _means_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key


# --- the decision and the note, on any machine -----------------------------------


def test_capture_plan_says_why_not(make_cfg):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    parts = Experiment(make_cfg("device=cpu")).parts
    assert capture_plan(make_cfg(), parts, cpu) == (
        False,
        "CUDA graphs need a CUDA device and this run trains on cpu",
    )
    assert capture_plan(make_cfg("train.cuda_graphs=false"), parts, cuda) == (
        False,
        "train.cuda_graphs=false",
    )
    # The rest of the decision never touches the device: asked as if on CUDA.
    assert capture_plan(make_cfg(), parts, cuda) == (True, "generator steps replayed as CUDA graphs")
    assert capture_plan(make_cfg("train.cuda_graphs=true"), parts, cuda)[0] is True
    ok, why = capture_plan(make_cfg("train.compile=true"), parts, cuda)
    assert not ok and why.startswith("train.compile=true")
    ok, why = capture_plan(make_cfg("train.precision=bf16"), parts, cuda)
    assert not ok and why.startswith("train.precision=bf16")
    closed = make_cfg(
        "objective=mse",
        "model=linear",
        "objective.pairing=fixed",
        "objective.solver=analytic",
        "model.g_hidden=16",
        "device=cpu",
    )
    ok, why = capture_plan(closed, Experiment(closed).parts, cuda)
    assert not ok and "closed form" in why

    class Plain:  # a sampler that draws on the host: not capturable
        def next(self):
            raise AssertionError

    from dataclasses import replace

    ok, why = capture_plan(make_cfg(), replace(parts, sampler=Plain()), cuda)
    assert (ok, why) == (False, "the Plain batch sampler cannot draw inside a graph")
    ok, why = capture_plan(
        make_cfg(), replace(parts, opt_d=torch.optim.Adagrad(parts.discriminator.parameters())), cuda
    )
    assert (ok, why) == (False, "the Adagrad optimizer cannot be captured (no capturable option)")


def test_a_bad_value_is_one_line(make_cfg):
    with pytest.raises(UserError, match=r"^train.cuda_graphs must be one of auto, true, false, got 'maybe'$"):
        validate(make_cfg("train.cuda_graphs=maybe"))
    for value in ("auto", "true", "false"):
        validate(make_cfg(f"train.cuda_graphs={value}"))


def test_the_note_only_where_graphs_were_asked_for(make_cfg, caplog):
    parts = Experiment(make_cfg("device=cpu")).parts
    caplog.set_level(logging.INFO, logger="gan_cli")

    def notes():
        said = [r.getMessage() for r in caplog.records if r.name == "gan_cli"]
        caplog.clear()
        return said

    assert trainer(make_cfg("train.cuda_graphs=auto"), parts, torch.device("cpu")) is run_steps
    assert trainer(make_cfg("train.cuda_graphs=false"), parts, torch.device("cpu")) is run_steps
    assert notes() == []
    assert trainer(make_cfg("train.cuda_graphs=true"), parts, torch.device("cpu")) is run_steps
    assert notes() == [
        "note: train.cuda_graphs=true: CUDA graphs need a CUDA device and this "
        "run trains on cpu; training eagerly"
    ]
    # On CUDA, auto notes an uncapturable config too (asked without a device).
    assert trainer(make_cfg("train.compile=true"), parts, torch.device("cuda")) is run_steps
    said = notes()
    assert len(said) == 1 and said[0].startswith("note: train.cuda_graphs=auto: train.compile=true")


# Host state that changes a step (G's average warming up, lazy R1), beside a plain run.
STAND_IN_RUNS = {
    "wgan": ["objective=wgan"],
    "phased": [
        "objective=gan",
        "train.ema=0.9",
        "train.ema_start=3",
        "objective.r1=0.5",
        "objective.r1_every=2",
    ],
    # G's step scores real data too; R1 and R2 share the lazy rhythm.
    "relativistic": ["objective=rpgan", "objective.r1=0.5", "objective.r2=0.5", "objective.r1_every=2"],
}


@pytest.mark.parametrize("case", STAND_IN_RUNS)
def test_a_cpu_run_asking_for_graphs_trains_bit_for_bit_as_without(make_cfg, capsys, monkeypatch, case):
    """On the CPU, train.cuda_graphs=true trains eagerly (with one note); and
    the graphed trainer's CPU stand-in (every replay run eagerly through the
    device buffer, static sums and counters) trains a whole run bit for bit
    as the plain eager loop it stands in for: curves, metrics, checkpoint."""
    common = [
        "device=cpu",
        *STAND_IN_RUNS[case],
        "train.steps=9",
        "train.log_every=3",
        "train.checkpoint_every=3",
        "eval.classifier=off",
    ]
    asked = make_cfg(*common, "train.cuda_graphs=true")
    metrics = run(asked)
    err = capsys.readouterr().err
    assert err.count("note: train.cuda_graphs=true: CUDA graphs need a CUDA device") == 1
    plain = make_cfg(*common, "train.cuda_graphs=false")
    plain_metrics = run(plain)
    assert "note" not in capsys.readouterr().err

    made = []

    def stand_in(cfg, parts, device):
        graphed = GraphedTrainer(parts, device)
        graphed.steps.batches = IndexedBatches(parts.sampler, slots=8)  # refilled within the run
        made.append(graphed)
        return graphed

    monkeypatch.setattr(cuda_graphs, "trainer", stand_in)
    graphed = make_cfg(*common, "train.cuda_graphs=false")
    graphed_metrics = run(graphed)
    assert len(made) == 1 and made[0].steps.failed is None
    critic = 5 if case == "wgan" else 1
    assert made[0].steps.updates == {"g": 9, "d": 9 * critic}
    # One graph per kind of step: lazy R1 (and R2) due or not, x the average warming up or not.
    assert len(made[0].steps.graphs) == {"wgan": 1, "phased": 4, "relativistic": 2}[case]

    for values in (metrics, plain_metrics, graphed_metrics):
        values.pop("steps_per_sec")
    assert metrics == plain_metrics
    assert graphed_metrics == plain_metrics
    assert _curves(graphed.run_dir) == _curves(plain.run_dir) and "loss/g@9" in _curves(plain.run_dir)
    a, b = load_checkpoint(asked.run_dir), load_checkpoint(plain.run_dir)
    for key in ("generator", "discriminator", "opt_g", "opt_d"):
        assert _flat(a[key]).keys() == _flat(b[key]).keys()
        for name, x in _flat(a[key]).items():
            y = _flat(b[key])[name]
            assert torch.equal(x, y) if torch.is_tensor(x) else x == y, f"{key}.{name}"
    c = load_checkpoint(graphed.run_dir)
    assert c.keys() == b.keys()
    for key in b.keys() - {"config"}:  # weights, moments, average, every stream, meter
        assert_same(c[key], b[key], key)


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in _flat(value, f"{prefix}{i}.").items()}
    return {prefix: tree}


# --- the graphed step's bookkeeping, through its CPU stand-in --------------------


def test_device_buffer_draws_the_eager_batches_across_epochs(make_cfg):
    cfg = make_cfg("device=cpu")
    eager, graphed = Experiment(cfg).parts.sampler, Experiment(cfg).parts.sampler
    batches = IndexedBatches(graphed, slots=56)  # an epoch (56 batches)
    for _ in range(40):  # 240 batches: 4 epochs
        batches.ensure(6)
        drawn = [batches.next() for _ in range(6)]
        batches.advance(6)
        for got in drawn:
            want = eager.next()
            assert torch.equal(got.index, want.index) and torch.equal(got.x, want.x)
            assert torch.equal(got.y, want.y)
    state_a, state_b = eager.state_dict(), graphed.state_dict()
    assert state_a["position"] == state_b["position"]
    assert torch.equal(state_a["order"], state_b["order"])
    assert torch.equal(state_a["generator"], state_b["generator"])
    with pytest.raises(RuntimeError, match="more than the 56"):
        batches.ensure(57)


def test_the_sampler_shows_coming_batches_without_moving_on_and_skips_them(make_cfg):
    """What the device buffer reads through: TensorSampler.coming_indices
    and skip, against the sampler's own draws, across an epoch's end."""
    cfg = make_cfg("device=cpu")  # 1,797 digits in batches of 32: 56 an epoch
    eager, peeked = Experiment(cfg).parts.sampler, Experiment(cfg).parts.sampler
    for _ in range(2):
        before = peeked.state_dict()
        rows = peeked.coming_indices(40)
        after = peeked.state_dict()
        assert after["position"] == before["position"] and torch.equal(after["order"], before["order"])
        assert torch.equal(after["generator"], before["generator"])
        assert rows.shape == (40, 32)
        for row in rows:
            assert torch.equal(row, eager.next_indices())
        peeked.skip(40)
    assert peeked.state_dict()["position"] == eager.state_dict()["position"]
    assert torch.equal(peeked.next().x, eager.next().x)
    batch = peeked.gather(rows[0])
    assert torch.equal(batch.index, rows[0]) and batch.x.shape == (32, 1, 8, 8)


# Host state that changes a step: G's average warming up until step 4, and a
# lazy R1 on every 3rd D step (with 5 critic steps the cycle moves each step).
PHASED = {
    "ema": ["objective=gan", "train.ema=0.9", "train.ema_start=4"],
    "lazy_r1": ["objective=wgan", "objective.r1=0.5", "objective.r1_every=3"],
}
# Batches drawn afresh on the device every step (three digits per image).
DRAWN = {"stacked": ["objective=gan", "dataset=stacked_mnist", "dataset.root=data"]}
# Noise drawn in two parts inside the step: a component, then a point around it.
PRIOR = {"mixture": ["objective=gan", "latent.distribution=mixture", "latent.components=16"]}


@pytest.mark.parametrize(
    "objective", ["wgan", "gan", "wgan_gp", "mse", "cgan", "toy", *PHASED, *DRAWN, *PRIOR]
)
def test_stand_in_replays_equal_loop_run_steps_bit_for_bit(make_cfg, objective):
    """On the CPU a "replay" runs the recorded step eagerly through the same
    device buffer, static sums and counters: all but the capture itself."""
    named = {**PHASED, **DRAWN, **PRIOR}.get(objective, [f"objective={objective}"])
    cfg = make_cfg(*TOY, "device=cpu", tiny=False) if objective == "toy" else make_cfg(*named, "device=cpu")
    a, b = Experiment(cfg), Experiment(cfg)
    meter_a, meter_b = Meter(), Meter()
    logged_a, logged_b = [], []
    run_steps(a.parts, 0, 7, meter_a, _log_every_3(meter_a, logged_a))
    graphed = GraphedTrainer(b.parts, torch.device("cpu"))
    if isinstance(graphed.steps.batches, IndexedBatches):  # refills every few steps
        graphed.steps.batches = IndexedBatches(b.parts.sampler, slots=8)
    graphed(b.parts, 0, 7, meter_b, _log_every_3(meter_b, logged_b))
    _same_state(a, b, exact=True)
    assert logged_a == logged_b and len(logged_a) == 2
    assert meter_a.state_dict()["counts"] == meter_b.state_dict()["counts"]
    assert meter_a.means() == meter_b.means()
    critic = a.objective.critic_steps_at(0)
    assert graphed.steps.updates == ({"g": 7, "d": 7 * critic} if critic else {"g": 7})
    # A second call captures afresh (state may have been restored) and goes on.
    run_steps(a.parts, 7, 9, meter_a, _nothing)
    graphed(b.parts, 7, 9, meter_b, _nothing)
    _same_state(a, b, exact=True)
    assert meter_a.means() == meter_b.means()


# --- on CUDA: graphed against eager, from the same state -------------------------

CASES = {
    "wgan": ["objective=wgan"],
    "gan": ["objective=gan"],
    "wgan_gp": ["objective=wgan_gp"],
    "hinge": ["objective=hinge"],
    "rpgan": ["objective=rpgan", "objective.r2=0.5", "objective.r1_every=2"],
    "lsgan": ["objective=lsgan"],
    "fgan": ["objective=fgan"],
    "mse": ["objective=mse"],
    "mse_fixed": ["objective=mse", "objective.pairing=fixed"],
    "cgan": ["objective=cgan"],
    "dcgan": ["objective=gan", "model=dcgan", "model.g_channels=8", "model.d_channels=8"],
    "dcgan_wgan_gp": ["objective=wgan_gp", "model=dcgan", "model.g_channels=8", "model.d_channels=8"],
    "dcgan_stacked": [
        "objective=gan",
        "model=dcgan",
        "model.g_channels=8",
        "model.d_channels=8",
        "dataset=stacked_mnist",
        "dataset.root=data",
        "objective.pack=2",
        "train.ema=0.9",
        "train.ema_start=2",
    ],
    "sgd": ["objective=gan", "optimizer=sgd"],
    "reference_schedule": ["objective=wgan", "objective.reference_schedule=true"],
}


def _cuda_cfg(make_cfg, case):
    if case in ("toy", "toy_cgan", "toy_moons", "toy_mixture"):
        extra = {
            "toy": [],
            "toy_cgan": ["experiment=toy_cgan"],
            "toy_moons": ["dataset=moons"],
            "toy_mixture": ["latent.distribution=mixture"],
        }[case]
        return make_cfg(*TOY, *extra, "device=cuda", tiny=False)
    if case.startswith("dcgan"):
        return make_cfg(
            *[o for o in TINY if not o.startswith("model.")], *CASES[case], "device=cuda", tiny=False
        )
    return make_cfg(*CASES[case], "device=cuda")


@CUDA
@pytest.mark.parametrize("case", [*CASES, "toy", "toy_cgan", "toy_moons", "toy_mixture"])
def test_graphed_steps_equal_eager_steps(make_cfg, case):
    cfg = _cuda_cfg(make_cfg, case)
    a, b = Experiment(cfg), Experiment(cfg)
    steps = 27 if case == "reference_schedule" else 5  # 100 critic steps for 25, then 5
    meter_a, meter_b = Meter(), Meter()
    # The eager steps with the graph's optimizer arithmetic: capturable Adam
    # (unless fused) computes its bias corrections on the device in fp32, a
    # rounding apart from the eager host-side ones; that alone would make a
    # parameter whose gradient is only rounding noise (a bias before batch
    # norm) move by up to lr a step either way.
    for opt in (a.parts.opt_g, a.parts.opt_d):
        if opt is not None:
            _make_capturable(opt)
    run_steps(a.parts, 0, steps, meter_a, _nothing)
    graphed = GraphedTrainer(b.parts, torch.device("cuda"))
    graphed(b.parts, 0, steps, meter_b, _nothing)
    assert graphed.steps.failed is None
    counts = {a.objective.critic_steps_at(s) for s in range(steps)}
    assert {count for count, _phase in graphed.steps.graphs} == counts  # one graph per count
    _same_state(a, b, exact=False)
    assert meter_a.state_dict()["counts"] == meter_b.state_dict()["counts"]
    _means_close(meter_a.means(), meter_b.means())
    critic = sum(a.objective.critic_steps_at(s) for s in range(steps))
    assert graphed.steps.updates == ({"g": steps, "d": critic} if critic else {"g": steps})


@CUDA
def test_checkpoint_of_a_graphed_run_is_the_eager_form_and_resumes_as_a_straight_run(make_cfg):
    common = [
        "objective=gan",
        "optimizer=adam_gp",
        "device=cuda",
        "eval.classifier=off",
        "train.steps=12",
        "train.log_every=3",
        "train.checkpoint_every=3",
    ]
    straight = make_cfg(*common)
    run(straight)
    eager = make_cfg(*common, "train.cuda_graphs=false")
    run(eager)
    half = make_cfg(*common, "train.steps=6")
    run(half)
    run(make_cfg(*common, "resume=true", f"run_dir={half.run_dir}"))
    a, b, c = (load_checkpoint(x.run_dir) for x in (straight, half, eager))
    for key in ("opt_g", "opt_d"):  # adam_gp: foreach Adam, steps on the CPU
        assert all(g["capturable"] is False for g in a[key]["param_groups"])
        assert all(s["step"].device.type == "cpu" for s in a[key]["state"].values())
        assert a[key]["param_groups"] == c[key]["param_groups"]
    for net in ("generator", "discriminator"):
        for name, x in a[net].items():
            assert torch.allclose(x.float(), b[net][name].float(), rtol=1e-4, atol=1e-6), name
    # Against the eager run (its Adam bias corrections on the host): the same losses.
    graphed_curves, eager_curves = _curves(straight.run_dir), _curves(eager.run_dir)
    assert graphed_curves.keys() == eager_curves.keys() and "loss/g@12" in graphed_curves
    for key, value in graphed_curves.items():
        assert value == pytest.approx(eager_curves[key], rel=1e-3, abs=1e-5), key
    # The graphed run's checkpoint continues in an eager run on the CPU.
    cpu = make_cfg(
        *common[:2], "device=cpu", "eval.classifier=off", "train.steps=14", f"resume={straight.run_dir}"
    )
    run(cpu)
    assert load_checkpoint(straight.run_dir)["step"] == 14


@CUDA
def test_a_graphed_run_logs_what_an_eager_run_logs(make_cfg, capsys):
    common = ["objective=wgan", "device=cuda", "eval.classifier=off", "train.steps=10", "train.log_every=3"]
    graphed = run(make_cfg(*common))
    assert "note:" not in capsys.readouterr().err
    eager = run(make_cfg(*common, "train.cuda_graphs=false"))
    _means_close(
        {k: v for k, v in graphed.items() if k != "steps_per_sec"},
        {k: v for k, v in eager.items() if k != "steps_per_sec"},
    )


# --- gan-bench --cuda-graphs ------------------------------------------------------


def test_bench_graph_loop_counts_the_updates_its_replays_make(tmp_path):
    from gan_cli.bench.speed import bench_config, graph_loop

    cfg = bench_config(
        ["objective=wgan", "model.g_hidden=[32]", "model.d_hidden=[32]", "train.batch_size=16", "device=cpu"]
    )
    loop = graph_loop(Experiment(cfg))  # the CPU stand-in: same bookkeeping, no capture
    loop.warm(2)
    assert loop.time(3) > 0 and loop.updates == {"g": 3, "d": 15}


def test_bench_on_a_cpu_says_graphs_need_cuda(capsys):
    from gan_cli.commands.bench import main

    main(
        [
            "--steps",
            "1",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--configs",
            "mlp-wgan-b64",
            "--no-reference",
            "--device",
            "cpu",
            "--cuda-graphs",
        ]
    )
    out, err = capsys.readouterr()
    assert "gan-bench: note: CUDA graphs need a CUDA device (this is cpu); timing the eager loops only" in err
    assert "graph G steps/s" not in out and "mlp-wgan-b64" in out


@CUDA
def test_bench_times_graphs_beside_eager_steps(tmp_path, capsys):
    import json

    from gan_cli.commands.bench import main

    out = tmp_path / "bench.json"
    main(
        [
            "--steps",
            "3",
            "--rounds",
            "1",
            "--warmup",
            "1",
            "--configs",
            "mlp-wgan-b64,mlp-wgan-b64-compile",
            "--no-reference",
            "--device",
            "cuda",
            "--cuda-graphs",
            "--json",
            str(out),
        ]
    )
    text, err = capsys.readouterr()
    assert "graph G steps/s" in text and "graph/eager" in text
    assert "mlp-wgan-b64-compile: no CUDA graphs: train.compile=true" in err
    rows = {r["config"]: r for r in json.loads(out.read_text())["configs"]}
    assert rows["mlp-wgan-b64"]["graph_updates"] == rows["mlp-wgan-b64"]["updates"] == {"g": 3, "d": 15}
    assert "graph_g_steps_per_s" not in rows["mlp-wgan-b64-compile"]

"""Short real training runs of every objective, checking what the theory says."""

import math
from pathlib import Path

import pytest
import torch

from gan_cli.config.build import build_models
from gan_cli.data import load_sklearn_digits
from gan_cli.errors import UserError
from gan_cli.run.checkpoint import generator_from_checkpoint, load_checkpoint
from gan_cli.run.runner import run


@pytest.mark.parametrize(
    "objective,estimate",
    [("mse", "mse"), ("gan", "js_estimate"), ("wgan", "wasserstein_estimate"), ("cgan", "js_estimate")],
)
def test_each_objective_trains_and_reports_its_estimate(make_cfg, objective, estimate):
    cfg = make_cfg(f"objective={objective}")
    metrics = run(cfg)
    assert math.isfinite(metrics["loss/g"]) and math.isfinite(metrics[estimate])
    if objective != "mse":
        assert math.isfinite(metrics["loss/d"])
    state = load_checkpoint(cfg.run_dir)
    assert state["step"] == 20
    assert (state["discriminator"] is None) == (objective == "mse")


def test_wgan_keeps_every_critic_parameter_inside_the_clip_range(make_cfg):
    cfg = make_cfg("objective=wgan", "objective.clip_value=0.005", "optimizer.lr=1e-2")
    run(cfg)
    state = load_checkpoint(cfg.run_dir)
    _, D = build_models(state["config"], state["model_args"])
    D.load_state_dict(state["discriminator"])
    values = torch.cat([p.flatten() for p in D.parameters()])
    # A large learning rate pushes weights against the bound; none crosses it.
    assert values.abs().max().item() == pytest.approx(0.005)
    assert (values.abs() > 0.0049).float().mean().item() > 0.1


def test_wgan_reference_schedule_trains_the_critic_100_times_early():
    from gan_cli.objectives import WGAN

    wgan = WGAN(reference_schedule=True)
    assert [wgan.critic_steps_at(s) for s in (0, 24, 25, 499, 500, 501)] == [100, 100, 5, 5, 100, 5]
    assert WGAN().critic_steps_at(0) == 5


def _full_data_mse(cfg) -> float:
    state = load_checkpoint(cfg.run_dir)
    G = generator_from_checkpoint(state)
    targets = load_sklearn_digits().scaled()
    with torch.no_grad():
        return torch.nn.functional.mse_loss(G(state["objective"]["fixed_z"]), targets).item()


def test_mse_fixed_pairing_descends_toward_the_closed_form_minimum(make_cfg):
    common = [
        "objective=mse",
        "model=linear",
        "model.g_hidden=32",
        "objective.pairing=fixed",
        "latent.dim=64",
        "train.batch_size=256",
    ]
    analytic = make_cfg(*common, "objective.solver=analytic")
    minimum = run(analytic)["mse"]
    assert minimum == pytest.approx(_full_data_mse(analytic), rel=1e-4)

    start = make_cfg(*common, "train.steps=1")
    run(start)
    gd = make_cfg(*common, "train.steps=600", "optimizer.lr=3e-3", "train.log_every=100")
    run(gd)
    first, last = _full_data_mse(start), _full_data_mse(gd)
    # The closed form is the minimum; gradient descent closes 95% of the gap.
    print(f"closed form {minimum:.5f}  one step {first:.5f}  600 steps {last:.5f}")
    assert last >= minimum - 1e-5
    assert last - minimum < 0.05 * (first - minimum)


def test_mse_resample_collapses_to_the_data_mean(make_cfg):
    cfg = make_cfg("objective=mse", "train.steps=300", "optimizer.lr=1e-3", "train.log_every=100")
    run(cfg)
    G = generator_from_checkpoint(load_checkpoint(cfg.run_dir))
    data = load_sklearn_digits().scaled()
    mean = data.mean(0)
    with torch.no_grad():
        samples = G(torch.randn(256, 16))
    spread_of_data = ((data - mean) ** 2).sum((1, 2, 3)).mean().item()
    to_mean = ((samples - mean) ** 2).sum((1, 2, 3)).mean().item()
    diversity = samples.var(0).sum().item()
    # Every sample sits near the average digit; the data spreads 10x further.
    assert to_mean < 0.1 * spread_of_data
    assert diversity < 0.05 * spread_of_data


def test_cgan_needs_labels(make_cfg, tmp_path):
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (8, 8), color=i * 40).save(folder / f"{i}.png")
    cfg = make_cfg(
        "objective=cgan",
        "dataset=image_folder",
        f"dataset.path={folder}",
        "dataset.size=8",
        "dataset.channels=1",
        "train.batch_size=2",
    )
    with pytest.raises(UserError, match="conditional.*no class labels"):
        run(cfg)


def test_refuses_to_overwrite_a_finished_run(make_cfg):
    cfg = make_cfg("objective=gan", "train.steps=2")
    run(cfg)
    before = cfg.run_dir + "/checkpoints/last.pt"
    stamp = Path(before).read_bytes()
    with pytest.raises(UserError, match="already holds a run"):
        run(cfg)
    assert Path(before).read_bytes() == stamp


def test_the_meter_adds_sums_kept_elsewhere_from_a_source_it_reads_once():
    from gan_cli.training.meter import Meter

    meter = Meter()
    meter.add({"loss/d": torch.tensor(1.0), "loss/g": torch.tensor(2.0)})
    kept = {"loss/d": torch.tensor(5.0)}  # e.g. a graph's static sum of 2 values

    def source(m):
        if kept:
            m.add_sums(kept, {"loss/d": 2})
            kept["loss/d"].zero_()  # the source reuses its tensor: the meter keeps a copy
            kept.clear()

    meter.attach(source)
    meter.attach(source)  # once, however often attached
    assert meter.state_dict()["counts"] == {"loss/d": 3, "loss/g": 1}
    assert meter.means() == {"loss/d": 2.0, "loss/g": 2.0}
    meter.add({"loss/d": torch.tensor(float("nan"))})
    meter.add_sums({"loss/g": torch.tensor(float("inf"))}, {"loss/g": 4})
    assert meter.nonfinite() == ["loss/d", "loss/g"] and not meter.all_finite()


def test_one_rule_for_which_g_pictures_and_metrics_show(make_cfg):
    """eval.use_ema picks the moving average only where the run keeps one:
    the same rule for a live run and for a checkpoint's G."""
    from gan_cli.training.ema import shows_average
    from gan_cli.training.experiment import Experiment

    for use_ema in (True, False):
        for has_average in (True, False):
            config = {"eval": {"use_ema": use_ema}}
            assert shows_average(config, has_average) is (use_ema and has_average)
    ema = ["objective=gan", "train.ema=0.9", "train.ema_start=0"]
    cfg = make_cfg(*ema, "train.steps=2", "train.checkpoint_every=2")
    run(cfg)
    state = load_checkpoint(cfg.run_dir)
    average, trained = state["generator_ema"], state["generator"]
    key = "net.0.weight"
    assert not torch.equal(average[key], trained[key])
    for use_ema, shown in ((True, average), (False, trained)):
        state["config"]["eval"]["use_ema"] = use_ema
        assert torch.equal(generator_from_checkpoint(state).state_dict()[key], shown[key])
        exp = Experiment(make_cfg(*ema, f"eval.use_ema={use_ema}"))
        exp.restore(state)
        assert torch.equal(exp.sampling_generator.state_dict()[key], shown[key])

"""--truncation PSI (gan-sample, gan-eval): G fed PSI times its noise."""

from pathlib import Path

import pytest
import torch

from gan_cli.commands.evaluate import evaluate_checkpoint
from gan_cli.commands.evaluate import main as eval_main
from gan_cli.commands.sample import draw_batches
from gan_cli.commands.sample import main as sample_main
from gan_cli.latent import Latent
from gan_cli.models.inference import Truncated, generate
from gan_cli.run.checkpoint import generator_from_checkpoint, load_checkpoint
from gan_cli.run.runner import run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small conditional run on the 8x8 digits (about 20 s), trained far
    enough that truncation's trade shows; its checkpoint state."""
    from conftest import TINY

    from gan_cli.config.compose import compose_config

    run_dir = tmp_path_factory.mktemp("truncation") / "run"
    small = [
        "objective=cgan",
        "train.steps=400",
        "train.ema=0.99",
        "train.ema_start=100",
        "optimizer.lr=1e-3",
    ]
    wider = ["model.g_hidden=[128,128]", "model.d_hidden=[128]"]
    cfg = compose_config([*TINY, *small, *wider, f"run_dir={run_dir}"])
    run(cfg)
    return run_dir, load_checkpoint(run_dir)


def test_truncated_g_is_g_of_psi_times_z(trained):
    _, state = trained
    G = generator_from_checkpoint(state)
    z = torch.randn(16, G.latent_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(16) % 10
    assert torch.equal(generate(Truncated(G, 0.5), z, y), generate(G, 0.5 * z, y))


def test_gan_sample_draws_g_of_scaled_noise(trained):
    _, state = trained
    [(plain, labels)] = draw_batches(state, 32, seed=4)
    [(half, _)] = draw_batches(state, 32, seed=4, truncation=0.5)
    [(one, _)] = draw_batches(state, 32, seed=4, truncation=1.0)
    assert torch.equal(one, plain) and not torch.equal(half, plain)
    z = Latent.from_config(state["config"]["latent"], "cpu", 4, portable=True).sample(32)
    assert torch.equal(half, generate(generator_from_checkpoint(state), 0.5 * z, labels))
    # Pulled towards the prior's centre: the samples vary less.
    assert half.std(dim=0).mean() < plain.std(dim=0).mean()


def test_gan_eval_says_which_noise_it_scored(trained, capsys):
    run_dir, _ = trained
    eval_main([str(run_dir), "--truncation", "0.5", "--num-samples", "200"])
    assert capsys.readouterr().out.splitlines()[0].endswith("(step 400, G fed 0.5 times its noise)")


def test_gan_eval_trades_recall_for_precision_along_psi(trained):
    _, state = trained
    values = {psi: evaluate_checkpoint(state, num_samples=400, truncation=psi) for psi in (0.3, 1.0, 2.0)}
    assert values[1.0] == evaluate_checkpoint(state, num_samples=400)  # 1 is G's own
    precision = [values[psi]["eval/precision"] for psi in (0.3, 1.0, 2.0)]
    recall = [values[psi]["eval/recall"] for psi in (0.3, 1.0, 2.0)]
    # Below 1 sharper and less varied, above 1 the reverse, each by a clear margin.
    assert precision[0] > precision[1] + 0.05 > precision[2] + 0.05
    assert recall[0] + 0.2 < recall[1] < recall[2] - 0.1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--truncation", "0"], "--truncation must be a number > 0 (1 = G's own samples), got 0.0"),
        (["--truncation", "-1"], "--truncation must be a number > 0 (1 = G's own samples), got -1.0"),
        (["--truncation", "nan"], "--truncation must be a number > 0 (1 = G's own samples), got nan"),
        (["--truncation", "lots"], "argument --truncation: invalid float value: 'lots'"),
    ],
)
def test_bad_truncation_gets_one_line(trained, tmp_path, capsys, argv, message):
    run_dir, _ = trained
    for main, more in ((sample_main, ["--out", str(tmp_path / "s.npz")]), (eval_main, [])):
        with pytest.raises(SystemExit) as stopped:
            main([str(run_dir), *argv, *more])
        assert stopped.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and err[0].split(":")[1].strip() == "error", err
    assert not (tmp_path / "s.npz").exists()


def test_truncation_of_a_prior_that_is_not_normal_is_refused(tmp_path, capsys):
    from conftest import TINY

    from gan_cli.config.compose import compose_config

    run_dir = tmp_path / "uniform"
    run(
        compose_config(
            [*TINY, "objective=gan", "train.steps=2", "latent.distribution=uniform", f"run_dir={run_dir}"]
        )
    )
    with pytest.raises(SystemExit):
        sample_main([str(run_dir), "--truncation", "0.5", "--out", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "gan-sample: error: --truncation scales a normal prior's z; this run's latent.distribution is uniform"
    )
    assert not Path(tmp_path / "x.npz").exists()

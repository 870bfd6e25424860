"""Every option of every config group composes and instantiates."""

import pytest
import torch
from hydra.utils import instantiate

from gan_cli.config.build import build, build_models
from gan_cli.config.checks import validate
from gan_cli.config.compose import options
from gan_cli.errors import UserError
from gan_cli.objectives import Objective


def test_groups_ship_inside_the_package():
    # What the README's tables list, read from the installed package: every
    # option there is a YAML file here and the other way round.
    assert options("objective") == [
        "cgan",
        "fgan",
        "gan",
        "hinge",
        "lsgan",
        "mse",
        "rpgan",
        "wgan",
        "wgan_gp",
    ]
    assert options("model") == ["dcgan", "linear", "mlp", "resnet", "toy_mlp"]
    assert options("dataset") == [
        "celeba",
        "cifar10",
        "circles",
        "digits",
        "fashion_mnist",
        "grid25",
        "image_folder",
        "mnist",
        "mnist_subset",
        "moons",
        "ring8",
        "spiral",
        "stacked_mnist",
    ]
    assert options("optimizer") == ["adam", "adam_gp", "adam_no_momentum", "rmsprop", "sgd"]


def test_the_default_job_and_objective_wgan_as_algorithm_1(make_cfg):
    cfg = make_cfg(tiny=False)
    assert (
        cfg.objective.name,
        cfg.objective.conditional,
        cfg.dataset.name,
        cfg.model.name,
        cfg.optimizer.name,
    ) == ("cgan", True, "mnist_subset", "mlp", "adam_no_momentum")
    # Adam without momentum on the mean (docs/default_job.md), fused, for both nets.
    for net in (cfg.optimizer.g, cfg.optimizer.d):
        assert (net.lr, list(net.betas), net.fused) == (2e-4, [0.0, 0.99], True)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.ema, cfg.train.ema_start) == (
        8000,
        64,
        0.995,
        500,
    )
    validate(cfg)
    # objective=wgan is Algorithm 1 with its defaults, whatever the default job is.
    cfg = make_cfg("objective=wgan", tiny=False)
    assert (
        cfg.optimizer.name,
        cfg.optimizer.g.lr,
        cfg.optimizer.d.lr,
        cfg.objective.clip_value,
        cfg.train.batch_size,
        cfg.objective.critic_steps,
    ) == ("rmsprop", 5e-5, 5e-5, 0.01, 64, 5)
    validate(cfg)


@pytest.mark.parametrize("objective", options("objective"))
def test_objective_instantiates(make_cfg, objective):
    cfg = make_cfg(f"objective={objective}")
    validate(cfg)
    built = instantiate(cfg.objective)
    assert isinstance(built, Objective) and built.name == objective


@pytest.mark.parametrize(
    "objective,optimizer",
    [("wgan", "rmsprop"), ("gan", "adam"), ("cgan", "adam_no_momentum"), ("mse", "adam")],
)
def test_each_objective_brings_its_paper_optimizer_and_the_command_line_wins(make_cfg, objective, optimizer):
    assert make_cfg(f"objective={objective}").optimizer.name == optimizer
    assert make_cfg(f"objective={objective}", "optimizer=sgd").optimizer.name == "sgd"


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 64, 64)])
@pytest.mark.parametrize("classes", [0, 10])
def test_model_instantiates_for_each_shape(make_cfg, model, shape, classes):
    cfg = make_cfg(f"model={model}", tiny=False)
    if model == "resnet" and shape[1] == 28:  # SNGAN's nets: 32x32 and 64x64 only
        with pytest.raises(UserError, match="model=resnet needs square 32x32 or 64x64 images"):
            build_models(
                {"model": cfg.model}, {"data_shape": list(shape), "num_classes": classes, "latent_dim": 100}
            )
        return
    G, D = instantiate(cfg.model, data_shape=list(shape), num_classes=classes, latent_dim=100)
    y = torch.arange(4) % 10 if classes else None
    with torch.no_grad():
        x = G(torch.randn(4, 100), y)
        assert x.shape == (4, *shape) and D(x, y).shape == (4,)


@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_optimizer_instantiates_separately_for_g_and_d(make_cfg, optimizer):
    cfg = make_cfg(f"optimizer={optimizer}", "optimizer.d.lr=0.123")
    net = torch.nn.Linear(2, 2)
    opt_g = instantiate(cfg.optimizer.g)(net.parameters())
    opt_d = instantiate(cfg.optimizer.d)(net.parameters())
    assert opt_d.param_groups[0]["lr"] == 0.123
    assert opt_g.param_groups[0]["lr"] == cfg.optimizer.lr != 0.123


@pytest.mark.parametrize("dataset", ["mnist_subset", "digits"])
def test_bundled_datasets_instantiate(make_cfg, dataset):
    data = instantiate(make_cfg(f"dataset={dataset}").dataset)
    assert data.num_classes == 10 and len(data) > 1000


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_downloadable_datasets_compose_and_fail_clearly_without_files(make_cfg, tmp_path, dataset):
    cfg = make_cfg(f"dataset={dataset}", f"dataset.root={tmp_path}", "dataset.download=false")
    with pytest.raises(UserError, match="dataset=mnist_subset"):
        build(cfg.dataset)


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.batch_size=0", "train.batch_size must be a whole number >= 1, got 0"),
        ("eval.num_samples=5", "eval.num_samples must be a whole number >= 6, got 5"),
        ("train.steps=abc", "train.steps must be a whole number >= 0, got 'abc'"),
        # torch seeds nothing past 2**64 - 1; the run's own streams take seed + a few
        ("seed=-1", "seed must be a whole number >= 0, got -1"),
        (
            "seed=9223372036854775808",
            "seed must be a whole number <= 9223372036854775807, got 9223372036854775808",
        ),
        (
            "resume_allow=[train.ema]",
            "resume_allow is read only when a run continues (resume=true or resume=PATH)",
        ),
        (
            "resume=true resume_allow=train.ema",
            "resume_allow must be a list of config keys, e.g. resume_allow=[train.ema], got 'train.ema'",
        ),
        # A key the chosen builder does not take: a TypeError traceback after the folder was made.
        (
            "experiment=stacked_best model=mlp",
            "model.g_channels is not a setting of model=mlp "
            "(its settings: g_hidden, d_hidden, batch_norm, name, pack, spectral_norm)",
        ),
        (
            "objective=gan +objective.zz=1",
            "objective.zz is not a setting of objective=gan (its settings: name, critic_steps, "
            "generator_loss, conditional, pack, r1, r1_every, mode_seeking, r2)",
        ),
        (
            "dataset=ring8 +dataset.zz=1",
            "dataset.zz is not a setting of dataset=ring8 (its settings: name, std, arrows, eval_points)",
        ),
        ("optimizer.lr=-0.1", "optimizer.lr must be a number > 0, got -0.1"),  # the key the user sets
        ("optimizer.d.lr=0", "optimizer.d.lr must be a number > 0, got 0"),
        (
            "objective=gan optimizer.betas=[0.5]",
            "optimizer.betas must be two numbers in [0, 1), e.g. [0.5, 0.999], got [0.5]",
        ),
        (
            "objective=gan optimizer.g.betas=[0.5,1.0]",
            "optimizer.g.betas must be two numbers in [0, 1), e.g. [0.5, 0.999], got [0.5, 1.0]",
        ),
        (
            "objective=gan optimizer.betas=fast",
            "optimizer.betas must be two numbers in [0, 1), e.g. [0.5, 0.999], got 'fast'",
        ),
        (
            "optimizer=sgd optimizer.momentum=-1",
            "optimizer.g cannot be built from its settings: Invalid momentum value: -1",
        ),
        (
            "+optimizer.d.foo=1",
            "optimizer.d cannot be built from its settings: "
            "RMSprop.__init__() got an unexpected keyword argument 'foo'",
        ),
        ("objective.critic_steps=0", "objective.critic_steps must be a whole number >= 1, got 0"),
        ("device=tpu", "device must be one of auto, cpu, cuda, got 'tpu'"),
    ],
)
def test_validate_names_the_key_and_what_is_allowed(make_cfg, override, message):
    with pytest.raises(UserError) as info:
        validate(make_cfg(*override.split()))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model=dcgan", "model.g_channels=0"], "model.g_channels must be a whole number >= 1, got 0"),
        (["model=resnet", "model.d_channels=abc"], "model.d_channels must be a whole number >= 1, got 'abc'"),
        (["model.batch_norm=maybe"], "model.batch_norm must be one of true, false, got 'maybe'"),
        (["objective=hinge", "objective.conditional=maybe"], "objective.conditional must be one of true"),
        (["objective=wgan", "objective.reference_schedule=2"], "objective.reference_schedule must be one of"),
        (["dataset=mnist", "dataset.root=.", "dataset.download=yes"], "dataset.download must be one of true"),
    ],
)
def test_a_models_objectives_and_data_sets_own_settings_are_checked(make_cfg, overrides, message):
    with pytest.raises(UserError) as info:
        validate(make_cfg(*overrides, tiny=False))
    assert str(info.value).startswith(message)


# --- the keys conf/config.yaml gives every run are checked even where absent -----


def test_a_key_every_run_has_is_checked_and_may_not_go_missing(make_cfg):
    from omegaconf import open_dict

    with pytest.raises(UserError) as info:
        validate(make_cfg("objective.r1_every=0"))
    assert str(info.value) == "objective.r1_every must be a whole number >= 1, got 0"
    for key in ("train.ema", "eval", "distributed"):
        cfg = make_cfg()
        parent, _, leaf = key.rpartition(".")
        with open_dict(cfg):
            del (cfg[parent] if parent else cfg)[leaf]
        with pytest.raises(UserError) as info:
            validate(cfg)
        assert str(info.value).endswith("is missing from the config") and key in str(info.value)


# --- what needs the built data set: one function, called once ------------------


def test_the_checks_on_the_built_data_set(make_cfg):
    from gan_cli.config.checks import check_built_data
    from gan_cli.data import load_sklearn_digits
    from gan_cli.training.experiment import Experiment

    digits = load_sklearn_digits()  # 1,797 labelled 8x8 images
    with pytest.raises(UserError) as info:
        Experiment(make_cfg("train.batch_size=1798", "device=cpu"))
    assert str(info.value) == "train.batch_size=1798 is larger than the data set (1797 examples)"
    assert info.value.everywhere  # several processes: rank 0 alone reports it
    Experiment(make_cfg("train.batch_size=1797", "device=cpu"))  # a whole epoch in one batch
    cfg = make_cfg("train.batch_size=1000")
    with pytest.raises(UserError) as info:
        check_built_data(cfg, digits, build(cfg.objective), processes=2)
    assert str(info.value) == (
        "train.batch_size=1000 on 2 processes draws global batches of 2000, more than the "
        "data set's 1797 examples; lower train.batch_size"
    )
    check_built_data(make_cfg("train.batch_size=898"), digits, build(cfg.objective), processes=2)
    toy = make_cfg("dataset=moons", "objective=cgan")
    with pytest.raises(
        UserError, match=r"^objective=cgan is conditional but dataset moons has no class labels$"
    ):
        Experiment(toy)


# --- one way to build ---------------------------------------------------------------


def test_the_builders_build_what_the_config_names_and_surface_their_own_errors(make_cfg):
    from gan_cli.config.build import build_data, build_models, build_objective, build_optimizer
    from gan_cli.objectives import WGAN

    cfg = make_cfg()  # objective=wgan on the 8x8 digits
    data = build_data(cfg.dataset)
    assert len(data) == 1797 and list(data.shape) == [1, 8, 8]
    assert isinstance(build_objective(cfg.objective), WGAN)
    args = {"data_shape": [1, 8, 8], "num_classes": 0, "latent_dim": 16}
    G, D = build_models(cfg, args)
    assert (
        G(torch.zeros(3, 16), None).shape == (3, 1, 8, 8) and D(torch.zeros(3, 1, 8, 8), None).shape[0] == 3
    )
    opt = build_optimizer(cfg.optimizer.g, G.parameters())
    assert isinstance(opt, torch.optim.RMSprop) and opt.param_groups[0]["lr"] == cfg.optimizer.g.lr
    # A builder's own one line, not Hydra's wrapping of it (gan-sample, gan-eval).
    linear = make_cfg("model=linear", "model.g_hidden=[8,8]")
    with pytest.raises(UserError) as info:
        build_models(linear, args)
    assert (
        str(info.value) == "model.g_hidden for model=linear is one width (g has one hidden layer), got [8, 8]"
    )

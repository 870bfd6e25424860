"""The one place a composed config's values are checked, before anything is
built: each failure is one UserError naming the key, what it holds and what
is allowed. Components state their string choices (`choices` on the class or
function a `_target_` names); the ranges and cross-key rules live here."""

import numbers
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gan_cli.config.build import build_optimizer
from gan_cli.errors import UserError
from gan_cli.metrics.manifold import FEWEST_POINTS
from gan_cli.models.augment import POLICIES
from gan_cli.rng import MAX_SEED

DEVICES = ("auto", "cpu", "cuda")
NONFINITE_POLICIES = ("stop", "rollback")
# Keys that may differ when a run is resumed: where, how long and on how many
# processes it runs, how often it reports, and what is measured (evaluation and
# pictures draw from their own generators, so none of these changes what is trained).
RESUMABLE_CHANGES = (
    "resume",
    "resume_allow",
    "run_dir",
    "device",
    "train.steps",
    "eval",
    "train.cuda_graphs",
    "train.log_every",
    "train.sample_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "distributed",
    # where decoded images are read from (data/cache.py), never which pixels;
    # absent from image_folder runs saved before them
    "dataset.cache_dir",
    "dataset.memory_budget_gb",
    "dataset.on_bad_file",
)
EVAL_CLASSIFIER = ("auto", "off")
# The samplers that refine G's samples (evaluation/refine.py): eval.sampler, gan-sample --sampler.
# All but jacobian (evaluation/jacobian.py, which reads G alone) read D.
SAMPLERS = ("drs", "mh", "threshold", "jacobian")
READS_DISCRIMINATOR = ("drs", "mh", "threshold")
LATENT_DISTRIBUTIONS = ("normal", "uniform", "mixture")
PRECISIONS = ("auto", "fp32", "bf16")
D_NORMS = ("batch", "layer", "none")

# Keys added after runs were first checkpointed, with the value that
# reproduces the runs saved before them ("off", mostly). Read only by
# gan_cli.run.checkpoint.upgrade, which fills them into a saved config that
# lacks them once, as the checkpoint is loaded: every reader of a checkpoint's
# config (resuming, gan-sample, gan-eval) then finds every key. A new key of
# conf/config.yaml that changes what is trained belongs here too.
ADDED_KEYS = {
    "train.ema": 0.0,
    "train.ema_start": 0,
    "eval.use_ema": True,
    "model.spectral_norm": False,
    "objective.pack": 1,
    "objective.r1": 0.0,
    "objective.r1_every": 1,
    "objective.mode_seeking": 0.0,
    "objective.r2": 0.0,
    "train.lr_decay": 0.0,
    # read by the mixture prior only, which no run had before
    "latent.components": 1000,
    "latent.component_std": 0.1,
    # gan-eval scores a run saved before evaluation existed as today's runs
    "eval.num_samples": 5000,
    "eval.cache_dir": None,
    "eval.inception": None,
    "eval.sampler": None,
    "eval.drs_percentile": 95.0,
    "eval.mh_chain": 100,
    "eval.threshold_percentile": 1.0,
    "eval.jacobian_drop": 5.0,
    "eval.refine_steps": 0,  # refined metrics of runs saved before it read D as training left it
}


def added_dataset_keys(config: dict) -> dict:
    """In place, and returned: a saved config's data set given the keys its
    loader names in `added` (a data set's own ADDED_KEYS, e.g. stacked_mnist's
    size: 28) where it lacks them. Resuming such a run is then no change, and
    changing such a key on resume still is one (unlike RESUMABLE_CHANGES,
    which the keys that decide pixels must not join)."""
    dataset = config.get("dataset")
    name = dataset.get("_target_") if isinstance(dataset, dict) else None
    if not name:
        return config
    from hydra.utils import get_object

    try:
        loader = get_object(name)
    except Exception:  # a loader that moved: nothing to fill, the run's load says so
        return config
    for key, value in getattr(loader, "added", {}).items():
        dataset.setdefault(key, value)
    return config


# Keys conf/config.yaml gives every run (beside those validate checks in turn).
SHARED_WHOLE = {
    "objective.pack": 1,
    "latent.components": 1,
    "objective.r1_every": 1,
    "train.ema_start": 0,
    "distributed.timeout_s": 1,
}
SHARED_POSITIVE = ("latent.component_std",)
SHARED_AT_LEAST_ZERO = ("objective.r1", "objective.r2", "objective.mode_seeking")
SHARED_BOOLEANS = ("train.compile", "eval.use_ema", "distributed.sync_batch_norm")

# An objective's, a data set's or a model's own keys, present in some
# configs only: checked where they exist.
WHOLE = {
    "objective.critic_steps": 1,
    "dataset.arrows": 0,
    "dataset.eval_points": FEWEST_POINTS,  # precision & recall read that many
    "dataset.eval_samples": FEWEST_POINTS,
    "dataset.size": 2,
    "model.g_channels": 1,
    "model.d_channels": 1,
}
POSITIVE = ("objective.clip_value", "dataset.std")
AT_LEAST_ZERO = ("objective.gp_weight",)
BOOLEANS = (
    "model.spectral_norm",
    "model.batch_norm",
    "objective.conditional",
    "objective.reference_schedule",
    "dataset.download",
)
NUMBERS = ("objective.a", "objective.b", "objective.c")
WIDTHS = ("model.g_hidden", "model.d_hidden")


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        if part not in node:
            raise UserError(f"{key} is missing from the config")
        node = node[part]
    return node


def _has(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default=None) is not None


def _real(value) -> bool:
    """A real number, not a bool (which Python counts as one)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _whole(cfg, key: str, minimum: int, maximum: int | None = None):
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key} must be a whole number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise UserError(f"{key} must be a whole number <= {maximum}, got {value!r}")


def _number(cfg, key: str, minimum: float | None = None, strict: bool = False):
    value = _get(cfg, key)
    ok = _real(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        what = "a number" if minimum is None else f"a number {'>' if strict else '>='} {minimum:g}"
        raise UserError(f"{key} must be {what}, got {value!r}")


def _real_in(cfg, key: str, within, what: str):
    """A real number (not a bool) for which within(value) holds."""
    value = _get(cfg, key)
    if not _real(value) or not within(value):
        raise UserError(f"{key} must be {what}, got {value!r}")


def _one_of(cfg, key: str, allowed):
    value = _get(cfg, key)
    if value not in allowed:
        shown = ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
        raise UserError(f"{key} must be one of {shown}, got {value!r}")


def _widths(cfg, key: str):
    value = _get(cfg, key)
    widths = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        ok = len(widths) > 0 and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)
    except TypeError:
        ok = False
    if not ok:
        raise UserError(f"{key} must be a list of positive widths, got {_shown(value)!r}")


def target_of(node):
    """The class or function a config node's `_target_` names, or None."""
    from hydra.utils import get_object

    name = node.get("_target_") if isinstance(node, DictConfig) else None
    if not name:
        return None
    try:
        return get_object(name)
    except Exception:
        raise UserError(f"{name} (a _target_) cannot be imported") from None


def validate(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"{missing[0]} needs a value: add {missing[0]}=... to the command line")
    _whole(cfg, "seed", 0, MAX_SEED)
    _whole(cfg, "latent.dim", 1)
    _one_of(cfg, "latent.distribution", LATENT_DISTRIBUTIONS)
    _whole(cfg, "train.steps", 0)
    _whole(cfg, "train.batch_size", 1)
    for key in (
        "log_every",
        "sample_every",
        "eval_every",
        "checkpoint_every",
        "keep_checkpoints",
        "grid_columns",
    ):
        _whole(cfg, f"train.{key}", 1)
    if cfg.train.cpu_threads != "auto":
        _whole(cfg, "train.cpu_threads", 1)

    allow = _get(cfg, "resume_allow")
    if not OmegaConf.is_list(allow) or not all(isinstance(key, str) and key for key in allow):
        raise UserError(
            f"resume_allow must be a list of config keys, e.g. resume_allow=[train.ema], got {allow!r}"
        )
    if len(allow) and not resumes(cfg.resume):
        raise UserError("resume_allow is read only when a run continues (resume=true or resume=PATH)")

    augment = _get(cfg, "train.augment")
    if not OmegaConf.is_list(augment) or any(a not in POLICIES for a in augment):
        raise UserError(
            f"train.augment must be a list from {', '.join(POLICIES)}, got "
            f"{OmegaConf.to_container(augment) if OmegaConf.is_config(augment) else augment!r}"
        )
    _one_of(cfg, "train.precision", PRECISIONS)
    _one_of(cfg, "train.channels_last", ("auto", True, False))
    _optimizers(cfg)
    _one_of(cfg, "train.on_nonfinite", NONFINITE_POLICIES)
    _real_in(cfg, "train.rollback_lr_factor", lambda v: 0 < v < 1, "a number in (0, 1)")
    _whole(cfg, "train.max_rollbacks", 0)
    _real_in(cfg, "train.ema", lambda v: 0 <= v < 1, "a decay in [0, 1) (0 = off)")
    _real_in(
        cfg,
        "train.lr_decay",
        lambda v: 0 <= v <= 1,
        "a fraction of train.steps in [0, 1] (0 = constant learning rates)",
    )
    _one_of(cfg, "eval.classifier", EVAL_CLASSIFIER)
    _whole(cfg, "eval.num_samples", FEWEST_POINTS)  # precision & recall read that many
    if cfg.eval.inception is not None:  # a missing or wrong file fails now, not at the first evaluation
        check_inception_weights(cfg.eval.inception)
    _eval_sampler(cfg)
    _one_of(cfg, "train.cuda_graphs", ("auto", True, False))
    _one_of(cfg, "device", DEVICES)
    _component_values(cfg)
    _combinations(cfg)


def _optimizer_key(cfg: DictConfig, net: str, key: str) -> str:
    """The key a user sets for `optimizer.<net>.<key>`: `optimizer.<key>` where
    the net's value is that one's (`${..key}`), which sets both nets."""
    raw = OmegaConf.to_container(cfg.optimizer[net], resolve=False).get(key)
    return f"optimizer.{key}" if raw == f"${{..{key}}}" else f"optimizer.{net}.{key}"


def _optimizers(cfg: DictConfig) -> None:
    """Each net's optimizer: its learning rate, Adam's betas, and then the
    optimizer itself built over one dummy parameter, so that whatever else
    torch.optim refuses (a negative momentum, a key it does not take) is one
    line now, not a traceback after the run's folder is made."""
    for net in ("g", "d"):
        node = _get(cfg, f"optimizer.{net}")
        lr = node.get("lr")
        if not _real(lr) or lr <= 0:
            raise UserError(f"{_optimizer_key(cfg, net, 'lr')} must be a number > 0, got {lr!r}")
        if "betas" in node:
            betas = node.betas
            betas = OmegaConf.to_container(betas) if OmegaConf.is_config(betas) else betas
            pair = isinstance(betas, list) and len(betas) == 2
            if not (pair and all(_real(b) and 0 <= b < 1 for b in betas)):
                raise UserError(
                    f"{_optimizer_key(cfg, net, 'betas')} must be two numbers in [0, 1), e.g. [0.5, 0.999], "
                    f"got {betas!r}"
                )
        try:
            build_optimizer(node, [torch.zeros(1, requires_grad=True)])
        except UserError:
            raise
        except Exception as exc:
            cause = exc.__cause__ or exc  # Hydra wraps what the optimizer raised
            raise UserError(f"optimizer.{net} cannot be built from its settings: {cause}") from None


def _eval_sampler(cfg: DictConfig) -> None:
    """eval.sampler and its settings: a sampler gan-sample offers, for a run with a D."""
    method = _get(cfg, "eval.sampler")
    if method is not None and method not in SAMPLERS:
        raise UserError(f"eval.sampler must be one of {', '.join(SAMPLERS)} or null (off), got {method!r}")
    _real_in(cfg, "eval.drs_percentile", lambda v: 0 < v < 100, "a percentile in (0, 100)")
    _real_in(cfg, "eval.threshold_percentile", lambda v: 0 < v < 100, "a percentile in (0, 100)")
    _real_in(cfg, "eval.jacobian_drop", lambda v: 0 <= v < 100, "a percentage in [0, 100)")
    _whole(cfg, "eval.mh_chain", 1)
    _whole(cfg, "eval.refine_steps", 0)
    if method is not None:
        objective = cfg.objective
        has_d = getattr(target_of(objective), "uses_discriminator", True)
        refuse_sampler_without_discriminator(method, f"eval.sampler={method}", objective.name, has_d)


def refuse_sampler_without_discriminator(
    method: str, setting: str, objective: str, has_discriminator: bool
) -> None:
    """drs, mh and threshold read D as a log density ratio, so a run without
    one (objective=mse) has nothing for them to read: the one line for a
    run's eval.sampler and for gan-sample --sampler alike. `setting` is what
    the user gave, e.g. "eval.sampler=drs" or "--sampler drs"."""
    if method in READS_DISCRIMINATOR and not has_discriminator:
        raise UserError(f"{setting} reads the discriminator, and this run has none (objective {objective})")


def check_data(cfg: DictConfig) -> None:
    """The data set's files are on disk (fetched now where the config allows
    it), else the loader's own one line: what a run checks before Hydra makes
    its folder. A loader whose files can be missing names a `ready` function
    beside it (as `choices`) taking the loader's arguments; loaders of bundled
    or drawn data have none."""
    check = getattr(target_of(cfg.dataset), "ready", None)
    if check is not None:
        check(**{key: value for key, value in cfg.dataset.items() if key != "_target_"})


def check_built_data(cfg: DictConfig, data, objective, processes: int) -> None:
    """The rules that need the built data set (its labels, shape and size)
    besides the config: checked once, where a run has built its data set and
    objective, before anything draws from them. `processes`: how many share
    each global batch of processes x train.batch_size."""
    if objective.conditional and not data.num_classes:
        raise UserError(
            f"objective={objective.name} is conditional but dataset {data.name} has no class labels"
        )
    # A data set of fixed size (not drawn afresh) must hold a whole global batch.
    batch, total = cfg.train.batch_size, cfg.train.batch_size * processes
    if hasattr(data, "__len__") and total > len(data):
        if processes == 1:
            raise UserError(f"train.batch_size={batch} is larger than the data set ({len(data)} examples)")
        raise UserError(
            f"train.batch_size={batch} on {processes} processes draws global batches "
            f"of {total}, more than the data set's {len(data)} examples; lower train.batch_size"
        )
    if cfg.train.augment and len(data.shape) != 3:
        raise UserError(
            f"train.augment transforms images; dataset {data.name} gives "
            f"points of shape {list(data.shape)}: leave train.augment=[]"
        )


def _component_values(cfg: DictConfig) -> None:
    """The keys every objective, data set and model shares, then those each
    brings, where present."""
    for key, minimum in SHARED_WHOLE.items():
        _whole(cfg, key, minimum)
    for key in SHARED_POSITIVE:
        _number(cfg, key, 0, strict=True)
    for key in SHARED_AT_LEAST_ZERO:
        _number(cfg, key, 0)
    for key in SHARED_BOOLEANS:
        _one_of(cfg, key, (True, False))
    for key, minimum in WHOLE.items():
        if _has(cfg, key):
            _whole(cfg, key, minimum)
    for key in POSITIVE:
        if _has(cfg, key):
            _number(cfg, key, 0, strict=True)
    for key in AT_LEAST_ZERO:
        if _has(cfg, key):
            _number(cfg, key, 0)
    for key in NUMBERS:
        if _has(cfg, key):
            _number(cfg, key)
    for key in BOOLEANS:
        if _has(cfg, key):
            _one_of(cfg, key, (True, False))
    for key in WIDTHS:
        if _has(cfg, key):
            _widths(cfg, key)
    if _has(cfg, "model.d_norm") and _get(cfg, "model.d_norm") not in (True, False):
        _one_of(cfg, "model.d_norm", D_NORMS)
    for group in ("objective", "dataset", "model"):
        target = target_of(cfg[group])
        _takes_every_key(cfg, group, target)
        for key, allowed in getattr(target, "choices", {}).items():
            if _has(cfg, f"{group}.{key}"):
                _one_of(cfg, f"{group}.{key}", allowed)


def _takes_every_key(cfg: DictConfig, group: str, target) -> None:
    """Every key of a group's node is an argument of the builder its _target_
    names (an experiment's model.g_channels left under model=mlp, say), or the
    build would end in a TypeError traceback after the run folder is made."""
    parameters = _settings_of(target) if target is not None else None
    if parameters is None:  # takes anything
        return
    node = cfg[group]
    for key in node:
        if key != "_target_" and key not in parameters:
            # Not listed: what the code passes itself (a model's data shape, ...).
            takes = ", ".join(k for k, p in parameters.items() if p.default is not p.empty or k in node)
            chosen = node.get("name") or node._target_
            raise UserError(f"{group}.{key} is not a setting of {group}={chosen} (its settings: {takes})")


def _settings_of(target) -> dict | None:
    """The keyword arguments a builder takes: a function's, or a class's
    __init__ with those of the base classes its **kwargs go on to; None
    where **kwargs reach no closed signature."""
    import inspect

    found = {}
    inits = (
        [vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)]
        if inspect.isclass(target)
        else [target]
    )
    for init in inits:
        parameters = inspect.signature(init).parameters
        for key, parameter in parameters.items():  # a subclass's default wins
            if key != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                found.setdefault(key, parameter)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return found
    return None


def _combinations(cfg: DictConfig) -> None:
    """Values that are fine alone but not together."""
    o, d = cfg.objective, cfg.dataset
    if "a" in o and "b" in o and o.a == o.b:
        raise UserError(
            f"objective.a and objective.b must differ (the codes for fake and real), both are {o.a!r}"
        )
    if o.get("solver") == "analytic":
        if o.get("pairing") != "fixed":
            raise UserError(
                "objective.solver=analytic needs objective.pairing=fixed "
                "(with fresh z every step there is no fixed problem to solve)"
            )
        if cfg.model.get("name") != "linear" or o.get("conditional"):
            raise UserError("objective.solver=analytic needs model=linear (unconditional)")
    if o.get("pairing") == "fixed" and getattr(target_of(d), "streaming", False):
        raise UserError(
            f"dataset={d.name} draws fresh points every batch, so there are no "
            f"fixed examples to pair; use objective.pairing=resample"
        )
    if cfg.distributed.sync_batch_norm and not _cuda_run(cfg.device):
        raise UserError(
            "distributed.sync_batch_norm=true needs CUDA (SyncBatchNorm does not "
            "run on CPU); leave it false on a CPU run"
        )
    pack = o.pack
    if not getattr(target_of(o), "uses_discriminator", True):
        shapes_d = {  # settings that act on D (or, mode seeking, on D's verdict on G)
            "objective.pack": pack != 1,
            "objective.r1": bool(o.r1),
            "objective.r2": bool(o.r2),
            "objective.mode_seeking": bool(o.mode_seeking),
            "train.augment": len(cfg.train.augment) > 0,
            "model.spectral_norm": cfg.model.get("spectral_norm") is True,
        }
        if given := [f"{key}={_shown(_get(cfg, key))}" for key, used in shapes_d.items() if used]:
            verb = "does" if len(given) == 1 else "do"
            raise UserError(
                f"objective={o.name} has no discriminator, so {', '.join(given)} {verb} not apply"
            )
    batch = cfg.train.batch_size
    if batch < 2 and cfg.model.get("batch_norm") is True and "g_hidden" in cfg.model:
        raise UserError(  # a conv G's batch norm also averages over each picture's pixels
            f"train.batch_size={batch} is too small for batch norm in the MLP's G (model.batch_norm=true): "
            f"it normalises each unit over the batch; use 2 or more, or model.batch_norm=false"
        )
    if batch < 2 and o.mode_seeking:
        raise UserError(
            f"objective.mode_seeking compares pairs of G's samples; train.batch_size={batch} has none"
        )
    if cfg.train.batch_size % pack:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size} is not divisible by "
            f"objective.pack={pack}: D judges whole packs of {pack} samples"
        )
    batch_norm_critic = _has(cfg, "model.d_norm") and _get(cfg, "model.d_norm") in (True, "batch")
    if batch_norm_critic and not getattr(target_of(o), "critic_batch_norm", True):
        raise UserError(
            f"objective={o.name} needs a critic without batch norm (its penalty "
            f"is per sample); add model.d_norm=layer (or none), as "
            f"experiment=wgan_gp_mnist does"
        )


def _shown(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _cuda_run(device: str) -> bool:
    if device == "auto":
        import torch  # late: only this check needs it

        return torch.cuda.is_available()
    return device == "cuda"


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        flat = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def resumes(resume) -> bool:
    """Whether a `resume` setting continues a run: true or a path, not false."""
    return resume not in (False, None, "false", "")


def changed_keys(saved: dict, current: dict, allowed: list[str]) -> list[str]:
    """Dotted keys whose values differ, less those allowed to change on resume
    (a listed key allows everything under it). `saved` is a checkpoint's
    config as gan_cli.run.checkpoint.load_checkpoint gives it: keys added
    since it was written already filled in with the values it ran with.
    An allowed name that is no key of either config is refused: a typo
    would otherwise allow nothing, silently."""
    old, new = _flatten(saved), _flatten(current)
    keys = old.keys() | new.keys()
    unknown = [a for a in allowed if not any(k == a or k.startswith(a + ".") for k in keys)]
    if unknown:
        raise UserError(f"resume_allow=[{','.join(unknown)}]: no such key in the run's config")
    free = [*RESUMABLE_CHANGES, *allowed]
    return sorted(
        k
        for k in keys
        if old.get(k, "<absent>") != new.get(k, "<absent>")
        and not any(k == a or k.startswith(a + ".") for a in free)
    )


def parse_override(text: str) -> tuple[str, str] | None:
    """`key=value` of a command-line override as (key, value); None for a
    deletion (~key) or a text without '='. A leading + (add a key) is dropped."""
    key, sep, value = str(text).partition("=")
    if not sep or key.startswith("~"):
        return None
    return key.lstrip("+"), value


# Keys that only torch-fidelity's Inception-v3 state dict has.
INCEPTION_KEYS = ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight")


def check_inception_weights(path, setting: str | None = None) -> Path:
    """eval.inception / gan-eval --inception: the weights file, or one line
    saying why it will not do (read without running code: weights_only).
    `setting`: how the user gave it (default eval.inception=PATH)."""
    setting = setting or f"eval.inception={path}"
    file = Path(path).expanduser()
    if not file.is_file():
        what = "a folder" if file.is_dir() else "no such file"
        raise UserError(
            f"{setting}: {what} (give the Inception weights file, e.g. pt_inception-2015-12-05-6726825d.pth)"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, pickled code
        raise UserError(f"{setting}: not a readable weights file ({type(exc).__name__})") from None
    missing = [k for k in INCEPTION_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise UserError(f"{setting}: not torch-fidelity's Inception-v3 weights (no {missing[0]})")
    return file

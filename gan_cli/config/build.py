"""The one way to build what a config names: the data set, the objective,
G and D, the optimizers (hydra.utils.instantiate on their `_target_`).
Training, checkpoint readers, gan-eval, gan-classifier and gan-bench all go
through these, so a builder's own UserError reaches the user as one line
whichever command built it."""

import functools

import torch
from hydra.utils import instantiate

from gan_cli.errors import UserError, user_error_in
from gan_cli.optimizers import without_dynamo_import


def build(node, **kwargs):
    """hydra.utils.instantiate, with our own UserError surfacing as itself."""
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:
        found = user_error_in(exc)
        if found is not None:
            raise found from None
        raise


def build_data(dataset_cfg, **kwargs):
    """The data set a `dataset` node names; kwargs override its keys
    (split="test" loads the held-out split)."""
    return build(dataset_cfg, **kwargs)


def build_objective(objective_cfg):
    """The Objective an `objective` node names."""
    return build(objective_cfg)


def build_models(config, model_args: dict):
    """(G, D) from a config (composed, or a checkpoint's resolved one) and
    the data facts recorded at training time: data_shape, num_classes,
    latent_dim and, when packing, pack."""
    return build(config["model"], **model_args)


def load_weights(net, weights: dict, what: str) -> None:
    """net.load_state_dict(weights), where `net` (a module, or G's average)
    was built from the config saved beside `weights` in a checkpoint: weights
    of other shapes or names (another gan-cli version's nets, or edited) are
    one line naming `what` ("G", "D", "G's moving average"), not torch's
    traceback."""
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines or [type(exc).__name__])[0]
        raise UserError(
            f"{what} in this checkpoint does not fit the net its config builds "
            f"(written by another version of gan-cli, or edited): {detail}"
        ) from None


def build_optimizer(optimizer_cfg, parameters):
    """The optimizer an `optimizer.g` or `optimizer.d` node names, over
    `parameters`; a torch.optim class is built as its `without_dynamo_import`
    subclass (the same updates, bit for bit)."""
    factory = build(optimizer_cfg)
    cls = getattr(factory, "func", None)
    if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
        factory = functools.partial(without_dynamo_import(cls), *factory.args, **factory.keywords)
    return factory(parameters)

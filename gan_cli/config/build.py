"""The one way to build what a config names: the data set, the objective,
G and D, the optimizers (hydra.utils.instantiate on their `_target_`)."""

from hydra.utils import instantiate

from gan_cli.errors import user_error_in


def build(node, **kwargs):
    """hydra.utils.instantiate, with our own UserError surfacing as itself."""
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:
        found = user_error_in(exc)
        if found is not None:
            raise found from None
        raise


def build_models(config: dict, model_args: dict):
    """(G, D) from a resolved config and the data facts recorded at training time."""
    return instantiate(config["model"], **model_args)

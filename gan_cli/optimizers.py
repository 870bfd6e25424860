"""torch.optim's optimizers as a run uses them: the same updates, bit for
bit, without the torch._dynamo import (about 2 s of start-up) that torch's
wrappers around an optimizer's methods do on their first call."""

import functools
import inspect
import sys

import torch


def _dynamo_loaded() -> bool:
    return "torch._dynamo" in sys.modules


def _below_step_hooks(step):
    """An optimizer class's step without the wrapper that runs the step hooks
    (torch adds it to the class when its first instance is made)."""
    while getattr(step, "hooked", False):
        step = step.__wrapped__
    return step


@functools.cache
def without_dynamo_import(cls: type) -> type:
    """`cls` (a torch.optim optimizer) whose step, zero_grad, add_param_group,
    state_dict and load_state_dict skip torch's wrappers around them. Those
    wrappers import torch._dynamo on their first call, about 2 s of a run's
    start-up, only to keep a torch.compile tracer out of these functions; a
    process that never imported torch._dynamo has no tracer. Once something
    imports it (train.compile), torch's own wrapped methods run."""
    if cls.__dict__.get("eager_only_of") is not None:
        return cls

    def unwrapped(name):
        raw = inspect.unwrap(getattr(cls, name))

        def method(self, *args, **kwargs):
            if _dynamo_loaded():
                return getattr(super(subclass, self), name)(*args, **kwargs)
            return raw(self, *args, **kwargs)

        return functools.wraps(raw)(method)

    def step(self, closure=None):
        # This step is itself wrapped in torch's step hooks (the optimizer's
        # constructor does that), so it calls cls's step below its own hooks:
        # otherwise a hook would run twice once any plain cls exists.
        if _dynamo_loaded():
            return _below_step_hooks(cls.step)(self, closure)
        # what torch's step wrapper does besides the tracer: no autograd graph
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            return raw_step(self, closure)

    raw_step = inspect.unwrap(cls.step)
    names = ("zero_grad", "add_param_group", "state_dict", "load_state_dict")
    body = {name: unwrapped(name) for name in names}
    body.update(step=step, eager_only_of=cls, __doc__=cls.__doc__)
    subclass = type(cls.__name__, (cls,), body)
    subclass.__module__ = __name__
    subclass.__qualname__ = f"without_dynamo_import.{cls.__name__}"
    return subclass

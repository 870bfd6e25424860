"""run(cfg): build the experiment a config names (or resume one), train it on
a cadence of logs, pictures, evaluations and checkpoints, and return the final
metrics. Everything a later command needs goes into the run dir."""

import copy
import json
import signal
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_cli import cuda_graphs
from gan_cli.checkpoint import Checkpointer, find_checkpoint, load_checkpoint
from gan_cli.config import changed_keys, validate
from gan_cli.errors import UserError
from gan_cli.experiment import Experiment
from gan_cli.monitor import Meter, Monitor, run_hparams


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the run stopped after a checkpoint."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum


class NonFinite(Exception):
    def __init__(self, step: int, what: str):
        super().__init__(f"{what} at step {step}")
        self.step = step


class StopOnSignal:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second
    one stops at once."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:          # not the main thread (e.g. a launcher's worker)
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _resume_source(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to continue from, or None for a fresh run."""
    resume = cfg.resume
    if resume in (False, None, "false", ""):
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise UserError(f"{run_dir} already holds a run (checkpoints/last.pt); continue it "
                            f"with resume=true, or choose another hydra.run.dir")
        return None
    if resume is True or resume == "true":
        if not (run_dir / "checkpoints" / "last.pt").exists():
            raise UserError(f"resume=true but {run_dir} holds no checkpoints/last.pt; "
                            f"give the run with hydra.run.dir=... or resume=PATH")
        return run_dir / "checkpoints" / "last.pt"
    return find_checkpoint(resume)


def _run_dir_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def run(cfg: DictConfig) -> dict[str, float]:
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    source = _resume_source(cfg, run_dir)
    state = load_checkpoint(source) if source is not None else None
    exp = Experiment(cfg)
    if state is not None:
        run_dir = _run_dir_of(source)
        # exp.config is the config as built (objectives may adjust the model).
        changed = changed_keys(state["config"], exp.config, allowed=list(cfg.resume_allow))
        if changed:
            raise UserError(f"cannot resume {source}: the config differs in {', '.join(changed)}; "
                            f"restore them, or allow with resume_allow=[{','.join(changed)}]")
    start = exp.restore(state) if state else 0
    steps = cfg.train.steps if exp.objective.trains else 0
    if start > steps:
        raise UserError(f"the checkpoint is at step {start}, past train.steps={steps}")
    if state:
        print(f"resuming {run_dir} at step {start} of {steps}", file=sys.stderr)
    return Session(exp, run_dir, start, steps, state).train()


class Session:
    """One pass of training over [start, steps) with its cadence and policies."""

    def __init__(self, exp: Experiment, run_dir: Path, start: int, steps: int, state: dict | None):
        t = exp.cfg.train
        self.exp, self.t, self.run_dir, self.start, self.steps = exp, t, run_dir, start, steps
        self.checkpointer = Checkpointer(run_dir / "checkpoints", t.keep_checkpoints)
        self.meter = Meter()
        if state:
            self.meter.load_state_dict(state.get("meter", {}))
        self.final: dict[str, float] = {}
        if state and (run_dir / "metrics.json").exists():
            self.final.update(json.loads((run_dir / "metrics.json").read_text()))
        self.monitor = Monitor(run_dir, steps, start_step=start)
        self.stop = StopOnSignal()
        self.rollbacks = 0
        # Without a checkpoint yet, a rollback returns to the initial state.
        self.initial = (copy.deepcopy(exp.snapshot(start, self.meter.state_dict()))
                        if t.on_nonfinite == "rollback" else None)
        # loop.train itself, or the same steps replayed as CUDA graphs.
        self.train_steps = cuda_graphs.trainer(exp.cfg, exp.parts, exp.device)

    def train(self) -> dict[str, float]:
        exp = self.exp
        closed_form_loss = getattr(exp.objective, "closed_form_loss", None)
        if closed_form_loss is not None:
            self.final["mse"] = closed_form_loss
            self.monitor.scalars(0, self.final, throughput=False)
        try:
            with self.stop:
                if self.steps == 0:                  # closed form, or nothing to train
                    self.show(0)
                    self.evaluate(0)
                    self.save(0)
                step = self.start
                while step < self.steps:
                    try:
                        self.train_steps(exp.parts, step, self.steps, self.meter, self.after_step)
                        step = self.steps
                    except NonFinite as bad:
                        step = self.recover(bad)
                exp.data.finish(self.run_dir)         # e.g. the toys' evolution.gif
            # HPARAMS tab: the run's settings against its final metrics.
            self.monitor.hparams(run_hparams(exp.cfg), self.final, self.steps)
        finally:
            self.monitor.close()
        (self.run_dir / "metrics.json").write_text(json.dumps(self.final, indent=2) + "\n")
        return self.final

    # --- cadence -------------------------------------------------------------
    def after_step(self, step: int) -> None:
        t, last = self.t, step == self.steps
        if step % t.log_every == 0 or last:
            self.log(step)
        if step % t.sample_every == 0 or last:
            self.show(step)
        if step % t.eval_every == 0 or last:
            self.evaluate(step)
        if step % t.checkpoint_every == 0 or last:
            self.save(step, keep_step_file=step % t.checkpoint_every == 0)
        if self.stop.signum is not None:
            self.interrupt(step)

    def log(self, step: int) -> None:
        if not self.meter.all_finite():
            raise NonFinite(step, self._nonfinite_names())
        values = self.meter.means()
        rate = self.monitor.scalars(step, values)
        self.monitor.progress(step, values, rate)
        self.final.update(values, steps_per_sec=rate)

    def _nonfinite_names(self) -> str:
        names = [k for k, v in self.meter.sums.items() if not torch.isfinite(v).all()]
        return "non-finite " + ", ".join(names or ["loss"])

    def show(self, step: int) -> None:
        tag, picture = self.exp.picture()
        self.monitor.image(tag, step, picture, f"step_{step}.png")

    def evaluate(self, step: int) -> None:
        values = self.exp.evaluate()
        if values:
            self.monitor.scalars(step, values, throughput=False)
            self.final.update(values)

    def save(self, step: int, keep_step_file: bool = False) -> Path:
        """Checkpoint, but never a state that has gone non-finite."""
        if not self.meter.all_finite():
            raise NonFinite(step, self._nonfinite_names())
        if not _weights_finite(self.exp):
            raise NonFinite(step, "non-finite weights")
        return self.checkpointer.save(self.exp.snapshot(step, self.meter.state_dict()), step,
                                      keep_step_file)

    # --- policies --------------------------------------------------------------
    def interrupt(self, step: int) -> None:
        path = self.save(step, keep_step_file=False)
        name = signal.Signals(self.stop.signum).name
        raise Interrupted(self.stop.signum,
                          f"{name}: stopped after step {step}; checkpoint {path}. Continue with: "
                          f"gan-train {_overrides()} hydra.run.dir={self.run_dir} resume=true".replace("  ", " "))

    def recover(self, bad: NonFinite) -> int:
        t = self.t
        last = self.checkpointer.last
        kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written"
        if t.on_nonfinite != "rollback":
            raise UserError(f"training diverged: {bad}; stopped ({kept}); lower optimizer.lr "
                            f"or set train.on_nonfinite=rollback")
        if self.rollbacks >= t.max_rollbacks:
            raise UserError(f"training diverged: {bad}; gave up after {self.rollbacks} rollbacks "
                            f"({kept}); lower optimizer.lr")
        self.rollbacks += 1
        state = load_checkpoint(last) if last.exists() else self.initial
        step = self.exp.restore(state)       # keeps the current (already lowered) rates
        self.exp.scale_learning_rates(t.rollback_lr_factor)
        self.meter = Meter()
        self.meter.load_state_dict(state.get("meter", {}))
        self.monitor.restart(step)
        print(f"{bad}: rolled back to step {step}, learning rates x"
              f"{t.rollback_lr_factor ** self.rollbacks:g} (rollback {self.rollbacks} of "
              f"{t.max_rollbacks})", file=sys.stderr)
        return step


def _weights_finite(exp: Experiment) -> bool:
    nets = [exp.parts.generator, exp.parts.discriminator]
    flags = [torch.isfinite(p).all() for net in nets if net is not None for p in net.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _overrides() -> str:
    """The command line's overrides, to print a resume command."""
    try:
        from hydra.core.hydra_config import HydraConfig
        given = HydraConfig.get().overrides.task
    except Exception:
        return ""
    keep = [o for o in given if not o.split("=")[0].lstrip("+~") in ("hydra.run.dir", "resume")]
    return " ".join(keep)

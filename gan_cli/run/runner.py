"""run(cfg): build the experiment a config names (or resume one), train it on
a cadence of logs, pictures, evaluations and checkpoints, and return the final
metrics. Everything a later command needs goes into the run dir."""

import contextlib
import copy
import json
import math
import signal
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_cli.config.checks import parse_override, validate
from gan_cli.errors import UserError
from gan_cli.output.files import write_text_atomic
from gan_cli.output.layout import CHECKPOINTS, METRICS, check_run_folder
from gan_cli.output.log import log, logging_to
from gan_cli.output.step_files import step_name
from gan_cli.parallel import distributed
from gan_cli.parallel.launch import everywhere, relaunch_command
from gan_cli.run.checkpoint import Checkpointer, load_checkpoint
from gan_cli.run.lock import RunLock
from gan_cli.run.monitor import Monitor, run_hparams, summary
from gan_cli.run.resume import _folder_written, _run_dir_of, check_same_config, resume_state
from gan_cli.training import cuda_graphs
from gan_cli.training.experiment import Experiment
from gan_cli.training.meter import Meter


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the run stopped after a checkpoint."""

    everywhere = True  # several processes stop together (gan_cli.parallel.distributed)

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum


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
            with contextlib.suppress(ValueError):  # not the main thread (e.g. a launcher's worker)
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def run(cfg: DictConfig) -> dict[str, float]:
    """Train the run a config names (or continue one) and return its final metrics."""
    validate(cfg)
    with distributed.session(cfg) as world:
        return _run(cfg, world)


def _run(cfg: DictConfig, world: distributed.World) -> dict[str, float]:
    # Several processes: rank 0's run folder, lock and resume decision hold
    # for all (the others may not even see its files).
    run_dir = Path(world.from_leader(lambda: str(cfg.run_dir)))
    with contextlib.ExitStack() as held:

        def lock() -> None:  # held by rank 0 until the run ends
            held.enter_context(RunLock(_folder_written(cfg, run_dir)))

        world.from_leader(lock)
        source, state = world.from_leader(lambda: resume_state(cfg, run_dir))
        world.from_leader(lambda: check_run_folder(_folder_written(cfg, run_dir)))
        return _train(cfg, world, run_dir, source, state)


def _train(cfg: DictConfig, world: distributed.World, run_dir: Path, source, state) -> dict[str, float]:
    """Build the experiment, restore its state if resuming, and train it."""
    if state is not None:
        run_dir = _run_dir_of(source)
    logs = logging_to(run_dir) if world.writes else contextlib.nullcontext()  # rank 0's train.log
    with logs:  # notes from building and restoring reach train.log too
        exp = Experiment(cfg)
        if state is not None:
            try:
                check_same_config(source, state["config"], exp.resolved_config, cfg.resume_allow)
            except UserError as error:  # every process finds it alike
                raise everywhere(error) from None
        start = exp.restore(state) if state else 0
        steps = 0 if exp.objective.closed_form else cfg.train.steps
        if start > steps:
            raise everywhere(UserError(f"the checkpoint is at step {start}, past train.steps={steps}"))
        with cpu_threads(cfg.train.cpu_threads, exp):
            session = Session(exp, run_dir, start, steps, state)
            if state:
                log.info(f"resuming {run_dir} at step {start} of {steps}")
            final = session.run()
            log.info(summary(run_dir, final))
    return final


def earlier_metrics(path: Path) -> dict[str, float]:
    """A resumed run's metrics.json, which the run rewrites as it ends."""
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        metrics = None
    if not isinstance(metrics, dict):
        raise everywhere(
            UserError(
                f"cannot resume: {path} is not the JSON object of metrics gan-train writes "
                f"(truncated or edited); move it away, and the run writes it afresh as it ends"
            )
        )
    return metrics


def optimized_metric(cfg: DictConfig, metrics: dict[str, float]) -> float:
    """The metric a sweeper (e.g. Optuna) optimises: optimized_metric's value
    among a run's metrics, or one line naming those it has."""
    if cfg.optimized_metric not in metrics:
        raise UserError(
            f"optimized_metric={cfg.optimized_metric} is not among this run's final "
            f"metrics: {', '.join(sorted(k for k in metrics if not k[-1].isdigit()))}"
        )
    return metrics[cfg.optimized_metric]


@contextlib.contextmanager
def cpu_threads(setting, exp: Experiment):
    """The threads a CPU run computes on, for the run only. auto: one thread
    for data points of a few numbers (2D toys), where the nets are so small
    that a second thread only waits on the first; torch's default otherwise."""
    before = torch.get_num_threads()
    if exp.device.type == "cpu":
        if setting != "auto":
            torch.set_num_threads(setting)
        elif math.prod(exp.data.shape) < 8:
            torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Session:
    """One pass of training over [start, steps) that owns its cadence: log
    lines, pictures, evaluations, checkpoints, signals and the non-finite
    policy, all decided between steps."""

    def __init__(self, exp: Experiment, run_dir: Path, start: int, steps: int, state: dict | None):
        t = exp.cfg.train
        self.exp, self.t, self.run_dir, self.start, self.steps = exp, t, run_dir, start, steps
        # Several processes: rank 0 alone writes and evaluates; all agree on
        # stopping and divergence (gan_cli.parallel.distributed).
        self.world = distributed.current()
        self.checkpointer = Checkpointer(run_dir / CHECKPOINTS, t.keep_checkpoints)
        self.meter = Meter()
        if state:
            self.meter.load_state_dict(state.get("meter", {}))
        self.final: dict[str, float] = {}
        if state and (run_dir / METRICS).exists():
            self.final.update(earlier_metrics(run_dir / METRICS))
        self.monitor = Monitor(run_dir, steps, start_step=start) if self.world.writes else Unseen()
        self.stop = StopOnSignal()
        self.diverged: str | None = None  # what went non-finite, found between steps
        self.rollbacks = 0
        # optimized_metric is checked once the run has both logged and
        # evaluated, which gives every name its final metrics will hold (on
        # several processes only at the end: rank 0 alone evaluates, and
        # stopping it alone mid-run would leave the others waiting).
        self.logged = False
        self.metric_checked = not exp.cfg.optimized_metric or self.world.size > 1
        # Without a checkpoint yet, a rollback returns to the initial state.
        self.initial = (
            copy.deepcopy(exp.snapshot(start, self.meter.state_dict()))
            if t.on_nonfinite == "rollback"
            else None
        )
        # loop.run_steps itself, or the same steps replayed as CUDA graphs.
        self.run_steps = cuda_graphs.trainer(exp.cfg, exp.step_parts, exp.device)

    def run(self) -> dict[str, float]:
        exp = self.exp
        try:
            with self.stop:
                if exp.objective.closed_form:
                    solved = exp.solve()
                    self.final.update(solved)
                    self.monitor.scalars(0, solved, throughput=False)
                if self.steps == 0:  # closed form, or nothing to train
                    self.show(0)
                    self.evaluate(0)
                    self.save(0)
                step = self.start
                while step < self.steps or self.diverged:
                    if self.diverged:
                        step = self.recover(step)
                    elif self.stopping():
                        self.interrupt(step)
                    else:
                        step = self.run_steps(exp.step_parts, step, self.steps, self.meter, self.after_step)
                if self.stopping() and self.steps > self.start:
                    self.interrupt(step)
                if self.world.writes:
                    exp.evaluation.finish(self.run_dir)  # e.g. the toys' evolution.gif
            # HPARAMS tab: the run's settings against its final metrics.
            self.monitor.hparams(run_hparams(exp.cfg), self.final, self.steps)
        except BaseException:
            with contextlib.suppress(Exception):  # the first failure is the one to report
                self.monitor.close()
            raise
        self.monitor.close()
        if self.world.writes:
            write_text_atomic(self.run_dir / METRICS, json.dumps(self.final, indent=2) + "\n")
        return self.final

    def stopping(self) -> bool:
        """Whether a signal asks the run to stop; with several processes,
        whether any of them got one, so that all stop after the same step."""
        agreed = self.world.agree_signal(self.stop.signum)
        # Not `signum = agreed`: a signal that lands while the processes agree
        # would be overwritten and lost; it counts at the next step instead.
        if agreed is not None:
            self.stop.signum = agreed
        return agreed is not None

    # --- cadence -------------------------------------------------------------
    def after_step(self, step: int) -> bool:
        """Everything due after `step`; False stops the loop (a non-finite
        value, or a signal)."""
        t, last = self.t, step == self.steps
        if (step % t.log_every == 0 or last) and not self.log(step):
            return False
        if step % t.sample_every == 0 or last:
            self.show(step)
        if step % t.eval_every == 0 or last:
            self.evaluate(step)
        if (step % t.checkpoint_every == 0 or last) and self.save(
            step, keep_step_file=step % t.checkpoint_every == 0
        ) is None:
            return False
        return not self.stopping()

    def log(self, step: int) -> bool:
        if not self._finite(step, weights=False):
            return False
        values = self.world.mean(self.meter.means())
        rate = self.monitor.scalars(step, values)
        self.monitor.progress(step, values, rate)
        self.final.update(values, steps_per_sec=rate)
        self.logged = True
        return True

    def show(self, step: int) -> None:
        if not self.world.writes:
            return
        tag, picture = self.exp.picture()
        self.monitor.image(tag, step, picture, step_name(step, ".png"))

    def evaluate(self, step: int) -> None:
        if not self.world.writes:
            return
        values, refined_picture = self.exp.evaluate_all()
        if refined_picture is not None:  # eval.sampler: samples refined by D
            tag, picture = refined_picture
            self.monitor.image(tag, step, picture, "refined_" + step_name(step, ".png"))
        if values:
            self.monitor.scalars(step, values, throughput=False)
            self.final.update(values)
        if self.logged and not self.metric_checked:  # not after hours of a sweep's job
            self.metric_checked = True
            optimized_metric(self.exp.cfg, self.final)

    def save(self, step: int, keep_step_file: bool = False) -> Path | None:
        """Checkpoint, but never a state that has gone non-finite (None then)."""
        if not self._finite(step, weights=True):
            return None
        meter = self.world.mean_meter(self.meter.state_dict())
        if not self.world.writes:
            return self.checkpointer.last
        return self.checkpointer.save(self.exp.snapshot(step, meter), step, keep_step_file)

    def _finite(self, step: int, weights: bool) -> bool:
        """False, noting what, when a loss since the last log (or a weight) is not finite."""
        if not self.meter.all_finite():
            names = self.meter.nonfinite()
            self.diverged = f"non-finite {', '.join(names or ['loss'])} at step {step}"
        elif weights and not _weights_finite(self.exp):
            self.diverged = f"non-finite weights at step {step}"
        if not self.world.all_true(self.diverged is None) and self.diverged is None:
            self.diverged = f"non-finite losses or weights on another process at step {step}"
        return self.diverged is None

    # --- policies --------------------------------------------------------------
    def interrupt(self, step: int) -> None:
        path = self.save(step, keep_step_file=False)
        if path is None:  # diverged: the policy decides first
            return
        name = signal.Signals(self.stop.signum).name
        raise Interrupted(
            self.stop.signum,
            f"{name}: stopped after step {step}; checkpoint {path}. Continue with: "
            f"{relaunch_command()} {_overrides()} hydra.run.dir={self.run_dir} "
            f"resume=true".replace("  ", " "),
        )

    def recover(self, step: int) -> int:
        """train.on_nonfinite: stop with one line, or roll back to the last
        good checkpoint with lower learning rates; returns the step to go on from."""
        t, bad = self.t, self.diverged
        self.diverged = None
        last = self.checkpointer.last
        kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written"
        if t.on_nonfinite != "rollback":
            raise everywhere(
                UserError(
                    f"training diverged: {bad}; stopped ({kept}); lower optimizer.lr "
                    f"or set train.on_nonfinite=rollback"
                )
            )
        if self.rollbacks >= t.max_rollbacks:
            raise everywhere(
                UserError(
                    f"training diverged: {bad}; gave up after {self.rollbacks} rollbacks "
                    f"({kept}); lower optimizer.lr"
                )
            )
        self.rollbacks += 1
        state = self.world.from_leader(lambda: load_checkpoint(last) if last.exists() else self.initial)
        step = self.exp.restore(state)  # keeps the current (already lowered) rates
        self.exp.scale_learning_rates(t.rollback_lr_factor)
        self.meter = Meter()
        self.meter.load_state_dict(state.get("meter", {}))
        self.monitor.restart(step)
        log.info(
            f"{bad}: rolled back to step {step}, learning rates x"
            f"{t.rollback_lr_factor**self.rollbacks:g} (rollback {self.rollbacks} of "
            f"{t.max_rollbacks})"
        )
        return step


class Unseen:
    """The monitor of a process that shows nothing (ranks other than 0)."""

    def scalars(self, step, values, throughput=True) -> float:
        return 0.0

    def __getattr__(self, name):  # image, progress, hparams, restart, close
        return lambda *args, **kwargs: None


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
    keep = [o for o in given if (parse_override(o) or ("",))[0] not in ("hydra.run.dir", "resume")]
    return " ".join(keep)

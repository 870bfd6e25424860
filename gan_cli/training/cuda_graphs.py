"""Whole generator steps as CUDA graphs (train.cuda_graphs).

Nets this small leave a GPU waiting on kernel launches and Python: one
generator step with all its critic steps is hundreds of small kernels. Here
that step is captured once as a CUDA graph and replayed, one launch a step.

The graphed steps are the eager steps:
- What is captured is loop.run_steps itself, run for one step. Only where its
  batches come from (device buffers, `IndexedBatches`) and where its losses
  go (static sums, `StaticSums`) differ.
- Batches: the host works out the coming batches' positions from the
  sampler's own seeded epochs and keeps them in a device buffer that the graph
  reads at a device-side cursor; samplers whose whole state is a device
  generator (the 2D toys) draw inside the graph from that generator.
- Noise: the run's generators are registered with each graph, so a replay
  continues their Philox streams exactly where eager draws would.
- Optimizers run with capturable=True (their step counts live on the device);
  their state_dict still gives the eager form, so checkpoints load either way.
- The first step of each critic-step count runs eagerly: it is a real step,
  and it warms up the allocations and libraries capture must not create.
  Each call of the trainer captures afresh, as a resume or a rollback may
  have replaced the state a graph would read.
- The cadence (logs, pictures, evaluations, checkpoints, signals) runs
  between replays, eagerly, exactly as in loop.run_steps.
"""

import contextlib
import dataclasses
from collections import Counter
from collections.abc import Callable

import torch

from gan_cli.data.sampler import Batch, TensorSampler
from gan_cli.output.log import log
from gan_cli.training.loop import run_steps


def note(text: str) -> None:
    log.info(f"note: {text}")


def _optimizers(parts) -> list[torch.optim.Optimizer]:
    return [opt for opt in (parts.opt_g, parts.opt_d) if opt is not None]


def _can_capture_optimizer(opt: torch.optim.Optimizer) -> bool:
    # Optimizers with a step count capture it only as a device tensor
    # (capturable=True); SGD keeps none and captures as it is.
    return isinstance(opt, torch.optim.SGD) or all("capturable" in g for g in opt.param_groups)


def capture_plan(cfg, parts, device: torch.device) -> tuple[bool, str]:
    """(whether this run's steps can be captured, why or why not)."""
    mode = cfg.train.cuda_graphs
    if mode is False:
        return False, "train.cuda_graphs=false"
    if device.type != "cuda":
        return False, f"CUDA graphs need a CUDA device and this run trains on {device.type}"
    if isinstance(parts.generator, torch.nn.parallel.DistributedDataParallel):
        return False, "several processes average gradients through DistributedDataParallel, not captured"
    if parts.objective.closed_form:
        return False, f"objective={parts.objective.name} is solved in closed form, no steps to capture"
    if cfg.train.compile:
        return False, "train.compile=true already compiles the step (it cannot be captured as well)"
    if cfg.train.precision == "bf16":
        return False, "train.precision=bf16: autocast's cache of cast weights cannot be captured"
    if cfg.train.lr_decay > 0:
        return False, ("train.lr_decay changes the learning rates every step, which a graph would hold fixed")
    if isinstance(parts.sampler, TensorSampler) and not parts.sampler.on_device:
        return False, (
            "the data set is memory-mapped on the host (larger than dataset.memory_budget_gb), "
            "where a graph cannot gather its batches"
        )
    if _batches_kind(parts.sampler) is None:
        return False, f"the {type(parts.sampler).__name__} batch sampler cannot draw inside a graph"
    for opt in _optimizers(parts):
        if not _can_capture_optimizer(opt):
            return False, f"the {type(opt).__name__} optimizer cannot be captured (no capturable option)"
    return True, "generator steps replayed as CUDA graphs"


def trainer(cfg, parts, device: torch.device) -> Callable:
    """What runs steps [start, end): loop.run_steps itself, or a graphed trainer
    with its signature. A run that asked for graphs (or would get them on
    CUDA) and cannot have them gets one note line saying why."""

    ok, reason = capture_plan(cfg, parts, device)
    if ok:
        return GraphedTrainer(parts, device)
    mode = cfg.train.cuda_graphs
    if not parts.objective.closed_form and (mode is True or (mode == "auto" and device.type == "cuda")):
        note(f"train.cuda_graphs={str(mode).lower()}: {reason}; training eagerly")
    return run_steps


class GraphedTrainer:
    """loop.run_steps's signature; its steps replayed from CUDA graphs."""

    def __init__(self, parts, device: torch.device):
        self.steps = GraphedStep(parts, device)

    def __call__(self, parts, start_step: int, end_step: int, meter, after_step) -> int:
        steps = self.steps
        steps.begin(meter)
        step = start_step
        while step < end_step:
            steps.run(step)
            step += 1
            if not after_step(step):
                break
        return step


# --- losses ----------------------------------------------------------------------


class StaticSums:
    """loop.run_steps's meter inside a graph: each loss is added into a static
    tensor (allocated by the eager warm-up step, so a graph adds into the same
    memory every replay). The host counts the additions; `fold` moves the
    sums into a Meter (Meter.add_sums) when that Meter is read."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.tally: Counter = Counter()  # additions since the last fold

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().float()
            if key not in self.sums:
                if value.is_cuda and torch.cuda.is_current_stream_capturing():
                    raise RuntimeError(f"a loss ({key}) first appeared while capturing")
                self.sums[key] = torch.zeros_like(value)
            self.sums[key].add_(value)
            self.tally[key] += 1

    def fold(self, meter) -> None:
        keys = [k for k, n in self.tally.items() if n]
        meter.add_sums({k: self.sums[k] for k in keys}, {k: self.tally[k] for k in keys})
        self.discard()

    def discard(self) -> None:
        if self.sums:
            torch._foreach_zero_(list(self.sums.values()))
        self.tally.clear()


# --- batches ---------------------------------------------------------------------


def _batches_kind(sampler):
    """The class that draws this sampler's batches inside a graph, or None."""
    if isinstance(sampler, TensorSampler):
        return IndexedBatches if sampler.on_device else None
    generator = getattr(sampler, "generator", None)
    if isinstance(generator, torch.Generator) and set(sampler.state_dict()) == {"generator"}:
        return GeneratorBatches
    return None


class IndexedBatches:
    """TensorSampler's batches, drawn inside a graph. The host takes the
    coming batches' positions from the sampler's own seeded epochs
    (TensorSampler.coming_indices: the sampler itself moves on only with the
    steps taken) and copies them into a device buffer, about an epoch at a
    time; the graph gathers (TensorSampler.gather) batch after batch at a
    device-side cursor. The eager and the graphed path thus draw the same
    batches in the same order."""

    generators = ()

    def __init__(self, sampler: TensorSampler, slots: int | None = None):
        self.sampler = sampler
        # About an epoch, and room for the 101 batches of a reference-schedule step.
        self.slots = slots or max(len(sampler) // sampler.batch_size, 256)
        self.positions = torch.zeros(self.slots, sampler.batch_size, dtype=torch.long, device=sampler.device)
        self.cursor = torch.zeros(1, dtype=torch.long, device=sampler.device)
        self.left = 0  # batches the buffer still holds

    def next(self) -> Batch:
        # index_select with a device index: no read back to the host, so capturable.
        index = self.positions.index_select(0, self.cursor).view(-1)
        self.cursor.add_(1)
        return self.sampler.gather(index)

    def ensure(self, batches: int) -> None:
        """Before a replay that draws `batches`: refill the buffer if it runs short."""
        if batches > self.slots:
            raise RuntimeError(
                f"a step draws {batches} batches, more than the {self.slots} the graph's buffer holds"
            )
        if self.left >= batches:
            return
        rows = self.sampler.coming_indices(self.slots)
        # Stream-ordered after the replays that read the old positions.
        self.positions.copy_(rows)
        self.cursor.zero_()
        self.left = self.slots

    def advance(self, batches: int) -> None:
        """After a replay: the sampler's own state moves on as eager draws would move it."""
        self.left -= batches
        self.sampler.skip(batches)

    def invalidate(self) -> None:
        self.left = 0


class GeneratorBatches:
    """A sampler whose whole state is a device generator (the 2D toys): it
    draws inside the graph as it is, the generator registered with the graph."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.generators = (sampler.generator,)

    def next(self) -> Batch:
        return self.sampler.next()

    def ensure(self, batches: int) -> None:
        pass

    def advance(self, batches: int) -> None:
        pass

    def invalidate(self) -> None:
        pass


class _Counting:
    """A sampler that counts its batches (the eager warm-up step's)."""

    def __init__(self, sampler):
        self.sampler, self.calls = sampler, 0

    def next(self) -> Batch:
        self.calls += 1
        return self.sampler.next()


# --- optimizers ------------------------------------------------------------------


def _make_capturable(opt: torch.optim.Optimizer) -> None:
    for group in opt.param_groups:
        if "capturable" in group:
            group["capturable"] = True
    for param, state in opt.state.items():
        step = state.get("step")
        if torch.is_tensor(step) and step.device != param.device:
            state["step"] = step.to(device=param.device, dtype=torch.float32)


def _eager_form(eager_flags: list):
    """A state_dict post-hook: the state as the optimizer built from the
    config (capturable as configured) would hold it, its step counts on the
    CPU unless that optimizer keeps them on the device (fused or capturable)."""

    def hook(opt, state_dict):
        for group, capturable in zip(state_dict["param_groups"], eager_flags, strict=True):
            if capturable is None:
                continue
            group["capturable"] = capturable
            if capturable or group.get("fused"):
                continue
            for index in group["params"]:
                saved = state_dict["state"].get(index)
                if saved is not None and torch.is_tensor(saved.get("step")):
                    # a new dict: the state_dict shares these with the live optimizer
                    state_dict["state"][index] = {**saved, "step": saved["step"].cpu()}
        return state_dict

    return hook


# --- the step --------------------------------------------------------------------


@dataclasses.dataclass
class Recorded:
    replay: Callable[[], None]
    batches: int  # drawn per replay
    adds: Counter  # loss additions per replay
    updates: Counter  # optimizer steps per replay ("g", "d")


def _nothing(step: int) -> bool:
    return True


class GraphedStep:
    """One generator step (all its critic steps included) per `run(step)`:
    replayed from a graph captured for its critic-step count, or, the first
    time that count comes, run eagerly and then captured.

    On a CPU device (tests) nothing is captured: a "replay" runs the same
    code eagerly through the same device buffers and static sums, so all
    bookkeeping but the capture itself runs where no GPU is."""

    def __init__(self, parts, device: torch.device):

        self.run_steps, self.parts, self.device = run_steps, parts, torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.sums = StaticSums()
        self.batches = _batches_kind(parts.sampler)(parts.sampler)
        self.graphs: dict[int, Recorded] = {}
        self.failed: str | None = None
        self.updates: Counter = Counter()  # optimizer steps taken, as eager counts them
        self._opt_steps: Counter = Counter()  # optimizer.step calls seen (capture included)
        self.generators = [
            g for g in (parts.latent.generator, *self.batches.generators) if g.device.type == "cuda"
        ]
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        for key, opt in (("g", parts.opt_g), ("d", parts.opt_d)):
            if opt is None:
                continue
            opt.register_step_post_hook(lambda *args, key=key: self._opt_steps.update((key,)))
            if self.cuda:
                flags = [g.get("capturable") for g in opt.param_groups]
                _make_capturable(opt)
                opt.register_state_dict_post_hook(_eager_form(flags))
                opt.register_load_state_dict_post_hook(self._loaded)

    def _loaded(self, opt) -> None:
        _make_capturable(opt)  # a loaded state has the eager form
        self.invalidate()

    def begin(self, meter) -> None:
        """Before a run of steps into `meter`: graphs captured afresh (the
        state may have been restored since), sums folded into this meter."""
        self.invalidate()
        self.sums.discard()
        meter.attach(self.sums.fold)

    def invalidate(self) -> None:
        self.graphs.clear()
        self.batches.invalidate()

    def run(self, step: int) -> None:
        # One graph per kind of step: its critic-step count and whatever host
        # state changes what it computes (G's average still warming up, which
        # D steps get a lazy R1), as a graph replays the kernels it captured.
        k = (self.parts.objective.critic_steps_at(step), self.parts.phase(step))
        recorded = self.graphs.get(k)
        if recorded is None:
            recorded = self._warm_up(step)
            if self.failed is None:
                self._capture(step, k, recorded)
            return
        self.batches.ensure(recorded.batches)
        recorded.replay()
        self.batches.advance(recorded.batches)
        self.sums.tally.update(recorded.adds)
        self.updates.update(recorded.updates)
        # The host-side count a replay cannot move: D's steps (lazy R1, checkpointed).
        self.parts.objective.count_d_steps(recorded.updates.get("d", 0))

    @contextlib.contextmanager
    def _uncounted(self):
        """Calls that add no real losses or updates (a capture, or a CPU replay
        whose counts come from its record) leave the counters as they were,
        the objective's own among them."""
        tally, opt_steps = Counter(self.sums.tally), Counter(self._opt_steps)
        objective = self.parts.objective.state_dict()
        try:
            yield
        finally:
            self.sums.tally, self._opt_steps = tally, opt_steps
            self.parts.objective.load_state_dict(objective)

    def _warm_up(self, step: int) -> Recorded:
        """One real step, eagerly, on the capture stream; its counts are what
        a replay of the same critic-step count adds."""
        sampler = _Counting(self.parts.sampler)
        parts = dataclasses.replace(self.parts, sampler=sampler)
        tally, opt_steps = Counter(self.sums.tally), Counter(self._opt_steps)
        with self._on_stream():
            self.run_steps(parts, step, step + 1, self.sums, _nothing)
        self.batches.invalidate()  # the sampler moved on eagerly
        updates = self._opt_steps - opt_steps
        self.updates.update(updates)
        return Recorded(lambda: None, sampler.calls, self.sums.tally - tally, updates)

    @contextlib.contextmanager
    def _on_stream(self):
        if not self.cuda or self.failed is not None:
            yield
            return
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream(self.device).wait_stream(self.stream)

    def _capture(self, step: int, k: int, warm: Recorded) -> None:
        parts = dataclasses.replace(self.parts, sampler=self.batches)
        self.batches.ensure(warm.batches)
        if not self.cuda:  # stand-in: the same code, run at each replay

            def replay():
                with self._uncounted():
                    self.run_steps(parts, step, step + 1, self.sums, _nothing)

            self.graphs[k] = dataclasses.replace(warm, replay=replay)
            return
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        states = [g.get_state() for g in self.generators]
        try:
            with self._uncounted(), torch.cuda.graph(graph, stream=self.stream):
                self.run_steps(parts, step, step + 1, self.sums, _nothing)
        except Exception as error:
            self._give_up(error, states)
            return
        self.graphs[k] = dataclasses.replace(warm, replay=graph.replay)

    def _give_up(self, error: Exception, states: list) -> None:
        """Capture failed: nothing ran, so training goes on eagerly from here."""
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        self.failed = f"{type(error).__name__}: {first}"
        for generator, state in zip(self.generators, states, strict=True):
            generator.set_state(state)
        for opt in _optimizers(self.parts):
            opt.zero_grad(set_to_none=True)  # grads may point into the abandoned graph
        self.graphs.clear()
        note(f"train.cuda_graphs: capturing the step failed ({self.failed[:200]}); training eagerly")

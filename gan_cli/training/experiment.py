"""Everything a config builds, and its state as one plain dict.

`Experiment(cfg)` instantiates the data set, objective, models, optimizers,
batch sampler, latent sampler and the evaluation room; `snapshot()` captures
the training state (weights, optimizer moments, every random generator, the
sampler's position in its epoch, the grid's fixed noise) so that `restore()`
continues bit for bit. The config was checked by gan_cli.config.checks first.
"""

import torch
from omegaconf import DictConfig, OmegaConf

from gan_cli.config.build import build_data, build_models, build_objective, build_optimizer, load_weights
from gan_cli.config.checks import check_built_data
from gan_cli.device import pick_device
from gan_cli.errors import UserError
from gan_cli.evaluation import Evaluation
from gan_cli.latent import Latent, evaluation_latent
from gan_cli.models.augment import DiffAugment
from gan_cli.output.log import log
from gan_cli.parallel import distributed
from gan_cli.parallel.launch import everywhere
from gan_cli.rng import global_rng_state, restore_generator, seed_everything, set_global_rng_state
from gan_cli.training import accel
from gan_cli.training.ema import GeneratorEMA, shows_average
from gan_cli.training.loop import Parts
from gan_cli.training.schedule import LinearDecay

MAX_GRID_ROWS = 32  # classes a sample grid shows one row each


class Experiment:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.device = device = pick_device(cfg.device)
        seed_everything(cfg.seed)  # model initialisation; numpy and Python too, so all saved states repeat

        self.data = data = build_data(cfg.dataset)
        self.objective = objective = build_objective(cfg.objective)
        # Several processes (gan_cli.parallel.distributed): each trains on its own rows
        # of every global batch and of its noise; one process: the whole batch.
        world = distributed.current()
        try:
            check_built_data(cfg, data, objective, world.size)
        except UserError as error:
            raise everywhere(error) from None  # every process built the same data: rank 0 says it
        self.num_classes = data.num_classes if objective.conditional else 0
        self.model_args = {
            "data_shape": list(data.shape),
            "num_classes": self.num_classes,
            "latent_dim": cfg.latent.dim,
        }
        if objective.pack > 1:  # recorded only when packing: older checkpoints lack it
            self.model_args["pack"] = objective.pack
        G, D = build_models(cfg, self.model_args)
        G = G.to(device)
        D = D.to(device) if objective.uses_discriminator else None
        # G's moving average (train.ema > 0), copied before any compile: it is
        # only ever run for pictures and metrics.
        decay = cfg.train.ema
        self.ema = GeneratorEMA(G, decay, cfg.train.ema_start) if decay else None
        for net in (G, D):
            accel.prepare(net, device, cfg.train.compile, cfg.train.channels_last)
        opt_g = build_optimizer(cfg.optimizer.g, G.parameters())
        opt_d = build_optimizer(cfg.optimizer.d, D.parameters()) if D is not None else None
        if cfg.train.compile:
            for opt in (opt_g, opt_d):
                accel.compile_step(opt)
        sampler = world.sampler(data, cfg.train.batch_size, device, seed=cfg.seed)
        latent = Latent.from_config(cfg.latent, device, seed=cfg.seed + 1)
        objective.setup(data, latent)
        self.parts = Parts(
            G,
            D,
            opt_g,
            opt_d,
            objective,
            sampler,
            world.latent(latent),
            accel.autocast(cfg.train.precision, device),
        )
        if self.ema is not None:
            self.parts.after_generator_step = self.ema.update
        self.lr_schedule = None
        if cfg.train.lr_decay > 0:
            self.lr_schedule = LinearDecay([opt_g, opt_d], cfg.train.steps, cfg.train.lr_decay)
            self.parts.before_step = self.lr_schedule
        ema = self.ema
        self.parts.phase = lambda step: (objective.phase(), ema is not None and ema.warming(step + 1))
        if cfg.train.augment:
            D.augment = DiffAugment(cfg.train.augment, self.parts.latent)
        # What the step loop runs: the same parts, G and D in DistributedDataParallel
        # when there are several processes. Snapshots and pictures use self.parts.
        self.step_parts = world.replicate(self.parts)

        # The grid's noise is fixed for the whole run so its frames compare:
        # one row per class, or (unconditional, or too many classes for a
        # row each, as stacked MNIST's 1,000) a square of classes in turn.
        columns, classes = cfg.train.grid_columns, self.num_classes
        rows = classes if 0 < classes <= MAX_GRID_ROWS else columns
        self.fixed_z = Latent.from_config(cfg.latent, device, seed=cfg.seed + 2, portable=True).sample(
            rows * columns
        )
        self.fixed_y = None
        if classes:
            self.fixed_y = (
                torch.arange(classes, device=device).repeat_interleave(columns)
                if rows == classes
                else torch.arange(rows * columns, device=device) % classes
            )
        self.evaluation = Evaluation(data, cfg, device, columns)

    @property
    def resolved_config(self) -> dict:
        """The config as plain data, every interpolation resolved: what a
        checkpoint records and a resume compares."""
        return OmegaConf.to_container(self.cfg, resolve=True)

    @property
    def sampling_generator(self) -> torch.nn.Module:
        """The G that pictures and metrics show: the moving average when there
        is one and eval.use_ema is on, else the trained G itself."""
        if shows_average(self.cfg, self.ema is not None):
            return self.ema.average
        return self.parts.generator

    def picture(self):
        p = self.parts
        return self.evaluation.picture(
            self.sampling_generator, p.discriminator, p.objective, self.fixed_z, self.fixed_y
        )

    def refined(self):
        """eval.sampler: (G's metrics of samples refined by D, (tag, picture)),
        or None when the run has no sampler."""
        p, G = self.parts, self.sampling_generator
        fixed = (self.fixed_z, self.fixed_y)
        return self.evaluation.refined(G, p.discriminator, p.objective, *fixed, self.num_classes)

    def evaluate_all(self) -> tuple[dict[str, float], tuple | None]:
        """What a run reports at an evaluation: evaluate()'s metrics, with
        eval.sampler also those of samples refined by D (`<metric>_refined`);
        and the refined samples' (tag, picture), or None without a sampler."""
        values = self.evaluate()
        refined = self.refined()
        if refined is None:
            return values, None
        more, picture = refined
        return {**values, **more}, picture

    def evaluate(self) -> dict[str, float]:
        # The same seeded noise at every evaluation (and after a resume), apart
        # from the training noise, so the metric's curve compares like with like.
        cfg = self.cfg
        latent = evaluation_latent(cfg.latent, self.device, cfg.seed)
        return self.evaluation.metrics(self.sampling_generator, latent, self.num_classes)

    def solve(self) -> dict[str, float]:
        """A closed-form objective's solution in place of training steps."""
        return self.objective.solve(self.parts.generator, self.data)

    def scale_learning_rates(self, factor: float) -> None:
        if self.lr_schedule is not None:
            self.lr_schedule.scale(factor)
        for opt in (self.parts.opt_g, self.parts.opt_d):
            for group in opt.param_groups if opt is not None else []:
                group["lr"] *= factor

    def snapshot(self, step: int, meter_state: dict | None = None) -> dict:
        p = self.parts
        return {
            "step": step,
            "config": self.resolved_config,
            "model_args": self.model_args,
            "generator": p.generator.state_dict(),
            "generator_ema": None if self.ema is None else self.ema.state_dict(),
            "discriminator": None if p.discriminator is None else p.discriminator.state_dict(),
            "opt_g": p.opt_g.state_dict(),
            "opt_d": None if p.opt_d is None else p.opt_d.state_dict(),
            "objective": p.objective.state_dict(),
            "sampler": p.sampler.state_dict(),
            "latent_rng": p.latent.generator.get_state(),
            "fixed_noise": {"z": self.fixed_z, "y": self.fixed_y},
            "meter": meter_state or {},
            "rng": global_rng_state(),
        }

    def restore(self, state: dict) -> int:
        """Load a snapshot; returns its step. Learning rates stay those of the
        current config (so resuming with a changed, allowed lr takes effect)."""
        p = self.parts
        lrs = [[g["lr"] for g in opt.param_groups] if opt else [] for opt in (p.opt_g, p.opt_d)]
        load_weights(p.generator, state["generator"], "G")
        if self.ema is not None:
            if state.get("generator_ema") is not None:
                load_weights(self.ema, state["generator_ema"], "G's moving average")
            else:  # a run that had no average yet (resume_allow=[train.ema])
                self.ema.reset()
        if p.discriminator is not None:
            load_weights(p.discriminator, state["discriminator"], "D")
            p.opt_d.load_state_dict(state["opt_d"])
        p.opt_g.load_state_dict(state["opt_g"])
        for opt, saved in zip((p.opt_g, p.opt_d), lrs, strict=True):
            for group, lr in zip(opt.param_groups if opt else [], saved, strict=True):
                group["lr"] = lr
        p.objective.load_state_dict(state["objective"])
        exact = [
            p.sampler.load_state_dict(state["sampler"]),
            restore_generator(p.latent.generator, state["latent_rng"]),
        ]
        if not all(exact):
            log.info(
                "note: the checkpoint's random streams (data draws, noise) were made "
                f"on another device type than {self.device.type}; they continue from "
                "a seed taken from them, so this run will not repeat a straight run "
                "bit for bit"
            )
        self.fixed_z = state["fixed_noise"]["z"].to(self.device)
        y = state["fixed_noise"]["y"]
        self.fixed_y = None if y is None else y.to(self.device)
        set_global_rng_state(state["rng"])
        return int(state["step"])

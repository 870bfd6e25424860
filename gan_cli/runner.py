"""run(cfg): build the parts a config names, train them, write what a later
command needs into the run dir, and return the final metrics."""

import json
import math
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan_cli.checkpoint import FORMAT, Checkpointer
from gan_cli.config import validate
from gan_cli.errors import UserError, user_error_in
from gan_cli.latent import Latent
from gan_cli.loop import Parts, train
from gan_cli.monitor import Monitor


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA device is available; use device=auto or device=cpu")
    return torch.device(name)


def build(node, **kwargs):
    """hydra.utils.instantiate, with our own UserError surfacing as itself."""
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:
        found = user_error_in(exc)
        if found is not None:
            raise found from None
        raise


def run(cfg: DictConfig) -> dict[str, float]:
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    checkpointer = Checkpointer(run_dir / "checkpoints", cfg.train.keep_checkpoints)
    if checkpointer.last.exists():
        raise UserError(f"{run_dir} already holds a run (checkpoints/last.pt); "
                        f"choose another hydra.run.dir")
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)                       # model initialisation

    data = build(cfg.dataset)
    if device.type == "cpu" and getattr(data, "cpu_threads", None):
        torch.set_num_threads(data.cpu_threads)       # tiny nets: more threads only wait on each other
    objective = build(cfg.objective)
    if objective.conditional and not data.num_classes:
        raise UserError(f"objective={objective.name} is conditional but dataset "
                        f"{data.name} has no class labels")
    num_classes = data.num_classes if objective.conditional else 0
    model_args = {"data_shape": list(data.shape), "num_classes": num_classes,
                  "latent_dim": cfg.latent.dim}
    G, D = build(cfg.model, **model_args)
    G.to(device)
    D = D.to(device) if objective.uses_discriminator else None
    opt_g = build(cfg.optimizer.g)(G.parameters())
    opt_d = build(cfg.optimizer.d)(D.parameters()) if D is not None else None

    sampler = data.sampler(cfg.train.batch_size, device, seed=cfg.seed)
    latent = Latent(cfg.latent.dim, cfg.latent.distribution, device, seed=cfg.seed + 1)
    objective.setup(data, latent, G)
    parts = Parts(G, D, opt_g, opt_d, objective, sampler, latent)

    # The grid's noise is fixed for the whole run so its frames compare.
    columns = cfg.train.grid_columns
    grid_rows = num_classes or columns
    fixed_z = Latent(cfg.latent.dim, cfg.latent.distribution, device, seed=cfg.seed + 2) \
        .sample(grid_rows * columns)
    fixed_y = (torch.arange(num_classes, device=device).repeat_interleave(columns)
               if num_classes else None)

    steps = cfg.train.steps if objective.trains else 0
    config = OmegaConf.to_container(cfg, resolve=True)
    monitor = Monitor(run_dir, steps)
    final: dict[str, float] = {}
    closed_form_loss = getattr(objective, "closed_form_loss", None)
    if closed_form_loss is not None:
        final["mse"] = closed_form_loss
        monitor.scalars(0, final)

    def snapshot(step: int) -> dict:
        return {
            "format": FORMAT, "step": step, "config": config, "model_args": model_args,
            "generator": G.state_dict(),
            "discriminator": None if D is None else D.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": None if opt_d is None else opt_d.state_dict(),
            "objective": objective.state_dict(),
            "sampler": sampler.state_dict(),
            "latent_rng": latent.generator.get_state(),
            "fixed_noise": {"z": fixed_z, "y": fixed_y},
        }

    def after_step(step: int, meter) -> None:
        t = cfg.train
        last = step == steps
        if step % t.log_every == 0 or last:
            values = meter.means()
            rate = monitor.scalars(step, values)
            monitor.progress(step, values, rate)
            final.update(values, steps_per_sec=rate)
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                raise UserError(f"training diverged at step {step}: {', '.join(bad)} not finite; "
                                f"try a lower optimizer.lr (the last checkpoint is kept)")
        if step % t.sample_every == 0 or last:
            show(step)
        if step % t.eval_every == 0 or last:
            evaluate(step)
        if step % t.checkpoint_every == 0 or last:
            checkpointer.save(snapshot(step), step, keep_step_file=step % t.checkpoint_every == 0)

    def show(step: int) -> None:
        tag, picture = data.picture(G, D, fixed_z, fixed_y, columns, objective=objective)
        monitor.image(tag, step, picture, f"step_{step}.png")

    def evaluate(step: int) -> None:
        # The same seeded noise at every evaluation (and after a resume), apart
        # from the training noise, so the metric's curve compares like with like.
        eval_latent = Latent(cfg.latent.dim, cfg.latent.distribution, device, seed=cfg.seed + 3)
        values = data.evaluate(G, latent=eval_latent, num_classes=num_classes)
        if values:
            monitor.scalars(step, values, throughput=False)
            final.update(values)

    try:
        if steps == 0:                                # closed form or nothing to do
            show(0)
            evaluate(0)
            checkpointer.save(snapshot(0), 0, keep_step_file=False)
        train(parts, 0, steps, after_step)
        data.finish(run_dir)
    finally:
        monitor.close()
    (run_dir / "metrics.json").write_text(json.dumps(final, indent=2) + "\n")
    return final

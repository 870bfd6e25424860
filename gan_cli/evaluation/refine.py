"""Sampling with the discriminator: G's samples kept or replaced by what a
trained D knows about where they are poor.

The samplers read D as an estimate of the log density ratio
log p_data(x) / p_G(x), which is what makes them correct (Azadi et al. 2019;
Turner et al. 2019). Only the minimax GAN's optimal D gives that ratio as its
raw score, so, as both papers do, D is first calibrated: a logistic regression
of D's score on held-out real points against fresh generated ones (two
numbers, a scale and an offset). The calibrated score is the ratio's estimate
for any objective whose D ranks real above fake (wgan, hinge, f-GANs alike);
a D that knows nothing calibrates to a constant and leaves G's samples as
they are.

- drs, discriminator rejection sampling (Azadi et al. 2019): keep x with
  probability sigmoid(F(x)), F = r - r_max - log(1 - exp(r - r_max - eps)) - gamma,
  r the calibrated score, r_max its largest value seen (a burn-in first),
  gamma the `percentile` of F over the burn-in, which sets the acceptance rate.
- mh, Metropolis-Hastings GAN (Turner et al. 2019): an independence sampler
  whose proposals are G's samples, accepting x' over x with probability
  min(1, exp(r(x') - r(x))); each output is the state of its own chain after
  `chain` proposals, the chain started from a real point as the paper does
  (restarted from a generated one when it never moved).
- threshold: keep x when r(x) is at least the `threshold_percentile` (1) of
  r over the held-out real points: only the samples D rates less real than
  almost all real data are dropped, and no others are reweighted. D's
  estimate is one to several nats low off the data (G's bridges between
  clusters) and off by a few tenths between clusters; DRS and MH follow
  both and move mass between clusters (W1 worse), a cut-off acts on the
  first only (docs/refined_sampling.md, "The threshold").

Before calibrating, a copy of D is trained as a ratio estimator with the
logistic loss against the frozen G (evaluation/ratio.py; eval.refine_steps,
gan-sample --refine-steps; 0: D as training left it).

gan-sample --sampler draws with them; a run's eval.sampler scores their
samples at each evaluation beside G's own (RefinedGenerator, refined_key).
The same holds for jacobian (evaluation/jacobian.py), which reads G alone:
build_refiner makes either.
"""

import time
from dataclasses import dataclass
from functools import partial

import torch

from gan_cli.config.checks import READS_DISCRIMINATOR, SAMPLERS
from gan_cli.errors import UserError
from gan_cli.evaluation.draws import Cost, by_class, keep_accepted
from gan_cli.evaluation.jacobian import JacobianTruncation
from gan_cli.evaluation.ratio import BATCH, STEPS, Tuning, fine_tuned
from gan_cli.latent import Latent
from gan_cli.models.inference import evaluating

CALIBRATION_POINTS = 2_000  # real and as many generated, for the two calibration numbers
BURN_IN = 10_000  # DRS: generated samples behind r_max and gamma
EPSILON = 1e-6
SUFFIX = "_refined"  # a metric of refined samples: toy/high_quality_refined, eval/class_share_refined/3
COST = "refine"  # the sampler's cost at an evaluation: refine/acceptance, ...
# eval.sampler's refiner draws from seeds seed + 5 to + 9 (build_refiner adds
# 1 to 5 to this), apart from the training's (seed, seed + 1), the pictures'
# (+ 2) and the evaluation's noise (+ 3).
REFINE_SEED = 4


def refined_key(key: str) -> str:
    """The name of a metric (or picture tag) measured on refined samples:
    the suffix on the metric's name, before a per-class index."""
    family, slash, index = key.rpartition("/")
    if slash and index.isdigit():
        return f"{family}{SUFFIX}/{index}"
    return key + SUFFIX


def as_refined(values: dict[str, float]) -> dict[str, float]:
    """An evaluation's metrics of refined samples under their own names,
    less the real-vs-real floors (G's own metrics carry them)."""
    return {refined_key(k): v for k, v in values.items() if not k.endswith("_floor")}


@dataclass
class Calibrated:
    """r(x) = scale * D(x) + offset, the estimated log p_data / p_G; `real`
    holds r of the real points it was fitted on."""

    D: torch.nn.Module
    scale: float
    offset: float
    real: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        with evaluating(self.D):
            return self.scale * self.D.score_each(x, y).float() + self.offset


def calibrate(D, real, real_y, fake, fake_y) -> Calibrated:
    """Fit scale and offset of sigmoid(scale * D(x) + offset) = P(real | x)
    by logistic regression (Newton's method: two unknowns, a convex loss) on
    equally many real and generated points."""
    with torch.no_grad(), evaluating(D):
        scores = torch.cat([D.score_each(real, real_y), D.score_each(fake, fake_y)]).double().cpu()
    target = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).double()
    spread = scores.std().clamp_min(1e-12)
    s = (scores - scores.mean()) / spread  # standardised, so Newton starts well
    features = torch.stack([s, torch.ones_like(s)], 1)  # [N, 2]
    w = torch.zeros(2, dtype=torch.float64)
    for _ in range(50):
        p = torch.sigmoid(features @ w)
        gradient = features.T @ (p - target)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + 1e-9 * torch.eye(2, dtype=w.dtype)
        step = torch.linalg.solve(hessian, gradient)
        w -= step
        if step.abs().max() < 1e-10:
            break
    scale = float(w[0] / spread)
    offset = float(w[1] - scale * scores.mean())
    return Calibrated(D, scale, offset, (scale * scores[: len(real)] + offset).float())


class Refiner:
    """draw(n, y) -> n samples of G refined by `method`, with the cost kept in
    `cost`. `real_draw(n)` gives held-out real points (x, y) for calibration
    and for MH's chain starts; `labels(n)` the classes a conditional G is
    asked for (None: unconditional); `tune(D)` -> (D', D evaluations,
    seconds), the D calibrated and read (None: D itself). Randomness comes
    from `generator` only (and tune's own)."""

    def __init__(
        self,
        method: str,
        G,
        D,
        latent,
        real_draw,
        labels,
        generator: torch.Generator,
        percentile: float = 95.0,
        chain: int = 100,
        tune=None,
        threshold_percentile: float = 1.0,
    ):
        if method not in READS_DISCRIMINATOR:  # jacobian: build_refiner makes a JacobianTruncation
            raise UserError(f"sampler must be one of {', '.join(SAMPLERS)}, got {method!r}")
        if D is None:
            raise UserError(f"sampler={method} reads the discriminator, and this run has none")
        if not 0 < percentile < 100:
            raise UserError(f"the DRS percentile must be in (0, 100), got {percentile}")
        if chain < 1:
            raise UserError(f"the MH chain must be at least 1 step, got {chain}")
        if not 0 < threshold_percentile < 100:
            raise UserError(f"the threshold percentile must be in (0, 100), got {threshold_percentile}")
        self.method, self.G, self.latent, self.real_draw, self.labels = method, G, latent, real_draw, labels
        self.generator, self.percentile, self.chain = generator, percentile, chain
        self.cost = Cost()
        if tune is not None:  # D's copy trained as a ratio estimator first (ratio.fine_tuned)
            D, evaluations, seconds = tune(D)
            self.cost.d_evaluations += evaluations
            self.cost.seconds += seconds
        began = time.perf_counter()
        real, real_y = real_draw(CALIBRATION_POINTS)
        fake, fake_y = self._generate(len(real))  # as many: the fitted offset is then the log ratio's
        self.ratio = calibrate(D, real, real_y, fake, fake_y)
        self.cost.d_evaluations += 2 * len(real)
        # threshold: the score below which a sample looks less real than all
        # but threshold_percentile % of real data (the same held-out points)
        self.cut = None
        if method == "threshold":
            self.cut = torch.quantile(self.ratio.real.double(), threshold_percentile / 100).item()
        self.cost.seconds += time.perf_counter() - began
        self.r_max = self.gamma = None

    def _generate(self, n: int, y: torch.Tensor | None = None):
        y = self.labels(n) if y is None else y
        with torch.no_grad(), evaluating(self.G):
            return self.G(self.latent.sample(n), y).float(), y

    def draw(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        began = time.perf_counter()
        y = self.labels(n) if y is None else y
        out = self._chains(n, y) if self.method == "mh" else self._rejection(n, y)
        self.cost.seconds += time.perf_counter() - began
        self.cost.kept += n
        return out

    def _F(self, r: torch.Tensor) -> torch.Tensor:
        gap = r - self.r_max
        return gap - torch.log1p(-torch.exp(gap - EPSILON))

    def _burn_in(self) -> None:
        fake, y = self._generate(BURN_IN)
        r = self.ratio(fake, y)
        self.cost.d_evaluations += BURN_IN
        self.r_max = r.max().item()
        self.gamma = torch.quantile(self._F(r).double(), self.percentile / 100).item()

    def _rejection(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        if self.method == "drs" and self.r_max is None:
            self._burn_in()
        return by_class(n, y, self._accepted)

    def _accepted(self, n: int, label: int | None) -> torch.Tensor:
        """n proposals of G (of class `label`) that passed the rejection test.
        Either test could reject nearly every sample of a G far from the data
        (or, for drs, of a D whose largest ratio seen is far above the rest):
        after draws.MAX_PROPOSALS per sample the rest are the rejected
        proposals scored highest, counted in cost.extra["unaccepted"]."""
        runners_up = None  # (x, r) of the best n rejected so far

        def propose(count: int):
            nonlocal runners_up
            asked = None if label is None else torch.full((count,), label, device=self.latent.device)
            x, _ = self._generate(count, asked)
            r = self.ratio(x, asked)
            self.cost.d_evaluations += count
            if self.method == "threshold":
                accept = r >= self.cut
            else:
                self.r_max = max(self.r_max, r.max().item())
                chance = torch.sigmoid(self._F(r) - self.gamma)
                accept = torch.rand(count, generator=self.generator, device=r.device) < chance
            runners_up = _best(runners_up, x[~accept], r[~accept], n)  # F rises with r: one order
            return x, accept

        kept, have, _ = keep_accepted(n, propose, lambda left: max(64, 2 * left), self.cost)
        if have < n:
            kept.append(runners_up[0][: n - have])
            self.cost.extra["unaccepted"] = self.cost.extra.get("unaccepted", 0) + n - have
        return torch.cat(kept)

    def _chains(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        state = self.real_draw(n)[0] if y is None else self._real_of(y)
        r = self.ratio(state, y)
        moved = torch.zeros(n, dtype=torch.bool, device=state.device)
        for _ in range(self.chain):
            x, _ = self._generate(n, y)
            r_new = self.ratio(x, y)
            accept = torch.rand(n, generator=self.generator, device=r.device).log() < (r_new - r)
            state = torch.where(accept.view(-1, *[1] * (x.dim() - 1)), x, state)
            r = torch.where(accept, r_new, r)
            moved |= accept
        self.cost.d_evaluations += n * (self.chain + 1)
        self.cost.proposed += n * self.chain
        if not moved.all():  # a chain that never left its real start restarts from G
            stuck = (~moved).nonzero().view(-1)
            fresh, _ = self._generate(len(stuck), None if y is None else y[stuck])
            state[stuck] = fresh
            self.cost.extra["restarted"] = self.cost.extra.get("restarted", 0) + len(stuck)
        return state

    def _real_of(self, y: torch.Tensor):
        """Real points of the classes in y (a conditional chain starts in its own class)."""
        x, real_y = self.real_draw(max(4 * len(y), CALIBRATION_POINTS))
        out = torch.empty(len(y), *x.shape[1:], dtype=x.dtype, device=x.device)
        for label in y.unique().tolist():
            places = (y == label).nonzero().view(-1)
            pool = x[real_y == label]
            if len(pool) == 0:
                raise UserError(f"no real example of class {label} to start its chain from")
            out[places] = pool[torch.arange(len(places), device=pool.device) % len(pool)]
        return out


def _best(best, x: torch.Tensor, r: torch.Tensor, n: int):
    """(x, r) of the n highest r among `best` and these, highest first."""
    if best is not None:
        x, r = torch.cat([best[0], x]), torch.cat([best[1], r])
    top = r.argsort(descending=True)[:n]
    return x[top], r[top]


def real_draws(data, device: torch.device, seed: int):
    """draw(n) -> (n real points, their labels or None) from the data set's own
    seeded sampler, in G's scale; a data set smaller than n is drawn in turn."""
    size = len(data) if hasattr(data, "__len__") else None

    def draw(n: int):
        parts, labels, have = [], [], 0
        sampler = data.sampler(min(n, size) if size else n, device, seed)
        while have < n:
            batch = sampler.next()
            parts.append(batch.x)
            labels.append(batch.y)
            have += len(batch.x)
        x = torch.cat(parts)[:n]
        return x, None if labels[0] is None else torch.cat(labels)[:n]

    return draw


def build_refiner(
    method: str,
    G,
    D,
    data,
    latent_config,
    device: torch.device,
    seed: int,
    percentile: float = 95.0,
    chain: int = 100,
    refine_steps: int = STEPS,
    threshold_percentile: float = 1.0,
    jacobian_drop: float = 5.0,
) -> "Refiner | JacobianTruncation":
    """A Refiner of a run's G with its D, calibrated on the run's data set
    (gan-sample and a run's evaluations alike): G's noise from the run's
    latent prior, classes in turn for a conditional G, and each of noise,
    accept/reject draws and real points from its own generator (seeds
    seed + 1, + 2, + 3): nothing else's random stream is touched. With
    refine_steps > 0 a copy of D is first trained as a ratio estimator for
    that many steps (ratio.fine_tuned; its noise and real points from seeds
    seed + 4, + 5). method "jacobian" reads neither D nor the data (None
    will do): a JacobianTruncation of G, its noise from seed + 1 and its
    estimate's directions (images) from seed + 2."""
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
        raise UserError(f"refine steps must be a whole number >= 0 (0: D as trained), got {refine_steps!r}")
    classes = getattr(G, "num_classes", 0)
    latent = Latent.from_config(latent_config, device, seed + 1, portable=True)

    def labels(n: int):
        return torch.arange(n, device=device) % classes if classes else None

    generator = torch.Generator(device=device).manual_seed(seed + 2)
    if method == "jacobian":
        return JacobianTruncation(G, latent, labels, jacobian_drop, generator)

    draws = real_draws(data, device, seed + 3)
    tune = None
    if refine_steps and D is not None:
        noise = Latent.from_config(latent_config, device, seed + 4, portable=True)
        batches = data.sampler(BATCH, device, seed + 5)
        tune = partial(fine_tuned, G=G, latent=noise, real_batches=batches, tuning=Tuning(refine_steps))
    return Refiner(
        method,
        G,
        D,
        latent,
        draws,
        labels,
        generator,
        percentile,
        chain,
        tune,
        threshold_percentile=threshold_percentile,
    )


class RefinedGenerator(torch.nn.Module):
    """G refined by D, called as G is: G(z, y) gives len(z) samples (of the
    classes y) drawn by the refiner, so every metric and picture of G
    applies unchanged. z's values are not used: the refiner draws its own
    noise for its proposals."""

    def __init__(self, refiner: Refiner):
        super().__init__()
        self.refiner = refiner  # a plain object: G and D are not this module's parameters
        self.num_classes = getattr(refiner.G, "num_classes", 0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.refiner.draw(len(z), y)


def evaluation_refiner(cfg, G, D, data, device: torch.device) -> "Refiner | JacobianTruncation":
    """The refiner of a run's eval.sampler, made afresh at each evaluation
    (and by gan-eval for a checkpoint): cfg is the run's config."""
    options = cfg.eval
    return build_refiner(
        options.sampler,
        G,
        D,
        data,
        cfg.latent,
        device,
        cfg.seed + REFINE_SEED,
        percentile=options.drs_percentile,
        chain=options.mh_chain,
        refine_steps=options.refine_steps,
        threshold_percentile=options.threshold_percentile,
        jacobian_drop=options.jacobian_drop,
    )

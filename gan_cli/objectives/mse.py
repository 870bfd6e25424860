"""Regression without a discriminator: fit g(z_i) to data points y_i.

With a fresh z and a random y_i every step, nothing ties a z to a y, so the
minimiser of E||g(z) - y||^2 is g(z) = E[y]: every sample becomes the average
image. That failure is what adversarial objectives fix.
"""

import torch

from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective

PAIRINGS = ("resample", "fixed")
SOLVERS = ("gradient", "analytic")


class MSE(Objective):
    uses_discriminator = False
    estimate_name = "mse"
    choices = {"pairing": PAIRINGS, "solver": SOLVERS}

    def __init__(
        self,
        name: str = "mse",
        pairing: str = "resample",
        solver: str = "gradient",
        conditional: bool = False,
        **shared,
    ):
        super().__init__(name, critic_steps=0, conditional=conditional, **shared)  # no D
        self.pairing = pairing
        self.closed_form = solver == "analytic"
        self.fixed_z: torch.Tensor | None = None

    def setup(self, data, latent) -> None:
        if self.pairing == "fixed":
            self.fixed_z = latent.sample(len(data))  # z_i for example i, for good

    def solve(self, G, data) -> dict[str, float]:
        """objective.solver=analytic: G set to the least-squares fit, dL/dθ = 0."""
        targets = data.scaled().flatten(1).to(self.fixed_z.device)
        return {"mse": solve_linear_generator(G, self.fixed_z, targets)}

    def generator_loss(self, G, D, batch, latent):
        z = self.fixed_z[batch.index] if self.fixed_z is not None else latent.sample(len(batch.x))
        loss = losses.squared_error(G(z, self.labels(batch)), batch.x)
        return loss, {"mse": loss.detach()}

    def state_dict(self) -> dict:
        return {"fixed_z": self.fixed_z}

    def load_state_dict(self, state: dict) -> None:
        self.fixed_z = state.get("fixed_z")


@torch.no_grad()
def solve_linear_generator(G, z: torch.Tensor, targets: torch.Tensor) -> float:
    """Set G = W2 (W1 z + b1) + b2 to the least-squares fit of targets [N, D]
    from z [N, L], the point where dL/dθ = 0, and return its mean squared error.

    G is linear in z with rank at most h (its hidden width), so this is
    reduced-rank regression: ordinary least squares B, then the fitted values
    projected onto their top-h principal directions V_h: A = B V_h V_h^T.

    The solution is a set of weights, not a loss to descend: it is written
    straight into G's two Linear layers (models/linear.py's G.net), which is
    why this objective, unlike the others, reaches into G. That G is
    model=linear, unconditional, was checked by gan_cli.config.checks
    (objective.solver=analytic).
    """
    first, second = G.net  # W1, b1 then W2, b2
    hidden = first.out_features
    # float64 on the CPU: LAPACK's SVD-based gelsd copes with rank-deficient
    # z and is not offered on CUDA; copy_ below brings the result to G's device.
    Z, Y = z.double().cpu(), targets.double().cpu()
    z_mean, y_mean = Z.mean(0), Y.mean(0)
    Zc, Yc = Z - z_mean, Y - y_mean
    B = torch.linalg.lstsq(Zc, Yc, driver="gelsd").solution  # [L, D]
    _, _, Vt = torch.linalg.svd(Zc @ B, full_matrices=False)  # fitted values' directions
    Vh = torch.zeros(Y.shape[1], hidden, dtype=Y.dtype, device=Y.device)
    top = Vt[:hidden].T  # [D, <=h]
    Vh[:, : top.shape[1]] = top
    W1 = (B @ Vh).T  # [h, L]
    first.weight.copy_(W1)
    first.bias.copy_(-W1 @ z_mean)  # centre z
    second.weight.copy_(Vh)  # [D, h]
    second.bias.copy_(y_mean)
    fitted = second(first(z))
    return losses.squared_error(fitted, targets).item()

"""The picture in README's "Sharp or varied": one trained G sampled with its
noise scaled by ψ (gan-sample --truncation), each panel with the precision
and recall gan-eval --truncation measures for it.

    python docs/truncation_picture.py RUN docs/truncation.png 0.3 1 2
"""

import sys

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gan_cli.commands.evaluate import evaluate_checkpoint
from gan_cli.commands.sample import draw_batches
from gan_cli.output.pictures import make_grid
from gan_cli.run.checkpoint import load_checkpoint


def main(run: str, out: str, *psis: str) -> None:
    state = load_checkpoint(run)
    psis = [float(p) for p in psis] or [0.3, 1.0, 2.0]
    fig = Figure(figsize=(3.2 * len(psis), 2.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, psi in enumerate(psis):
        values = evaluate_checkpoint(state, truncation=psi)
        [(samples, _)] = draw_batches(state, 60, seed=0, truncation=psi)  # 6 per class, in class order
        picture = make_grid(((samples + 1) / 2).clamp(0, 1), nrow=10)
        ax = fig.add_subplot(1, len(psis), i + 1)
        ax.imshow(picture[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(
            f"ψ = {psi:g}\nprecision {values['eval/precision']:.2f}, recall {values['eval/recall']:.2f}\n"
            f"eval/fd {values['eval/fd']:.2f}",
            fontsize=10,
        )
        print(f"psi {psi}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items() if "/" not in k[5:]))
    fig.tight_layout()
    fig.savefig(out, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main(*sys.argv[1:])

"""gan-cli: a command-line experiment runner for generative adversarial networks."""

import os

# Intel MKL (torch's CPU BLAS here) otherwise picks its matrix-vector kernels
# by the memory alignment of their operands, which differs from process to
# process, so the same run would now and then follow another trajectory.
# Conditional numerical reproducibility makes the results independent of
# alignment. MKL reads the variable at its first call, so setting it here,
# before any gan_cli module runs torch, covers every console script,
# `python -m gan_cli.train` and launched workers; a value the user set (even
# empty, for MKL's default) is kept. docs/reproducibility.md has more.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

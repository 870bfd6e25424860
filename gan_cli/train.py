"""`python -m gan_cli.train` (and torchrun's `-m gan_cli.train`): gan-train
under its long-standing module name; the command lives in gan_cli.commands.train."""

from gan_cli.commands.train import cli

if __name__ == "__main__":
    cli.script()

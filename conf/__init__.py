# Hydra configs; this file makes them an importable package (gan_cli.conf).

"""What a run reports goes through the `gan_cli` logger: to stderr and to the
run folder's train.log. Under gan-train, Hydra's job logging (conf/config.yaml,
hydra.job_logging) sets both up, in single runs and sweep jobs alike; a run
started from Python (runner.run) gets the same two handlers from
`logging_to` for its duration."""

import contextlib
import logging
import sys
from pathlib import Path

from gan_cli.output.layout import LOG

log = logging.getLogger("gan_cli")

STAMPED = "[%(asctime)s] %(message)s"


class NotOnTerminal(logging.Filter):
    """Keeps a record off the console when the progress bar already shows it
    there (record.shown_on_terminal); train.log still gets every line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "shown_on_terminal", False)


def _writes_to(handler: logging.Handler, path: Path) -> bool:
    name = getattr(handler, "baseFilename", None)
    return name is not None and Path(name).resolve() == path.resolve()


def _writes_to_stderr(handler: logging.Handler) -> bool:
    return (
        isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
        and getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__)
    )


@contextlib.contextmanager
def logging_to(run_dir: Path):
    """Make sure `gan_cli` records reach run_dir/train.log and stderr while
    the run lasts, adding only the handlers that Hydra has not set up."""
    path = Path(run_dir) / LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handlers = [*root.handlers, *log.handlers]
    added = []
    if not any(_writes_to(h, path) for h in handlers):
        file = logging.FileHandler(path)
        file.setFormatter(logging.Formatter(STAMPED))
        added.append(file)
    if not any(_writes_to_stderr(h) for h in handlers):
        console = logging.StreamHandler(sys.stderr)
        console.addFilter(NotOnTerminal())
        added.append(console)
    level = log.level
    log.setLevel(logging.INFO)
    for handler in added:
        log.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            log.removeHandler(handler)
            handler.close()
        log.setLevel(level)

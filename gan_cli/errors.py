"""The one exception type for input a user can fix, and the one way every
console script reports it: `PROG: error: MESSAGE` on stderr and exit 2.

A console script's main is decorated with `@command("gan-...")` and parses
its command line with OneLineParser; it raises UserError for bad input and
writes files inside `writing(path)`. Ctrl-C ends it with one line and exit 130.
"""

import argparse
import atexit
import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from gan_cli import __version__

INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a program stopped by Ctrl-C


class UserError(Exception):
    """Bad input (option, value, data, checkpoint), or a file that cannot be
    written: reported as one line, exit 2."""


def exit_with(error: BaseException, prog: str) -> NoReturn:
    """Print `prog: error: message` on stderr and exit non-zero, no traceback."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    sys.exit(2)


def user_error_in(exc: BaseException) -> UserError | None:
    """The UserError behind `exc`, looking through wrappers such as Hydra's
    InstantiationException, which re-raise with the original as the cause."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def os_reason(error: OSError) -> str:
    """The system's words for an OSError ("No space left on device"), also
    for one raised as OSError(errno.ENOSPC), which carries only the number."""
    if error.strerror:
        return error.strerror
    code = error.errno
    if code is None and error.args and isinstance(error.args[0], int):
        code = error.args[0]
    if code is not None:
        return os.strerror(code)
    return str(error) or type(error).__name__


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Around code that writes `path`: an OSError (full disk, read-only file
    system, no permission) becomes the one line `cannot write PATH: reason`."""
    try:
        yield
    except OSError as error:
        raise UserError(f"cannot write {Path(path)}: {os_reason(error)}") from error


@contextlib.contextmanager
def reported(
    prog: str,
    writing: str | None = "cannot write output",
    quiet: Callable[[BaseException], bool] | None = None,
):
    """A console script's body: a UserError, an OSError while writing its
    files (`writing: <file>: <reason>`), or an allocation the machine cannot
    give (out_of_memory), ends the program with one line on stderr and exit
    2; Ctrl-C with one line and exit 130.

    writing=None lets an OSError through, for a command whose writes all go
    through `writing(path)` already: any other OSError is then a fault to see
    in full, not a file that cannot be written. quiet(error) true ends with
    exit 2 but no line: the error of a process that another process reports
    for all (the ranks of a run on several processes)."""
    try:
        yield
    except UserError as error:
        _leave(error, prog, quiet)
    except OSError as error:
        if writing is None:
            raise
        where = f"{error.filename}: " if error.filename else ""
        _leave(UserError(f"{writing}: {where}{os_reason(error)}"), prog, quiet)
    except (MemoryError, RuntimeError) as error:  # torch's out-of-memory errors are RuntimeErrors
        if (line := out_of_memory(error)) is None:
            raise
        _leave(UserError(line), prog, quiet)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)


def out_of_memory(error: BaseException) -> str | None:
    """The one line for an allocation that failed (the CPU's or a GPU's), or
    None for any other error: a size the machine cannot hold is a setting to
    lower, not a fault to read a traceback for."""
    text = str(error)
    if cpu := re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", text):
        what = f"an allocation of {int(cpu.group(1)) / 2**30:,.1f} GiB failed"
    elif gpu := re.search(r"out of memory\. Tried to allocate ([\d.]+ \w+)", text):
        what = f"an allocation of {gpu.group(1)} on the GPU failed"
    elif isinstance(error, MemoryError):
        what = "Python could not allocate memory"
    else:
        return None
    return (
        f"out of memory: {what}; lower what is held at once (train.batch_size, "
        f"eval.num_samples, gan-sample --num, gan-eval --num-samples)"
    )


def _leave(error: UserError, prog: str, quiet) -> NoReturn:
    if quiet is not None and quiet(error):
        sys.exit(2)
    exit_with(error, prog)


def command(
    prog: str,
    writing: str | None = "cannot write output",
    quiet: Callable[[BaseException], bool] | None = None,
):
    """Decorator for a console script's main, so that every command ends the
    same way on bad input (see `reported` for the arguments):

        @command("gan-sample")
        def main(argv=None) -> None:
            args = OneLineParser(prog="gan-sample", ...).parse_args(argv)
            ...

    The installed console script calls `main.script()` (pyproject's
    [project.scripts]), which ends the process at once afterwards (see
    `ending_at_once`); tests call main itself, in their own process.
    """

    def decorate(main):
        @functools.wraps(main)
        def run(*args, **kwargs):
            with reported(prog, writing, quiet):
                return main(*args, **kwargs)

        run.script = ending_at_once(run)
        return run

    return decorate


def ending_at_once(main: Callable[[], object]) -> Callable[[], NoReturn]:
    """A console script's entry: main(), then the process ends without the
    interpreter's teardown. Tearing torch down (freeing every module and its
    libraries) takes about half a second (docs/speed.md), as long as a short
    run's own start-up, and protects nothing: by then every file the
    command wrote is closed, and here the exit handlers run (logging's
    flush and close among them) and stdout and stderr are flushed first.
    Where a thread other than the main one still runs, the process ends the
    usual way, which waits for it. The exit status is sys.exit's."""

    @functools.wraps(main)
    def script() -> NoReturn:
        try:
            code = main()
        except SystemExit as stop:
            code = stop.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)  # what sys.exit("text") prints
            code = 1
        others = [t for t in threading.enumerate() if t is not threading.main_thread()]
        if any(t.is_alive() and not t.daemon for t in others):
            sys.exit(code)
        atexit._run_exitfuncs()  # noqa: SLF001 -- what sys.exit would run before the teardown
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing reaches it
                stream.flush()
        os._exit(code or 0)

    return script


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line gets the same one line as any other
    bad input (`prog: error: message`, exit 2), not the usage block first."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s (gan-cli {__version__})")

    def error(self, message: str) -> NoReturn:
        exit_with(UserError(f"{message} (see {self.prog} --help)"), self.prog)


def file_in_the_way(path: Path) -> Path | None:
    """The existing file that stands where `path`, or a folder on its way to
    it, would have to be made; None where every folder can be."""
    for on_the_way in [path, *path.parents]:
        if on_the_way.exists():
            return None if on_the_way.is_dir() else on_the_way
    return None


def output_file(text: str) -> Path:
    """argparse type of an option naming a file to write (--json, --out):
    a folder there, or a file where a folder of its path should be, is
    refused while the command line is read, not after the work is done."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the name of a file to write")
    if (blocker := file_in_the_way(path.parent)) is not None:
        raise argparse.ArgumentTypeError(f"{blocker} is a file, so {text} cannot be written")
    return path


def output_folder(text: str) -> Path:
    """argparse type of an option naming a folder to write into (--out): a
    file there, or on its way, is refused while the command line is read."""
    path = Path(text)
    if (blocker := file_in_the_way(path)) is not None:
        raise argparse.ArgumentTypeError(f"{blocker} is a file, so the folder {text} cannot be made")
    return path

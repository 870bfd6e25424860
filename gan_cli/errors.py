"""The one exception type for input a user can fix, and how commands report it."""

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import NoReturn


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
def reported(prog: str, writing: str = "cannot write output"):
    """A console script's body: a UserError, or an OSError while writing its
    files (`writing: <file>: <reason>`), ends the program with one line on stderr."""
    try:
        yield
    except UserError as error:
        exit_with(error, prog)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        exit_with(UserError(f"{writing}: {where}{os_reason(error)}"), prog)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line gets the same one line as any other
    bad input (`prog: error: message`, exit 2), not the usage block first."""

    def error(self, message: str) -> NoReturn:
        exit_with(UserError(f"{message} (see {self.prog} --help)"), self.prog)

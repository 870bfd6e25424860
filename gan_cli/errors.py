"""The one exception type for input a user can fix, and how commands report it."""

import contextlib
import sys
from typing import NoReturn


class UserError(Exception):
    """Bad input (option, value, data, checkpoint): reported as one line, exit 2."""


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


@contextlib.contextmanager
def reported(prog: str, writing: str = "cannot write output"):
    """A console script's body: a UserError, or an OSError while writing its
    files (`writing: <reason>`), ends the program with one line on stderr."""
    try:
        yield
    except UserError as error:
        exit_with(error, prog)
    except OSError as error:
        exit_with(UserError(f"{writing}: {error}"), prog)

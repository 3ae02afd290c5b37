"""What every command shares: exit codes and how a value is shown on one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from zerotrust._describe import printable

if TYPE_CHECKING:
    from zerotrust.errors import PolicyError

__all__ = [
    "EXIT_DENY",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_STEP_UP",
    "EXIT_USAGE",
    "os_error",
    "print_diagnostics",
    "printable",
]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_DENY = 3
EXIT_STEP_UP = 4


def os_error(exc: OSError) -> str:
    """An OSError on one line: its file and reason when it has them."""
    if exc.strerror and exc.filename is not None:
        return printable(f"{exc.filename}: {exc.strerror}")
    return printable(" ".join(str(exc).split()))


def print_diagnostics(exc: PolicyError, out: TextIO) -> None:
    for diagnostic in exc.diagnostics:  # file names and values shown may hold controls
        print(printable(str(diagnostic)), file=out)
    count = len(exc.diagnostics)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=out)

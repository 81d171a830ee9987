"""What fable's commands share: one-line errors with the right exit code, never a traceback."""

from __future__ import annotations

import enum
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

from ..backend import BACKENDS
from ..errors import FableError, SettingError, log


def choices(name: str, values: Sequence[str]) -> type[enum.Enum]:
    """An Enum of strings for a flag's choices: typer shows and checks them, the value is the string."""
    return enum.Enum(name, {value: value for value in values}, type=str)


# --backend's choices; no flag: onnxruntime where it is installed, numpy where it is not.
Backend = choices("Backend", BACKENDS)
BACKEND_HELP = "what runs the model: onnxruntime, or numpy where there is no onnxruntime"
BACKEND_DEFAULT = "onnxruntime if installed, else numpy"

# --threads and --spin of the commands that load a model: no flag takes what `fable-bench --tune`
# chose for the file on this machine, or the safe defaults.
TUNED_DEFAULT = "what fable-bench --tune chose here, else 1 thread, no spinning"

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def new_app() -> typer.Typer:
    """A typer app with plain help: every option with its default and range, no type placeholders."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned, a rule under the header."""
    table = [tuple(header), *map(tuple, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in table]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def require_extra(prog: str, extra: str, modules: Sequence[str]) -> None:
    """Exit with one line naming the extra to install unless every module imports (absent, or
    installed but broken: either way the extra is what to install)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        fail(prog, f"{prog} needs {', '.join(missing[:-1]) + ' and ' if len(missing) > 1 else ''}{missing[-1]}, "
             f'which a plain install leaves out; install them with: pip install "fable[{extra}]"', EXIT_USAGE)  # fmt: skip


def fail(prog: str, message: str, code: int) -> NoReturn:
    one_line = " ".join(message.split())
    print(f"{prog}: error: {one_line}", file=sys.stderr)
    raise SystemExit(code)


def interrupted(prog: str) -> NoReturn:
    print(f"{prog}: interrupted", file=sys.stderr)
    raise SystemExit(EXIT_INTERRUPTED)


class _Notices(logging.StreamHandler):
    """The library's notices (INFO and above) as bare lines on whatever sys.stderr is when each
    is said, as Python's last resort prints them (a test may redirect stderr around a command)."""

    stream = property(lambda self: sys.stderr, lambda self, value: None)  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))


def show_notices() -> None:
    """Print the `fable` logger's notices on stderr: the library says them at INFO, where an app
    that set up no logging hears nothing, and a command's user should read them. One handler
    however many times a process runs a command (tests run many in one)."""
    if not any(isinstance(handler, _Notices) for handler in log.handlers):
        log.addHandler(_Notices())
    log.setLevel(logging.INFO)


def run_app(app: typer.Typer, prog: str, argv: Sequence[str] | None = None) -> NoReturn:
    """Run a typer app as `prog`: FableErrors and bad flags become one line on stderr and an exit
    code (usage 2, model and file 1, interrupted 130), and the library's notices are printed on
    stderr. FABLE_DEBUG=1 shows tracebacks instead."""
    show_notices()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=list(argv) if argv is not None else None, prog_name=prog, standalone_mode=False)
    except typer.TyperException as error:  # the parser's: an unknown flag, a value out of its range
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        fail(prog, f"{message} (see {prog} --help)", getattr(error, "exit_code", EXIT_USAGE))
    except SettingError as error:  # every value the library checks came from a flag here
        fail(prog, error.for_flag(), error.exit_code)
    except FableError as error:
        fail(prog, str(error), error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        interrupted(prog)
    except BrokenPipeError:  # `fable-run ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush stays quiet
        raise SystemExit(0) from None
    except Exception as error:
        if os.environ.get("FABLE_DEBUG"):
            raise
        fail(prog, f"unexpected {type(error).__name__}: {error}; rerun with FABLE_DEBUG=1 and report it", 1)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into this code, silently
        interrupted(prog)
    raise SystemExit(code if isinstance(code, int) else 0)

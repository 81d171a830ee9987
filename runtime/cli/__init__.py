"""What fable's commands share: one-line errors with the right exit code, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

from ..errors import FableError

try:  # typer 0.2x and later carry their own copy of click
    from typer._click.exceptions import UsageError as _FlagError
except ImportError:  # older typer runs on click itself
    from click.exceptions import UsageError as _FlagError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def fail(prog: str, message: str, code: int) -> NoReturn:
    one_line = " ".join(message.split())
    print(f"{prog}: error: {one_line}", file=sys.stderr)
    raise SystemExit(code)


def run_app(app: typer.Typer, prog: str, argv: Sequence[str] | None = None) -> NoReturn:
    """Run a typer app as `prog`: FableErrors and bad flags become one line on stderr and an exit
    code (usage 2, model and file 1, interrupted 130). FABLE_DEBUG=1 shows tracebacks instead."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=list(argv) if argv is not None else None, prog_name=prog, standalone_mode=False)
    except _FlagError as error:
        fail(prog, f"{error.format_message()} (see {prog} --help)", EXIT_USAGE)
    except FableError as error:
        fail(prog, str(error), error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail(prog, "interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # `fable-run ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush stays quiet
        raise SystemExit(0) from None
    except Exception as error:
        if os.environ.get("FABLE_DEBUG"):
            raise
        fail(prog, f"unexpected {type(error).__name__}: {error}; rerun with FABLE_DEBUG=1 and report it", 1)
    raise SystemExit(code if isinstance(code, int) else 0)

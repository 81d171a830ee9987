"""`python -m fable ...` runs fable-run; `python -m fable bench ...`, fable-bench; `python -m fable
serve ...`, fable-serve: for a virtual environment whose bin/ is not on PATH (a Pi reached by ssh)."""

from __future__ import annotations

import sys


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in ("bench", "serve", "run"):
        del sys.argv[1]
        sys.argv[0] = f"fable-{command}"
    else:
        command = "run"
    if command == "bench":
        from .cli.bench import entry
    elif command == "serve":
        from .cli.serve import entry
    else:
        from .cli.run import entry
    entry()


if __name__ == "__main__":
    main()

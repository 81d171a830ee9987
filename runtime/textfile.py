"""Reading a user's text file, with one plain line for each way it can fail."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

MAX_TEXT_BYTES = 1024**3


def read_text_file(path: Path, what: str, fix: str) -> tuple[str, bytes]:
    """The UTF-8 text of `path` (a byte-order mark dropped), and its bytes. `what` names it in errors ("corpus
    file"), and `fix` says what to pass instead ("pass --corpus PATH to a UTF-8 text file")."""
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist; {fix}")
    if not path.is_file():
        raise UsageError(f"{what} {path} is not a file; {fix}")
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise UsageError(f"{what} {path} is larger than {MAX_TEXT_BYTES:,} bytes; split it")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{what} {path} cannot be read ({error.strerror}); {fix}") from None
    try:
        return data.decode("utf-8-sig"), data
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{what} {path} is not UTF-8 text (invalid byte at offset {error.start}); convert it to UTF-8"
        ) from None

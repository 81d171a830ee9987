"""Reading a user's text file, with one plain line for each way it can fail."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError

MAX_TEXT_BYTES = 1024**3
PIECE_BYTES = 1 << 20  # read a large file this much at a time
WHITESPACE = " \n\t\r\f\v"  # where a piece may end: no token of either tokenizer holds one


def read_text_file(path: Path, what: str, fix: str) -> tuple[str, bytes]:
    """The UTF-8 text of `path` (a byte-order mark dropped), and its bytes. `what` names it in errors ("corpus
    file"), and `fix` says what to pass instead ("pass --corpus PATH to a UTF-8 text file")."""
    _check_file(path, what, fix)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{what} {path} cannot be read ({error.strerror}); {fix}") from None
    try:
        return data.decode("utf-8-sig"), data
    except UnicodeDecodeError as error:
        raise _not_utf8(what, path, error.start) from None


def text_pieces(path: Path, what: str, fix: str, digest: hashlib._Hash) -> Iterator[str]:
    """The UTF-8 text of `path` in pieces of about PIECE_BYTES, each ending at white space (a piece
    never cuts a word; a text without any is one piece), while `digest` is fed the file's bytes: what `read_text_file` reads,
    without ever holding the whole file. The same errors, raised when the reader meets them."""
    _check_file(path, what, fix)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    carried, offset = "", 0
    try:
        with open(path, "rb") as file:
            while True:
                data = file.read(PIECE_BYTES)
                digest.update(data)
                pending = len(decoder.getstate()[0])
                try:
                    text = carried + decoder.decode(data, final=not data)
                except UnicodeDecodeError as error:
                    raise _not_utf8(what, path, offset - pending + error.start) from None
                offset += len(data)
                if not data:
                    if text:
                        yield text
                    return
                cut = max(text.rfind(space) for space in WHITESPACE) + 1
                carried = text[cut:]
                if cut:
                    yield text[:cut]
    except OSError as error:
        raise UsageError(f"{what} {path} cannot be read ({error.strerror}); {fix}") from None


def _check_file(path: Path, what: str, fix: str) -> None:
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist; {fix}")
    if not path.is_file():
        raise UsageError(f"{what} {path} is not a file; {fix}")
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise UsageError(f"{what} {path} is larger than {MAX_TEXT_BYTES:,} bytes; split it")


def _not_utf8(what: str, path: Path, offset: int) -> UsageError:
    return UsageError(f"{what} {path} is not UTF-8 text (invalid byte at offset {offset}); convert it to UTF-8")

"""Writing files so that a reader never sees half of one: a temporary file, then a rename."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError


@contextlib.contextmanager
def atomic_paths(*targets: Path) -> Iterator[list[Path]]:
    """Yield a temporary path beside each target; once the block succeeds they replace their
    targets whole, one rename each, in the order given (put the file that vouches for the others last).

    If the block raises, or the process dies, each target keeps its old contents and the temporary
    files are removed (or, after a kill, left as hidden `.tmp` files that nothing reads).
    """
    temporaries: list[Path] = []
    try:
        for target in map(Path, targets):
            temporaries.append(_new_file_beside(target))
        yield list(temporaries)
        for temporary in temporaries:
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
        for temporary, target in zip(temporaries, targets):
            os.replace(temporary, target)
            _sync_directory(Path(target).parent)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """`atomic_paths` for one file."""
    with atomic_paths(target) as (temporary,):
        yield temporary


def _new_file_beside(target: Path) -> Path:
    """A new, empty, hidden file in the target's folder. Made with mode 0o666, so the process's
    umask applies as to any file it writes (mkstemp would make it private, and reading the umask
    means setting it, which races with other threads)."""
    for _ in range(100):
        path = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name beside {target}")


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def output_folder(out: Path) -> Iterator[Path]:
    """Create the output folder `out` (UsageError if it cannot hold our files) for the block.

    If the block fails or is interrupted, the folders it created and left empty are removed again:
    a failed command leaves no trace but the files it meant to keep.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; choose another --out")
    missing = [folder for folder in (out, *out.parents) if not folder.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create --out {out} ({error.strerror}); choose another --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write in --out {out} (permission denied); choose another --out")
    try:
        yield out
    except BaseException:
        for folder in missing:  # innermost first
            with contextlib.suppress(OSError):  # not empty, or gone: leave it
                folder.rmdir()
        raise

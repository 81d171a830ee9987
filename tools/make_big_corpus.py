"""Write a UTF-8 text of about N tokens from the English documentation that ships on this machine.

    python tools/make_big_corpus.py --tokens 2200000 --out /tmp/docs-2.2M.txt

Where the text comes from: the plain-text files of /usr/share/doc that Debian packages install,
READMEs (README*), *.txt, changelogs (changelog*, e.g. changelog.Debian.gz) and copyright files,
gunzipped where they end in .gz. Real prose and reference text of many authors, as a user's
manual set or mail would be: what issue 27 measured memory on. Files are taken in sorted path
order, so the same machine always writes the same text; symbolic links, files that are not UTF-8
text, and files identical to one already taken (the same licence in many packages) are skipped.
Tokens are counted with fable.tokenizer.tokenize file by file, and the last file is cut at the
first line break where N is reached; when the collection holds fewer than N tokens it is written
again from the start, and the output says so.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from fable.tokenizer import tokenize

DOC = Path("/usr/share/doc")


def wanted(name: str) -> bool:
    """A README, a .txt, a changelog or a copyright file, gzipped or not."""
    name = name.removesuffix(".gz").lower()
    return name.startswith(("readme", "changelog")) or name.endswith(".txt") or name == "copyright"


def documents(root: Path = DOC) -> Iterator[tuple[Path, str]]:
    """Each distinct wanted file under `root` and its text, in sorted path order."""
    paths = []
    for folder, _, files in os.walk(root):  # does not follow links to folders
        paths += [Path(folder, name) for name in files if wanted(name)]
    seen: set[bytes] = set()
    for path in sorted(paths):
        if path.is_symlink():
            continue
        try:
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            text = data.decode("utf-8")
        except (OSError, EOFError, zlib.error, UnicodeDecodeError):
            continue  # unreadable, a damaged archive, or not UTF-8
        digest = hashlib.sha256(data).digest()
        if "\x00" in text or digest in seen or not text.strip():
            continue
        seen.add(digest)
        yield path, text


def head(text: str, tokens: int) -> tuple[str, int]:
    """The lines of `text` up to the first line break at or past `tokens` tokens, and their count."""
    kept, count = [], 0
    for line in text.splitlines(keepends=True):
        kept.append(line)
        count += len(tokenize(line))
        if count >= tokens:
            break
    return "".join(kept), count


def write_corpus(tokens: int, out: Path, root: Path = DOC) -> dict[str, int]:
    """Write about `tokens` tokens of `root`'s documents to `out`; how many files, bytes, tokens and passes."""
    files = count = passes = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # a run cut short leaves no file that looks whole
    with open(partial, "w", encoding="utf-8") as file:
        while count < tokens:
            passes += 1
            before = count
            for _, text in documents(root):
                n = len(tokenize(text))
                if count + n > tokens:
                    text, n = head(text, tokens - count)
                text = text if text.endswith("\n") else text + "\n"  # a token never spans files
                file.write(text)
                files, count = files + 1, count + n
                if count >= tokens:
                    break
            if count == before:
                raise SystemExit(f"no readable documentation under {root}")
    os.replace(partial, out)
    return {"files": files, "bytes": out.stat().st_size, "tokens": count, "passes": passes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, required=True, help="about how many tokens to write")
    parser.add_argument("--out", type=Path, required=True, help="the text file to write")
    parser.add_argument("--root", type=Path, default=DOC, help="where the documentation lies")
    args = parser.parse_args()
    made = write_corpus(args.tokens, args.out, args.root)
    print(f"{args.out}: {made['files']:,} files, {made['bytes']:,} bytes, {made['tokens']:,} tokens from {args.root}")
    if made["passes"] > 1:
        print(f"the collection held too few tokens: it was written {made['passes']} times over (repeated text)")


if __name__ == "__main__":
    main()

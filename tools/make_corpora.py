"""Write the four real corpora beside the fable, from files that ship with Debian and with Python.

    python tools/make_corpora.py

- training/corpora/gpl-3.txt: the GNU General Public License, version 3, verbatim, from Debian's
  /usr/share/common-licenses/GPL-3 (about 5,600 words).
- training/corpora/python-reference.txt: the Python language reference topics that `pydoc`
  ships in `pydoc_data.topics`, in the order of their names, up to the first topic boundary past
  40,000 words.
- training/corpora/sed-changelog.txt: GNU sed's upstream ChangeLog (generated from its git log,
  2014-2022), verbatim, from Debian's /usr/share/doc/sed/changelog.gz (package `sed`, about
  18,300 words).
- training/corpora/grep-manual.txt: the GNU grep manual, from Debian's
  /usr/share/info/grep.info.gz (package `grep`): its nodes in file order, each without its
  `File: ..., Node: ...` header line; the Index node, the tag table, the local variables and the
  preamble (which the Top node repeats) are left out. The GNU Free Documentation License, the
  manual's last section, stays in, as the licence asks of copies (about 13,600 words, 3,700 of
  them the licence).

Sources and licences: training/corpora/SOURCES.md.
"""

from __future__ import annotations

import gzip
import pydoc_data.topics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "training" / "corpora"
GPL = Path("/usr/share/common-licenses/GPL-3")
REFERENCE_WORDS = 40_000
SED_CHANGELOG = Path("/usr/share/doc/sed/changelog.gz")
GREP_INFO = Path("/usr/share/info/grep.info.gz")
INFO_INDEX = "\x00\x08[index\x00\x08]"  # makeinfo's mark at the top of an index node


def python_reference() -> str:
    parts, words = [], 0
    for name in sorted(pydoc_data.topics.topics):
        text = pydoc_data.topics.topics[name].strip()
        parts.append(text)
        words += len(text.split())
        if words >= REFERENCE_WORDS:
            break
    return "\n\n".join(parts) + "\n"


def info_manual(path: Path) -> str:
    """The text of an Info file's nodes, in file order, without their header lines or indexes."""
    parts = []
    for chunk in gzip.decompress(path.read_bytes()).decode("utf-8").split("\x1f\n"):
        if not chunk.startswith("File: ") or INFO_INDEX in chunk:
            continue  # the preamble, the tag table, the local variables, an index
        parts.append(chunk.split("\n", 1)[1].strip())
    return "\n\n".join(parts) + "\n"


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / "gpl-3.txt").write_bytes(GPL.read_bytes())
    (FOLDER / "python-reference.txt").write_text(python_reference(), encoding="utf-8")
    (FOLDER / "sed-changelog.txt").write_bytes(gzip.decompress(SED_CHANGELOG.read_bytes()))
    (FOLDER / "grep-manual.txt").write_text(info_manual(GREP_INFO), encoding="utf-8")
    for path in sorted(FOLDER.glob("*.txt")):
        print(f"{path.relative_to(ROOT)}: {len(path.read_text(encoding='utf-8').split()):,} words")


if __name__ == "__main__":
    main()

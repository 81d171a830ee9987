"""Write the two real corpora beside the fable, from files that ship with Debian and with Python.

    python tools/make_corpora.py

- training/corpora/gpl-3.txt: the GNU General Public License, version 3, verbatim, from Debian's
  /usr/share/common-licenses/GPL-3 (about 5,600 words).
- training/corpora/python-reference.txt: the Python language reference topics that `pydoc`
  ships in `pydoc_data.topics`, in the order of their names, up to the first topic boundary past
  40,000 words.

Sources and licences: training/corpora/SOURCES.md.
"""

from __future__ import annotations

import pydoc_data.topics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "training" / "corpora"
GPL = Path("/usr/share/common-licenses/GPL-3")
REFERENCE_WORDS = 40_000


def python_reference() -> str:
    parts, words = [], 0
    for name in sorted(pydoc_data.topics.topics):
        text = pydoc_data.topics.topics[name].strip()
        parts.append(text)
        words += len(text.split())
        if words >= REFERENCE_WORDS:
            break
    return "\n\n".join(parts) + "\n"


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / "gpl-3.txt").write_bytes(GPL.read_bytes())
    (FOLDER / "python-reference.txt").write_text(python_reference(), encoding="utf-8")
    for path in sorted(FOLDER.glob("*.txt")):
        print(f"{path.relative_to(ROOT)}: {len(path.read_text(encoding='utf-8').split()):,} words")


if __name__ == "__main__":
    main()

"""A terminal autocomplete built on fable's runtime: an app of its own that embeds the model.

    python examples/autocomplete.py [MODEL.onnx]

Type some words and press Enter: it shows completions of the last word, or, when the line ends
with a space, the likeliest next words. Enter a number to take that suggestion, "!" to let the model finish
the sentence, an empty line (or Ctrl-D) to quit. Needs only `pip install fable`.
"""

from __future__ import annotations

import sys

import fable


def main() -> None:
    model = fable.load(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"{len(model.vocabulary)} words known. Type, then Enter; a number takes a suggestion, ! finishes.")
    text, offered = "", []
    while True:
        try:
            line = input(f"> {text}")
        except EOFError:
            return
        if not line:
            return
        if line.isdigit() and 1 <= int(line) <= len(offered):
            text = take(text, offered[int(line) - 1].word)
        elif line != "!":
            text += line
        offered = []
        try:  # an unknown or missing word is a PromptError: say so and go on
            if line == "!":
                print(text + model.generate(text, 12))
                text = ""
            else:
                offered = model.suggest(text, 5)
        except fable.PromptError as error:
            print(f"  ({error}; start again)")
            text = ""
        for number, suggestion in enumerate(offered, 1):
            print(f"  {number}. {suggestion.word:<14} {100 * suggestion.probability:5.1f}%")


def take(text: str, word: str) -> str:
    """The text with its unfinished last word (if `word` completes it) replaced by `word`, then a space."""
    last = text.split()[-1] if text.strip() and not text[-1].isspace() else ""
    if last and word.startswith(last):
        text = text[: len(text) - len(last)]
    elif last:
        text += " "
    return text + word + " "


if __name__ == "__main__":
    main()

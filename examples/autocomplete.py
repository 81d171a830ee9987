"""A terminal autocomplete built on fable's runtime: an app of its own that embeds the model.

    python examples/autocomplete.py [MODEL.onnx] [--learned FILE]

Type some words and press Enter: it shows completions of the last word, or, when the line ends
with a space, the likeliest next words. Enter a number to take that suggestion, "!" to let the model finish
the sentence, an empty line (or Ctrl-D) to quit. Needs only `pip install fable`.

It learns your words as you go: a model trained with `--min-count` (the `predict` preset) offers
the words of the text so far, those it never saw too, and each text you finish with "!" is given
to `model.learn`, so its words come back in the next one. Pass `--learned FILE` to keep them between
runs (written when you quit); otherwise nothing you type is written anywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import fable


def main() -> None:
    parser = argparse.ArgumentParser(description="a terminal autocomplete on fable")
    parser.add_argument("model", nargs="?", help="a .onnx file (default: the shipped model)")
    parser.add_argument("--learned", type=Path, help="a file to keep your words in between runs")
    args = parser.parse_args()
    model = fable.load(args.model)
    if args.learned and args.learned.exists():
        try:
            model.load_learned(args.learned)
        except fable.UsageError as error:  # not a file of learnt words: say so in one line
            raise SystemExit(f"autocomplete: {error}") from None
    print(f"{len(model.vocabulary)} words known. Type, then Enter; a number takes a suggestion, ! finishes.")
    try:
        write(model)
    finally:
        if args.learned:
            try:
                model.save_learned(args.learned)  # whole or not at all
            except fable.UsageError as error:
                raise SystemExit(f"autocomplete: {error}") from None


def write(model: fable.Model) -> None:
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
                model.learn(text)  # its words are suggested from now on
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

"""The one exception hierarchy of fable.

Library code raises these; only the command-line modules turn them into exit codes.
Each message is one line that names the problem and what to do about it.
"""

from __future__ import annotations

import logging
import numbers

# Notices: what fable did on its own that a user should know (a cache ignored, a word read as
# <unk>), at INFO and each said once, so a library that runs on every keystroke stays quiet. The
# NullHandler keeps Python's last resort from printing the library's records on stderr in an app
# that never set up logging (the logging HOWTO's advice to libraries); an app that wants them
# routes the `fable` logger, and the commands print them (fable.cli.show_notices).
log = logging.getLogger("fable")
log.addHandler(logging.NullHandler())


class FableError(Exception):
    """Base class of every error fable raises on purpose."""

    exit_code = 1


class UsageError(FableError):
    """The caller asked for something impossible: a bad prompt, flag or corpus (exit 2)."""

    exit_code = 2


class SettingError(UsageError):
    """A setting outside its range. The message names the Python parameter; a command line that
    took the value from a flag shows `for_flag()` instead, so each user reads the name they typed."""

    def __init__(self, name: str, requirement: str, value: object):
        self.name, self.requirement, self.value = name, requirement, value
        super().__init__(self._say(name))

    def _say(self, name: str) -> str:
        return f"{name} must be {self.requirement}, not {self.value!r}"

    def for_flag(self) -> str:
        return self._say("--" + self.name.replace("_", "-"))


def is_whole(value: object) -> bool:
    """A whole number: an int or a numpy integer, never a bool (True is no count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A real number: a whole one, a float or a numpy float (NaN included: ranges refuse it)."""
    return is_whole(value) or isinstance(value, numbers.Real) and not isinstance(value, bool)


def plain(value: numbers.Real) -> int | float:
    """A number as Python's own int or float, so a numpy scalar given in goes on as one (into JSON)."""
    return int(value) if is_whole(value) else float(value)


def check_whole(name: str, value: object, low: int, high: int) -> int:
    """`value` as an int; SettingError unless it is a whole number from `low` to `high`."""
    if not is_whole(value) or not low <= value <= high:  # type: ignore[operator]
        raise SettingError(name, f"a whole number from {low:,} to {high:,}", value)
    return int(value)  # type: ignore[call-overload]


def check_number(name: str, value: object, low: float, high: float, above_low: bool = False) -> int | float:
    """`value` as an int or float; SettingError unless it is a number from `low` (more than `low`
    where `above_low`) to `high`. NaN is refused."""
    fits = is_number(value) and (low < value if above_low else low <= value) and value <= high  # type: ignore[operator]
    if not fits:
        wanted = f"more than {low:g} and at most {high:g}" if above_low else f"a number from {low:g} to {high:g}"
        raise SettingError(name, wanted, value)
    return plain(value)  # type: ignore[arg-type]


class PromptError(UsageError):
    """A prompt that cannot be decoded: too short, empty, or with unknown words."""


class UnknownWordError(PromptError):
    """A prompt word that is not in the model's vocabulary."""

    def __init__(self, message: str, words: list[str], suggestions: dict[str, list[str]]):
        super().__init__(message)
        self.words = words
        self.suggestions = suggestions


class ModelFileError(FableError):
    """A model file that is missing, damaged, foreign or from a newer format (exit 1)."""

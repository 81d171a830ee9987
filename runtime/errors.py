"""The one exception hierarchy of fable.

Library code raises these; only the command-line modules turn them into exit codes.
Each message is one line that names the problem and what to do about it.
"""

from __future__ import annotations

import logging

# Notices: what fable did on its own that a user should know (a cache ignored, a word read as
# <unk>). Python prints warnings of an unconfigured logger on stderr; apps may route them.
log = logging.getLogger("fable")


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


def check_whole(name: str, value: object, low: int, high: int) -> None:
    """SettingError unless `value` is a whole number from `low` to `high`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingError(name, f"a whole number from {low:,} to {high:,}", value)


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

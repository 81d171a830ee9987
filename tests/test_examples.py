"""The examples run as their users would run them."""

from __future__ import annotations

import subprocess
import sys

from .helpers import ROOT


def test_the_terminal_autocomplete_suggests_takes_and_finishes():
    typed = "the old mo\n1\n1\n!\nthe zebra\n\n"
    result = subprocess.run([sys.executable, ROOT / "examples" / "autocomplete.py"], input=typed,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1. mouse" in out and "1. said " in out  # the completion, then the next word once taken
    assert "the old mouse said it is easy to propose impossible remedies. " in out  # text, not tokens
    assert "unknown word 'zebra'" in out and "Traceback" not in out + result.stderr

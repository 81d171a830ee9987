"""The figures the docs quote are those of the runs recorded in bench/results, to the digit."""

from __future__ import annotations

import re

from .helpers import ROOT

RESULTS = ROOT / "bench" / "results"


def served_per_second() -> dict[str, int]:
    """{"hypercorn-1": 756, ...}: each server and client count's requests a second, rounded."""
    text = (RESULTS / "serve-intel-xeon.txt").read_text(encoding="utf-8")
    return {name: round(float(rate)) for name, rate in re.findall(r"test_serve_suggest\[(\S+)\]\s+([\d.]+)", text)}


def test_the_server_figures_in_performance_md_are_the_recorded_run():
    rate = served_per_second()
    assert len(rate) == 4, rate
    doc = " ".join((ROOT / "docs" / "performance.md").read_text(encoding="utf-8").split())
    assert (f"answers `/suggest` at {rate['hypercorn-1']} requests a second to one kept-alive client and "
            f"{rate['hypercorn-8']} to 8 at once; the standard-library server it replaced gave "
            f"{rate['http.server-1']} and {rate['http.server-8']} in the same run") in doc  # fmt: skip
    costs = sorted(round(100 * (1 - rate[f"hypercorn-{n}"] / rate[f"http.server-{n}"])) for n in (1, 8))
    assert f"the slots, queue and timeouts cost {costs[0]} to {costs[1]}%" in doc

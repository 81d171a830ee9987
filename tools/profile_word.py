"""Where a word's time goes: onnxruntime's profiler per operator, and the Python around the run.

    OPENBLAS_NUM_THREADS=1 python tools/profile_word.py [model.onnx] [--threads N] [--spin]

Prints medians of five interleaved rounds of 1,000 words: the whole word as `stream` makes it (sample + decoder feed), the
onnxruntime run alone, and each operator type's share of a profiled run (the profiler adds its
own cost per node, so shares, not sums, are what to read).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import fable
from fable.benchmark import word_stepper
from fable.ort_backend import session_options

WORDS = 3000


def median_us(step, count: int = WORDS) -> float:
    for _ in range(300):
        step()
    times = []
    for _ in range(count):
        started = time.perf_counter_ns()
        step()
        times.append(time.perf_counter_ns() - started)
    return float(np.median(times)) / 1000


def operator_shares(path: Path, threads: int, spin: bool) -> dict[str, float]:
    options = session_options(threads, spin)
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "fable")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {}
    for arg in session.get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in arg.shape]
        feeds[arg.name] = np.full(shape, 5, np.int64) if "int64" in arg.type else np.zeros(shape, np.float32)
    for _ in range(WORDS):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_node = collections.defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[(event["args"]["op_name"], event["name"])].append(event["dur"])
    by_op = collections.Counter()
    for (op, _), durations in per_node.items():
        by_op[op] += float(np.median(durations[300:]))
    total = sum(by_op.values())
    return {op: value / total for op, value in by_op.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", type=Path, default=fable.default_model_path())
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--spin", action="store_true")
    args = parser.parse_args()
    model = fable.Model(args.model, args.threads, "onnxruntime", args.spin)
    decoder = model._backend.decoder()
    kernel = decoder._kernel
    session, binding = kernel._session, kernel._bindings[0]
    step = word_stepper(model, fable.Sampling(temperature=1.0, seed=0))
    rounds = [
        (median_us(step, WORDS // 3), median_us(lambda: session.run_with_iobinding(binding), WORDS // 3))
        for _ in range(5)
    ]  # interleaved, so that a slow spell of the machine hits both alike
    whole, run = (float(np.median(column)) for column in zip(*rounds))
    print(f"{args.model.name}, {args.threads} thread(s), spin {args.spin}; medians of 5 rounds of {WORDS // 3:,} words")
    print(f"  whole word (sample + feed + run)  {whole:7.1f} µs")
    print(f"  onnxruntime run alone             {run:7.1f} µs")
    print(f"  Python around it                  {whole - run:7.1f} µs")
    print("  share of the profiled run by operator:")
    for op, share in operator_shares(args.model, args.threads, args.spin).items():
        print(f"    {op:22s} {100 * share:5.1f}%")


if __name__ == "__main__":
    main()

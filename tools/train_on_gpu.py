"""Train the fable on a CUDA GPU with the memorize and tutorial presets, export the memorize run, and print the figures.

Run where torch sees a GPU:  python tools/train_on_gpu.py OUT [--tutorial-steps N]
It needs torch, onnx and onnxruntime (no progress bar, no curves: no tqdm or matplotlib). What it
prints is kept in bench/results/ beside the CPU logs.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import onnxruntime
import torch

import fable
from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from fable.training.config import PRESETS
from fable.training.corpus import load_corpus
from fable.training.export.exporter import ExportOptions, export_checkpoint
from fable.training.train import train

GOLDEN = "said it is easy to propose impossible remedies."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--tutorial-steps", type=int, default=PRESETS["tutorial"].steps)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no CUDA GPU here"
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}")  # fmt: skip
    corpus = load_corpus(None, 3)
    run_preset(corpus, "memorize", PRESETS["memorize"].steps, args.out)
    checkpoint = load_checkpoint(args.out / "memorize" / CHECKPOINT_NAME)
    exported = export_checkpoint(checkpoint, "memorize/checkpoint.pt", args.out / "exported", ExportOptions())
    print("export of the CUDA-trained memorize checkpoint (measured with onnxruntime on the CPU):")
    print(exported.table)
    words = fable.load(args.out / "exported" / "fable.int8.onnx").generate("the old mouse")
    print(f"int8 runtime: the old mouse {words}")
    print("golden words:", "kept" if words.startswith(GOLDEN) else "CHANGED")
    run_preset(corpus, "tutorial", args.tutorial_steps, args.out)


def run_preset(corpus, name: str, steps: int | None, out: Path) -> None:
    """`steps` None: the preset's own (the budget and schedule for the corpus)."""
    config = dataclasses.replace(PRESETS[name], steps=steps).for_corpus(corpus.window_count(PRESETS[name].model.window))
    started = time.perf_counter()
    result = train(corpus, config, "cuda", out / name)
    seconds = time.perf_counter() - started
    ev, steps = result.evaluation, result.checkpoint.step
    print(f"{name} preset, {steps:,} steps on cuda: {seconds:.1f} s ({1000 * seconds / steps:.2f} ms a step), "
          f"accuracy over all windows {ev.correct}/{ev.windows} = {100 * ev.accuracy:.1f}%, loss {ev.loss:.4f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

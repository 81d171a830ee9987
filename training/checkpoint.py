"""Checkpoints: everything a run needs to continue bit for bit, or to be exported, in one file.

Only tensors and plain Python values go in, so `torch.load(weights_only=True)` reads them back
and a checkpoint can never run code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fable import __version__
from fable.atomic import atomic_path
from fable.contract import ModelConfig
from fable.errors import UsageError
from fable.tokenizer import unknown_id

from .ceiling import ceiling
from .config import Size, TrainConfig
from .model import WordLSTM
from .split import gather, window_starts

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "fable-checkpoint"
VERSION = 1


class CheckpointError(UsageError):
    """A checkpoint that is missing, damaged, foreign or from a newer fable."""


@dataclass
class Checkpoint:
    config: TrainConfig
    vocabulary: list[str]
    corpus_name: str
    corpus_sha256: str
    ids: np.ndarray  # int32 [tokens]: the corpus's id stream, so that the export can measure its windows
    step: int
    elapsed: float  # seconds of training so far
    accuracy: float  # over all windows at the last evaluation
    device: str
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    rng_state: dict[str, Any]  # torch's and the data sampler's generators, and the sampler's position
    schedule_state: dict[str, Any]  # when and why the rate began to decay (training/schedule.py)
    # With a held-out part: the figures of these weights on its test part once the run is over
    # (words, top1, top3, perplexity; checkpoints of fable 0.4 and before: the whole held-out
    # part), on its validation part at the last evaluation, and, while a run that keeps its best
    # validation weights goes on, those weights.
    heldout: dict[str, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    validation: dict[str, float] | None = None
    # A stream model's cache of the text so far (fable.contract.CacheSettings as a dict), chosen on
    # the validation part when the run ended; {}: none predicted it better; None: not chosen (a
    # window model, or a run not over: the export chooses then).
    cache: dict[str, float] | None = None
    # A refit's (TrainConfig.refit): what the run that chose on the validation part found, its
    # step, figures there, cache and seconds (training.train.Chosen); None: not a refit.
    chosen: dict[str, Any] | None = None

    @property
    def streams(self) -> bool:
        """Whether the model was trained on streams: it carries its state through a whole text."""
        return self.config.sampling == "streams"

    @property
    def unknown_id(self) -> int | None:
        return unknown_id(self.vocabulary)

    def starts(self, part: str = "train") -> np.ndarray:
        """int64 [N]: where each window of the corpus's training or held-out part begins, split as
        the run split it (`split.window_starts`)."""
        return window_starts(self.ids, self.config.holdout, self.config.model.window, part, self.unknown_id)

    def windows(self, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """contexts [N, window] and labels [N] of every window of one part, gathered."""
        return gather(self.ids, self.starts(part), self.config.model.window)

    @property
    def ceiling(self) -> float:
        """The best accuracy any model with this window can reach on the windows it trained on."""
        return ceiling(*self.windows()).accuracy

    def build_model(self) -> WordLSTM:
        model = WordLSTM(self.config.model, len(self.vocabulary))
        model.load_state_dict(self.model_state)
        return model.eval()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "producer": f"fable {__version__}",
        "config": dataclasses.asdict(checkpoint.config),
        "vocabulary": list(checkpoint.vocabulary),
        "corpus_name": checkpoint.corpus_name,
        "corpus_sha256": checkpoint.corpus_sha256,
        "ids": torch.from_numpy(np.asarray(checkpoint.ids, np.int32)),
        "step": checkpoint.step,
        "elapsed": checkpoint.elapsed,
        "accuracy": checkpoint.accuracy,
        "device": checkpoint.device,
        "model": {k: v.detach().cpu() for k, v in checkpoint.model_state.items()},
        "optimizer": checkpoint.optimizer_state,
        "rng": checkpoint.rng_state,
        "schedule": checkpoint.schedule_state,
        "heldout": checkpoint.heldout,
        "validation": checkpoint.validation,
        "cache": checkpoint.cache,
        "chosen": checkpoint.chosen,
        "best": None
        if checkpoint.best_state is None
        else {k: v.detach().cpu() for k, v in checkpoint.best_state.items()},
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with fable-train")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path {path} is not a file; pass the checkpoint.pt that fable-train wrote")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for damaged or foreign files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a fable checkpoint ({reason}); train again or pick another"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a fable checkpoint; pass the checkpoint.pt that fable-train wrote")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {version}, newer than this fable reads ({VERSION}); upgrade fable"
        )
    try:
        config = dict(payload["config"])
        config["model"] = ModelConfig(**config["model"])
        config["sizes"] = tuple(Size(**size) for size in config.get("sizes", ()))
        config.setdefault("tokenizer_version", 1)  # checkpoints from before tokenizer version 2
        checkpoint = Checkpoint(
            config=TrainConfig(**config),
            vocabulary=list(payload["vocabulary"]),
            corpus_name=str(payload["corpus_name"]),
            corpus_sha256=str(payload["corpus_sha256"]),
            ids=payload["ids"].numpy().astype(np.int32),  # int64 in checkpoints of fable 0.3
            step=int(payload["step"]),
            elapsed=float(payload["elapsed"]),
            accuracy=float(payload["accuracy"]),
            device=str(payload["device"]),
            model_state=payload["model"],
            optimizer_state=payload["optimizer"],
            rng_state=payload["rng"],
            schedule_state=payload.get("schedule", payload["rng"].get("schedule", {})),  # older: inside "rng"
            heldout=payload.get("heldout"),  # None in checkpoints from before held-out parts
            best_state=payload.get("best"),
            validation=payload.get("validation"),  # None in checkpoints of fable 0.4 and before
            cache=payload.get("cache"),  # None in checkpoints of fable 0.5 and before
            chosen=payload.get("chosen"),  # None in checkpoints of fable 0.5 and before
        )
        checkpoint.build_model()  # the weights must fit the configuration they claim
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise CheckpointError(f"checkpoint {path} is damaged ({reason}); train again or pick another") from None
    return checkpoint

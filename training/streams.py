"""A stream model's data and measures: the training part read as parallel streams whose state
carries from batch to batch (truncated backpropagation through time, as Zaremba et al. 2014 and
PyTorch's word_language_model train), and held-out blocks read whole, each from the zero state,
as the runtime reads a text (docs/design.md, "The whole text").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from fable.cache import TextCache
from fable.contract import CacheSettings
from fable.errors import UsageError
from fable.evaluation import NOTHING, Evaluation, evaluation_of

from .corpus import Corpus
from .data import Teacher, mixed_targets
from .distributed import ONE, World
from .evaluate import Fit
from .model import State, WordLSTM
from .split import UNSEEN

READ_CHUNK = 512  # words a forward pass reads of a held-out block, the state carried between passes
TEACHER_CONTEXT = 3  # words before each position the teacher reads (the 4-gram reads 3)


class StreamBatches:
    """The training part's blocks joined end to end and cut into `streams` rows of equal length;
    each step reads the next `bptt` words of every row (under torchrun, of this process's rows)
    and predicts each one's next word. The state after a step is the next one's start (detached:
    gradients stop at the step's edge); at the end of the rows both go back to the start. With
    `teacher` and `share`, each target mixes in the teacher's distribution after the words before it."""

    def __init__(
        self,
        segments: list[np.ndarray],
        streams: int,
        bptt: int,
        device: str,
        world: World = ONE,
        teacher: Teacher | None = None,
        share: float = 0.0,
    ):
        joined = np.concatenate(segments).astype(np.int64)
        length = len(joined) // streams
        if length < 2:
            raise UsageError(f"the training part has {len(joined)} words, too few for {streams} streams of 2 or more; "
                             "give it more text or use --preset predict")  # fmt: skip
        rows = world.share(torch.arange(streams)).numpy()
        self.world, self.streams, self.rows = world, streams, torch.from_numpy(rows)
        table = joined[: streams * length].reshape(streams, length)[rows]  # [rows, length]
        self.data = torch.from_numpy(table).to(device)
        self.teacher, self.share = teacher, share
        if teacher is not None and share:  # each position's last TEACHER_CONTEXT words, those before a row's start too
            padded = np.concatenate([np.zeros(TEACHER_CONTEXT, np.int64), joined])
            begins = rows * length + TEACHER_CONTEXT  # where each row starts in `padded`
            self.before = padded[begins[:, None, None] + np.arange(length)[None, :, None]
                                 + np.arange(-TEACHER_CONTEXT + 1, 1)[None, None, :]]  # [rows, length, context]  # fmt: skip
        self.bptt = bptt
        self.offset = 0
        self.carried: State | None = None  # None: the zero state

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """ids [rows, T], their next words [rows * T] (T: `bptt`, less at the rows' end), and the
        teacher's targets [rows * T, vocab] where there is one."""
        if self.offset + 1 >= self.data.shape[1]:
            self.offset, self.carried = 0, None
        end = min(self.offset + self.bptt, self.data.shape[1] - 1)
        x, y = self.data[:, self.offset : end], self.data[:, self.offset + 1 : end + 1].reshape(-1)
        targets = None
        if self.teacher is not None and self.share:
            contexts = self.before[:, self.offset : end].reshape(-1, TEACHER_CONTEXT)
            targets = mixed_targets(self.teacher, self.share, contexts, y)
        self.offset = end
        return x, y, targets

    def carry(self, state: State) -> None:
        self.carried = tuple(s.detach() for s in state)  # type: ignore[assignment]

    def start_state(self, model: WordLSTM) -> State:
        """The state the next step reads on from: the last step's, or zeros."""
        return self.carried if self.carried is not None else model.zero_state(len(self.data))

    def state(self) -> dict[str, Any]:
        """Where the rows are, for a checkpoint: a resumed run reads on exactly as this one would.
        The carried state of every row, [layers, streams, hidden] each, gathered from every process
        (every process calls this at the same step), so that a run resumes under any number of them."""
        if self.carried is None:
            return {"offset": self.offset, "carried": None}
        whole = []
        for part in self.carried:
            full = part.new_zeros((part.shape[0], self.streams, part.shape[2]))
            full[:, self.rows.to(part.device)] = part
            whole.append(self.world.sum(full).cpu())
        return {"offset": self.offset, "carried": whole}

    def load_state(self, state: dict[str, Any]) -> None:
        self.offset = int(state["offset"])
        carried = state.get("carried")
        self.carried = None if carried is None else tuple(s[:, self.rows].to(self.data.device) for s in carried)  # type: ignore[assignment]


def runs(segments: list[np.ndarray], limit: int | None = None) -> Iterator[np.ndarray]:
    """Each block's stretches without an UNSEEN word (a model cannot read it), as the runtime reads
    a text; with `limit`, the first share of each block so that all of them hold about `limit` words."""
    total = sum(len(s) for s in segments)
    share = 1.0 if limit is None or total <= limit else limit / total
    for segment in segments:
        kept = segment[: max(2, int(len(segment) * share))]
        cuts = np.flatnonzero(kept == UNSEEN)
        for run in np.split(kept, cuts):
            run = run[run != UNSEEN]
            if len(run) >= 2:
                yield run.astype(np.int64)


def learnt_blocks(corpus: Corpus, refit: bool) -> list[np.ndarray]:
    """The blocks a model learns from: the training part's, and for a refit (TrainConfig.refit) the
    validation part's too, in the text's order, cut where a word the vocabulary lacks stands (UNSEEN)."""
    if not refit:
        return corpus.segments()
    parts = corpus.split
    return list(runs([corpus.ids[start:end] for start, end in sorted(parts.train + parts.validation)]))


@torch.no_grad()
def read_whole(model: WordLSTM, run: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One run of ids read from the zero state, READ_CHUNK words a pass: (logits [n, vocab], top
    outputs [n, hidden], next words [n]) after each word but the last."""
    was_training = model.training
    model.eval()
    try:
        device = model.head.weight.device
        ids = torch.from_numpy(run).to(device)
        state = None
        for start in range(0, len(run) - 1, READ_CHUNK):
            piece = ids[start : min(start + READ_CHUNK, len(run) - 1)]
            logits, top, state = model.read(piece[None], state)
            labels = run[start + 1 : start + 1 + len(piece)]
            yield logits[0].float().cpu().numpy(), top[0].float().cpu().numpy(), labels
    finally:
        model.train(was_training)


@torch.no_grad()
def stream_fit(model: WordLSTM, segments: list[np.ndarray], limit: int) -> Fit:
    """How well a stream model fits the training part, its blocks read whole as it reads a text:
    about `limit` words, the first share of each block (`runs`); `Fit.windows` counts the words."""
    loss, correct, words = 0.0, 0, 0
    for run in runs(segments, limit):
        for logits, _, labels in read_whole(model, run):
            loss += F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), reduction="sum").item()
            correct += int((logits.argmax(axis=1) == labels).sum())
            words += len(labels)
    return Fit(loss=loss / max(words, 1), correct=correct, windows=words)


def stream_fit_size(segments: list[np.ndarray], limit: int | None) -> int:
    """The words `stream_fit` predicts for this `limit`."""
    return sum(len(run) - 1 for run in runs(segments, limit))


def stream_evaluation(
    model: WordLSTM,
    segments: list[np.ndarray],
    banned: int | None,
    limit: int | None = None,
    cache: CacheSettings | None = None,
) -> Evaluation:
    """Top-1, top-3 and perplexity over the blocks read whole (`runs`), as the runtime computes them
    (`fable.evaluation.evaluation_of`); `banned` (<unk>) is never a suggestion nor a word to predict.
    With `cache`: the runtime's cache of the text so far mixed in, by the runtime's own code."""
    total = NOTHING
    for run in runs(segments, limit):
        texts = None if cache is None else TextCache(cache, 1, model.config.hidden)
        fed = iter(run.tolist())
        for logits, top, labels in read_whole(model, run):
            if texts is not None:  # the runtime's mix, a word at a time, on torch's numbers
                token = np.zeros(1, np.int64)
                for row in range(len(labels)):
                    token[0] = next(fed)
                    logits[row] = texts.mix(logits[row : row + 1], top[row : row + 1], token)[0]
            keep = labels != banned if banned is not None else slice(None)
            total += evaluation_of(logits[keep], labels[keep], banned)
    return total

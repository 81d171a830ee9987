"""The parity report: each exported file decoded by the runtime, against PyTorch, on an even sample
of the windows (all of them on a small corpus) and of the held-out part.

The runtime decodes the windows in batches, as `generate_batch` does: a row's numbers never depend
on the rows beside it (docs/design.md, "Batches"), so the figures are those of one window at a
time (tests/test_export.py holds them to it), and each distinct window met along the greedy
continuations is decoded once (`greedy_decode`). Logits are compared a chunk of windows at a time
(`chunk_rows`), PyTorch's recomputed for each file: memory stays bounded whatever the corpus's
size and vocabulary, never an array of [windows, vocab]."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import fable
from fable.engine import MAX_BATCH
from fable.evaluation import NOTHING, Evaluation, evaluation_of
from fable.tuning import file_sha256

from .. import streams
from ..evaluate import greedy_decode, logits_of
from ..model import WordLSTM
from ..split import even
from .guards import clear_windows

Logits = Callable[[np.ndarray], np.ndarray]  # windows [n, window] → logits [n, vocab]
CHUNK_BYTES = 32 * 2**20  # the [windows, vocab] float32 logits held at once, per model: at most this
MAX_CHUNK = 4096  # windows a chunk (a small vocabulary)


def chunk_rows(vocabulary: int) -> int:
    """Windows a chunk, so that its logits [rows, vocab] take at most CHUNK_BYTES (or one turn of
    the runtime's MAX_BATCH rows): whole turns."""
    rows = min(MAX_CHUNK, CHUNK_BYTES // (4 * vocabulary))
    return max(MAX_BATCH, rows - rows % MAX_BATCH)


def chunks(contexts: np.ndarray, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(contexts), rows):
        yield start, contexts[start : start + rows]


@dataclass(frozen=True)
class Windows:
    """Windows measured: an even sample of at most a limit of `total` (`select_windows`)."""

    contexts: np.ndarray  # [N, window]
    labels: np.ndarray  # [N]
    total: int  # the part's windows before sampling

    @property
    def sampled(self) -> bool:
        return len(self.labels) < self.total


@dataclass(frozen=True)
class HeldOutWindows(Windows):
    banned: int | None = None  # the model's <unk>: never a suggestion, never among `labels`


def select_windows(contexts: np.ndarray, labels: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
    """All the windows, or `limit` evenly spaced ones: contexts, labels, and the total."""
    total = len(labels)
    if total > limit:
        picked = even(total, limit)
        contexts, labels = contexts[picked], labels[picked]
    return contexts, labels, total


@dataclass(frozen=True)
class TorchReference:
    model: WordLSTM
    windows: Windows  # the windows trained on, measured
    chosen: np.ndarray  # [N] torch's greedy next word
    clear: np.ndarray  # [N] whether torch's top two logits are more than the near-tie margin apart
    float_error: float  # torch's largest |logit - the float64 model's|: its own float32 rounding, the fp32 guard's unit
    continuations: np.ndarray  # [N, words] greedy, the plain decode
    heldout: HeldOutWindows | None = None  # the corpus's held-out part, when it has one
    heldout_figures: dict | None = None  # torch's figures there (fable.evaluation.Evaluation.as_dict)
    text: np.ndarray | None = None  # a stream model's: ids of a stretch of text read whole
    text_logits: np.ndarray | None = None  # [len(text) - 1, vocab]: torch's after each of its words but the last

    @property
    def labels(self) -> np.ndarray:
        return self.windows.labels

    @property
    def correct(self) -> int:
        return int((self.chosen == self.labels).sum())

    def logits(self, contexts: np.ndarray) -> np.ndarray:
        return torch_logits(self.model)(contexts)


@dataclass(frozen=True)
class FileReport:
    file: str
    quantization: str
    graph: str
    bytes: int
    sha256: str  # what the runtime checks before it trusts these figures for a file (fable-bench --tune)
    correct: int
    windows: int
    accuracy: float
    max_abs_logit_diff: float  # against PyTorch, over all windows measured
    error_ratio: float  # max_abs_logit_diff in units of torch's own float32 error (`TorchReference.float_error`)
    next_word_agreement: float  # share of windows whose greedy next word is PyTorch's
    clear_agreement: float  # the same, over the windows where PyTorch's top two logits are not near a tie
    clear_windows: int  # how many windows that is
    continuation_agreement: float  # share of windows whose greedy continuation is PyTorch's, word for word
    accuracy_drop_points: float | None = None  # quantized files: fp32 accuracy minus this one's, in points
    heldout: dict | None = None  # figures on the held-out part (fable.evaluation.Evaluation.as_dict)
    heldout_perplexity_rise: float | None = None  # quantized files: held-out perplexity / fp32's - 1
    # A stream model's: the file reading a stretch of text whole (its state carried, no cache)
    # against torch reading it: words, largest |logit - torch| and in units of torch's float32
    # error, and the greedy next word's agreement away from near-ties
    text: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def torch_reference(
    model: WordLSTM,
    windows: Windows,
    words: int,
    margin: float,
    heldout: HeldOutWindows | None = None,
    text: np.ndarray | None = None,
) -> TorchReference:
    """torch's choices on `windows` (clear of a near-tie: top two logits more than `margin` apart),
    its own float32 error there, its greedy continuations of `words` words, and its figures on the
    held-out part."""
    rows, logits, exact = chunk_rows(model.vocab_size), torch_logits(model), float64_copy(model)
    chosen, clear, error, largest = [np.zeros(0, np.int64)], [np.zeros(0, bool)], 0.0, 0.0
    for _, part in chunks(windows.contexts, rows):
        found = logits(part)
        chosen.append(found.argmax(axis=1))
        clear.append(clear_windows(found, margin))
        error = max(error, float(np.abs(found - logits_of(exact, part).cpu().numpy()).max()))
        largest = max(largest, float(np.abs(found).max()))
    float_error = max(error, float(np.finfo(np.float32).eps) * largest)  # a model computed exactly: one rounding
    first = np.concatenate(chosen)
    if text is None:
        continuations = greedy_decode(_argmax(logits, rows), windows.contexts, words, first=first)
    else:  # a stream model goes on from the state its window left, as the runtime's generation does
        continuations = torch_carried_decode(model, windows.contexts, words, rows)
    figures = None if heldout is None else heldout_evaluation(logits, heldout, rows).as_dict()
    text_logits = None if text is None else torch_text_logits(model, text)
    return TorchReference(model, windows, first, np.concatenate(clear), float_error, continuations, heldout, figures,
                          text, text_logits)  # fmt: skip


def torch_carried_decode(model: WordLSTM, contexts: np.ndarray, words: int, rows: int) -> np.ndarray:
    """Each context's greedy continuation [N, words] by torch: the context read from the zero
    state, then each next word fed on from the state it left (a stream model's generation)."""
    import torch

    made = np.zeros((len(contexts), words), np.int64)
    with torch.no_grad():
        for start, part in chunks(contexts, rows):
            logits, _, state = model.read(torch.from_numpy(part.astype(np.int64)))
            for step in range(words):
                chosen = logits[:, -1].argmax(dim=1)
                made[start : start + len(part), step] = chosen.numpy()
                if step + 1 < words:
                    logits, _, state = model.read(chosen[:, None], state)
    return made


def runtime_carried_decode(model: fable.Model, contexts: np.ndarray, words: int) -> np.ndarray:
    """The same by the runtime's decoder, a batch of MAX_BATCH contexts at a time, by plain argmax
    (a generation also bans <unk>; torch's decode does not)."""
    made = np.zeros((len(contexts), words), np.int64)
    for start, part in chunks(contexts, MAX_BATCH):
        with model.decoder(len(part)) as decoder:
            for column in range(part.shape[1]):
                logits = decoder.feed(part[:, column : column + 1])
            for step in range(words):
                made[start : start + len(part), step] = logits.argmax(axis=1)
                if step + 1 < words:
                    logits = decoder.feed(made[start : start + len(part), step : step + 1])
    return made


def torch_text_logits(model: WordLSTM, text: np.ndarray) -> np.ndarray:
    """torch's logits [n - 1, vocab] after each word of `text` (int64 ids) but the last, read whole from the zero state."""
    return np.concatenate([logits for logits, _, _ in streams.read_whole(model, text)])


def float64_copy(model: WordLSTM) -> WordLSTM:
    """The model in float64, its inputs too (the index encoding feeds ids as float32): the
    exact logits that torch's float32 ones round."""
    exact = copy.deepcopy(model).double()
    exact.encode = lambda windows: WordLSTM.encode(exact, windows).double()  # type: ignore[method-assign]
    return exact


def torch_logits(model: WordLSTM) -> Logits:
    """torch's logits [n, vocab] of windows [n, window] (one chunk): the same numbers every call."""
    return lambda contexts: logits_of(model, contexts).float().cpu().numpy()


def heldout_evaluation(logits: Logits, heldout: HeldOutWindows, rows: int) -> Evaluation:
    """Top-1, top-3 and perplexity on the held-out windows, `rows` at a time."""
    total = NOTHING
    for start, part in chunks(heldout.contexts, rows):
        total += evaluation_of(logits(part), heldout.labels[start : start + rows], heldout.banned)
    return total


def _argmax(logits: Logits, rows: int) -> Callable[[np.ndarray], np.ndarray]:
    """Windows [M, window] → their most likely next word [M], `rows` windows at a time."""

    def next_words(windows: np.ndarray) -> np.ndarray:
        found = [logits(part).argmax(axis=1) for _, part in chunks(windows, rows)]
        return np.concatenate(found) if found else np.zeros(0, np.int64)

    return next_words


def measure_file(path: Path, reference: TorchReference, name: str, margin: float = 0.5) -> FileReport:
    """Decode every reference window as a prompt with the runtime, exactly as an app would; `name`
    is what the file will be called (it is measured under a temporary name). A stream model's
    cache is off: torch has none, and the windows are each read afresh."""
    model = fable.Model(path, cache=False)  # exactly as given: no tuned settings of this machine
    rows, runtime = chunk_rows(len(model.vocabulary)), model.window_logits
    contexts, labels = reference.windows.contexts, reference.labels
    chosen, diff = np.zeros(len(labels), np.int64), 0.0
    for start, part in chunks(contexts, rows):
        logits = runtime(part)
        diff = max(diff, float(np.abs(logits - reference.logits(part)).max()))
        chosen[start : start + len(part)] = logits.argmax(axis=1)
    words = reference.continuations.shape[1]
    if model.metadata.whole_text:
        continuations = runtime_carried_decode(model, contexts, words)
    else:
        continuations = greedy_decode(_argmax(runtime, rows), contexts, words, first=chosen)
    held = reference.heldout
    heldout = None if held is None else heldout_evaluation(runtime, held, rows).as_dict()
    correct = int((chosen == labels).sum())
    agrees = chosen == reference.chosen
    clear = reference.clear
    text = None if reference.text is None else text_parity(model, reference, margin)
    return FileReport(
        file=name,
        quantization=model.metadata.quantization,
        graph=model.metadata.graph,
        bytes=path.stat().st_size,
        sha256=file_sha256(path),
        correct=correct,
        windows=len(labels),
        accuracy=correct / len(labels),
        max_abs_logit_diff=diff,
        error_ratio=diff / reference.float_error,
        next_word_agreement=float(agrees.mean()),
        clear_agreement=float(agrees[clear].mean()) if clear.any() else 1.0,
        clear_windows=int(clear.sum()),
        continuation_agreement=float((continuations == reference.continuations).all(axis=1).mean()),
        heldout=heldout,
        text=text,
    )


def text_parity(model: fable.Model, reference: TorchReference, margin: float) -> dict:
    """The file reading the reference's text whole against torch reading it (no cache: torch has none)."""
    found = np.stack([row.copy() for row in model.logits_along(reference.text[:-1].tolist(), cache=False)])
    expected = reference.text_logits
    diff = float(np.abs(found - expected).max())
    clear = clear_windows(expected, margin)
    agrees = found.argmax(axis=1) == expected.argmax(axis=1)
    return {"words": len(found), "max_abs_logit_diff": diff, "error_ratio": diff / reference.float_error,
            "clear_agreement": float(agrees[clear].mean()) if clear.any() else 1.0, "clear_words": int(clear.sum())}  # fmt: skip

"""The training loop: deterministic on the CPU, resumable from its checkpoint, logged as it goes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from fable.errors import FableError, UsageError
from fable.evaluation import Evaluation as TextEvaluation

from .checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from .config import TrainConfig
from .corpus import Ceiling, Corpus, reachable
from .data import TutorialWalk, WindowBatches
from .evaluate import Evaluation, evaluate, held_out
from .metrics import MetricsLog
from .model import WordLSTM
from .ngram import KneserNey
from .progress import Progress
from .schedule import KeepBest, Schedule


class TrainingInterrupted(FableError):
    exit_code = 130


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Checkpoint
    evaluation: Evaluation
    wall_seconds: float  # this invocation only
    ceiling: Ceiling  # the most windows any model with this window can get right on the training part
    eval_seconds: float  # of wall_seconds, spent evaluating
    schedule: Schedule  # when and why the rate began to decay
    heldout: TextEvaluation | None = None  # the final weights on the held-out part, when there is one
    stopped: str = ""  # why a run that keeps its best held-out weights stopped where it did


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device cpu or auto")
    if requested not in ("cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, not {requested!r}")
    return requested


def make_optimizer(config: TrainConfig, model: WordLSTM) -> torch.optim.Optimizer:
    if config.optimizer == "adam" and config.weight_decay:
        return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    # TensorFlow's RMSProp defaults, as the tutorial ran them: decay 0.9, epsilon 1e-10.
    return torch.optim.RMSprop(model.parameters(), lr=config.learning_rate, alpha=0.9, eps=1e-10)


def train(
    corpus: Corpus,
    config: TrainConfig,
    device: str,
    out: Path,
    resume: Checkpoint | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Train until the schedule ends, at most `config.steps` (a preset's budget for this corpus:
    `config.for_corpus`), from scratch or from `resume`; checkpoints go to `out`. `threads`:
    torch's CPU threads (None: torch's own choice)."""
    if config.steps is None:
        raise ValueError(f"the {config.preset} recipe has no step budget yet; give train() config.for_corpus(windows)")
    out.mkdir(parents=True, exist_ok=True)
    saved, saved_threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    torch.backends.mkldnn.enabled = config.cpu_onednn if device == "cpu" else saved
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(corpus, config, device, out, resume, progress)
    finally:
        torch.backends.mkldnn.enabled = saved
        torch.set_num_threads(saved_threads)


def _train(
    corpus: Corpus,
    config: TrainConfig,
    device: str,
    out: Path,
    resume: Checkpoint | None,
    progress: Progress | None,
) -> TrainResult:
    started = time.perf_counter()
    progress = progress or Progress(total=config.steps, bar=False)
    torch.manual_seed(config.seed)
    model = WordLSTM(config.model, len(corpus.vocabulary), config.dropout, config.tie).to(device)
    optimizer = make_optimizer(config, model)
    data_rng = torch.Generator().manual_seed(config.seed)
    window = config.model.window
    train_contexts, train_labels = corpus.windows(window)
    if config.sampling == "tutorial":
        batches = TutorialWalk(corpus.ids, window, device, data_rng)
    else:
        teacher = None
        if config.distill:  # counted on the training part only, as the yardstick is
            teacher = KneserNey(corpus.segments(), len(corpus.vocabulary)).distributions(train_contexts)
        batches = WindowBatches(
            train_contexts, train_labels, config.batch_size, device, data_rng, teacher, config.distill
        )
    contexts, labels = (torch.from_numpy(a).to(device) for a in (train_contexts, train_labels))
    right_at_best = reachable(train_contexts, train_labels)  # [N]: what a model at the ceiling gets right
    best = Ceiling(int(right_at_best.sum()), len(labels))
    # A fixed, even sample for the evaluations along the way; the last evaluation reads every window.
    sample = torch.from_numpy(np.linspace(0, len(labels) - 1, min(config.eval_windows, len(labels))).round())
    sample = sample.long().unique().to(device)
    sampled = len(sample) < len(labels)
    sample_reachable = int(right_at_best[sample.cpu().numpy()].sum())
    schedule = Schedule(config)
    keeper = KeepBest(config.patience, config.rate_cuts) if config.stop == "heldout" else None
    heldout = HeldOut.of(corpus, config)
    eval_seconds = 0.0

    step, elapsed_before, last, last_heldout, best_state = 0, 0.0, None, None, None
    if resume is not None:
        model.load_state_dict(resume.model_state)
        optimizer.load_state_dict(resume.optimizer_state)
        torch.set_rng_state(resume.rng_state["torch"])
        data_rng.set_state(resume.rng_state["data"])
        batches.load_state(resume.rng_state["sampler"])
        schedule.load_state(resume.schedule_state)
        if keeper is not None:
            keeper.load_state(resume.schedule_state.get("keep_best", {}))
            best_state = resume.best_state
        step, elapsed_before = resume.step, resume.elapsed
        finished = Schedule(resume.config)  # as the run knew it: a larger --steps must not stretch a decay it ended
        finished.load_state(resume.schedule_state)
        if schedule.decays and step >= finished.end and step < config.steps:
            progress.write(schedule.reopen(step))
    metrics = MetricsLog(out / "metrics.jsonl", keep_until=step)
    clock = lambda: elapsed_before + time.perf_counter() - started  # noqa: E731
    end = lambda: keeper.stopped_at if keeper is not None and keeper.stopped else schedule.end  # noqa: E731

    def checkpoint(evaluation: Evaluation | None, figures: TextEvaluation | None) -> Checkpoint:
        accuracy = evaluation.accuracy if evaluation else (resume.accuracy if resume else 0.0)
        scored = figures.as_dict() if figures is not None else (resume.heldout if resume else None)
        state = Checkpoint(
            config=config, vocabulary=corpus.vocabulary, corpus_name=corpus.name, corpus_sha256=corpus.sha256,
            ids=corpus.ids, step=step, elapsed=clock(), accuracy=accuracy, device=device,
            model_state=model.state_dict(), optimizer_state=optimizer.state_dict(),
            rng_state={"torch": torch.get_rng_state(), "data": data_rng.get_state(), "sampler": batches.state()},
            schedule_state=schedule.state() | ({"keep_best": keeper.state()} if keeper else {}),
            heldout=scored, best_state=best_state,
        )  # fmt: skip
        save_checkpoint(out / CHECKPOINT_NAME, state)
        return state

    model.train()
    running_loss, running_correct, running_count = 0.0, 0, 0
    saved = None
    progress.start(initial=step)
    try:
        while step < end():
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = schedule.rate(step) * (keeper.scale if keeper is not None else 1.0)
            x, y, targets = batches.next()
            logits = model(x)
            loss = F.cross_entropy(logits, y if targets is None else targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()

            correct = (logits.argmax(dim=1) == y).sum().to(loss.dtype)
            loss_value, correct_value = torch.stack([loss.detach(), correct]).tolist()  # the step's one device sync
            running_loss += loss_value * len(y)
            running_correct += int(correct_value)
            running_count += len(y)
            progress.update(step, loss=loss_value, accuracy=last.accuracy if last else None)
            if step % config.eval_every == 0 or step == schedule.end:
                evaluated = time.perf_counter()
                whole = step == schedule.end or not sampled
                last = evaluate(model, contexts, labels) if whole else evaluate(model, contexts[sample], labels[sample])
                if heldout is not None:
                    last_heldout = heldout.measure(model, whole or keeper is not None)
                eval_seconds += time.perf_counter() - evaluated
                if not whole or not sampled:
                    schedule.observe(step, last.correct, sample_reachable)
                if keeper is not None and keeper.observe(step, last_heldout.perplexity):
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                train_loss, train_accuracy = running_loss / running_count, running_correct / running_count
                metrics.write(step=step, loss=last.loss, accuracy=last.accuracy, correct=last.correct,
                              windows=last.windows, sampled=not whole, ceiling=best.accuracy,
                              of_ceiling=last.accuracy / best.accuracy, perplexity=last.perplexity,
                              train_loss=train_loss, train_accuracy=train_accuracy, lr=optimizer.param_groups[0]["lr"],
                              elapsed=clock(), eval_seconds=eval_seconds,
                              **_heldout_metrics(last_heldout))  # fmt: skip
                if config.sampling == "tutorial":
                    progress.write(_tutorial_line(step, train_loss, train_accuracy, x, y, logits, corpus.vocabulary))
                running_loss, running_correct, running_count = 0.0, 0, 0
            if keeper is not None and keeper.stopped:
                break
            if step % config.checkpoint_every == 0 or step >= schedule.end:
                saved = checkpoint(last, last_heldout)
    except KeyboardInterrupt:
        # No checkpoint now: the interrupt may have landed inside an optimizer step.
        kept = saved.step if saved else resume.step if resume else None
        raise TrainingInterrupted(_interrupted(out, kept)) from None
    finally:
        progress.close()
        metrics.close()
    if keeper is not None and best_state is not None and (keeper.stopped or step >= schedule.end):
        model.load_state_dict(best_state)  # the run is over: the best held-out weights are the model
        best_state, last = None, None
    final = last if last is not None and last.windows == len(labels) else evaluate(model, contexts, labels)
    if heldout is not None and (last is None or saved is None or keeper is not None):
        last_heldout = heldout.measure(model, True)
    if saved is None or saved.step != step or keeper is not None:
        saved = checkpoint(final, last_heldout)
    return TrainResult(saved, final, time.perf_counter() - started, best, eval_seconds, schedule, last_heldout,
                       keeper.reason(step) if keeper else "")  # fmt: skip


class HeldOut:
    """The held-out part's windows, measured as the runtime measures any text: all of them, or an
    even sample along the way (as the training windows are) unless the run stops on them."""

    def __init__(self, contexts: np.ndarray, labels: np.ndarray, sample: int, banned: int | None):
        self.contexts, self.labels, self.banned = contexts, labels, banned
        self.sample = np.linspace(0, len(labels) - 1, min(sample, len(labels))).round().astype(np.int64)

    @staticmethod
    def of(corpus: Corpus, config: TrainConfig) -> HeldOut | None:
        if not config.holdout:
            return None
        contexts, labels = corpus.windows(config.model.window, "heldout")
        return HeldOut(contexts, labels, config.eval_windows, corpus.unknown_id)

    def measure(self, model: WordLSTM, whole: bool) -> TextEvaluation:
        rows = slice(None) if whole else self.sample
        return held_out(model, self.contexts[rows], self.labels[rows], self.banned)


def _heldout_metrics(figures: TextEvaluation | None) -> dict[str, float]:
    if figures is None:
        return {}
    return {"heldout_top1": figures.top1_rate, "heldout_top3": figures.top3_rate,
            "heldout_perplexity": figures.perplexity, "heldout_words": figures.words}  # fmt: skip


def _interrupted(out: Path, step: int | None) -> str:
    if step is None:
        return "interrupted before the first checkpoint; nothing to resume"
    return f"interrupted; the checkpoint of step {step} in {out} is kept, continue with --resume --out {out}"


def _tutorial_line(step, loss, accuracy, x, y, logits, vocabulary) -> str:
    """What the tutorial printed every 1,000 iterations, with its last example."""
    words = [vocabulary[i] for i in x[-1].tolist()]
    return (
        f"Iter= {step}, Average Loss= {loss:.6f}, Average Accuracy= {accuracy * 100:.2f}%\n"
        f"{words} - [{vocabulary[int(y[-1])]}] vs [{vocabulary[int(logits[-1].argmax())]}]"
    )

"""The training loop: deterministic on the CPU, resumable from its checkpoint, logged as it goes,
on one process or data-parallel under torchrun (training/distributed.py)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from fable.contract import CacheSettings
from fable.errors import FableError, UsageError
from fable.evaluation import Evaluation

from .cache_choice import choose_cache
from .ceiling import Ceiling, reachable_in
from .checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from .config import TrainConfig
from .corpus import Corpus
from .data import TutorialWalk, WindowBatches
from .distributed import ONE, World
from .evaluate import Fit, evaluate, held_out
from .metrics import MetricsLog
from .model import WordLSTM
from .ngram import KneserNey
from .progress import Progress
from .schedule import KeepBest, Schedule
from .split import even, even_sample, gather
from .streams import StreamBatches, learnt_blocks, stream_evaluation, stream_fit, stream_fit_size


class TrainingInterrupted(FableError):
    exit_code = 130


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Checkpoint
    evaluation: Fit  # on the training windows: all of them, or an even sample of `config.final_windows`
    wall_seconds: float  # this invocation only
    ceiling: Ceiling | None  # the most windows any model with this window can get right (None: a stream model's)
    eval_seconds: float  # of wall_seconds, spent evaluating
    schedule: Schedule  # when and why the rate began to decay
    heldout: Evaluation | None = None  # the final weights on the test part, read once, when there is one
    stopped: str = ""  # why a run that keeps its best validation weights stopped where it did
    validation: Evaluation | None = None  # the final weights on the validation part, which chose them
    cache: CacheSettings | None = None  # a stream model's cache, chosen on the validation part
    heldout_alone: Evaluation | None = None  # a stream model with a cache: the test part without it
    chosen: Chosen | None = None  # with `config.refit`: what validation chose for the refit


@dataclass(frozen=True)
class Chosen:
    """What the validation part chose before a run trains again on training + validation
    (`TrainConfig.refit`): the refit trains `step` steps and keeps `cache`."""

    step: int  # of the best validation perplexity
    validation: Evaluation  # the chosen weights on the validation part
    cache: CacheSettings | None
    seconds: float  # the choosing run's training time
    stopped: str  # why it stopped where it did (KeepBest.reason)
    budget: int  # the choosing run's most steps

    def record(self) -> dict[str, Any]:
        """As a checkpoint keeps it: plain values (the validation figures' counts, which
        Evaluation.as_dict rounds into rates, so that they read back exactly)."""
        return {"step": self.step, "validation": dataclasses.asdict(self.validation), "cache": cache_record(self.cache),
                "seconds": self.seconds, "stopped": self.stopped, "budget": self.budget}  # fmt: skip

    @classmethod
    def of(cls, record: dict[str, Any]) -> Chosen:
        cache = record["cache"]
        return cls(int(record["step"]), Evaluation(**record["validation"]), CacheSettings(**cache) if cache else None,
                   float(record["seconds"]), str(record["stopped"]), int(record["budget"]))  # fmt: skip


def _refit(chosen: Chosen, corpus, config, device, out, progress, world, resume=None, on_disk=None) -> TrainResult:  # noqa: PLR0913
    """The second run of `config.refit`, on training + validation for the steps validation chose:
    afresh after the run that chose (whose checkpoint, of step `on_disk`, stays until the refit
    saves), or from a refit's checkpoint `resume`."""
    if progress is not None:
        progress.total = chosen.step
    try:
        refit = Run(corpus, dataclasses.replace(config, steps=chosen.step), device, out, resume, progress, world,
                    chosen, on_disk)  # fmt: skip
    except KeyboardInterrupt:  # while it counts its 4-gram: the chosen run's checkpoint is there
        raise TrainingInterrupted(
            _interrupted(out, on_disk if resume is None else resume.step, resume is None)
        ) from None
    return refit.go()


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
    world: World = ONE,
) -> TrainResult:
    """Train until the schedule ends, at most `config.steps` (a preset's budget for this corpus:
    `config.for_corpus`), from scratch or from `resume`; checkpoints go to `out`. `threads`:
    torch's CPU threads (None: torch's own choice). `world`: the processes training together.
    With `config.refit`, once the validation part has chosen the step and the cache, a second run
    trains from the start on training + validation for that many steps; its file is the result."""
    if config.steps is None:
        raise ValueError(f"the {config.preset} recipe has no step budget yet; give train() config.for_corpus(windows)")
    out.mkdir(parents=True, exist_ok=True)
    saved, saved_threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    torch.backends.mkldnn.enabled = config.cpu_onednn if device == "cpu" else saved
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if resume is not None and resume.chosen:  # a refit's checkpoint: it goes on with the refit
            return _refit(Chosen.of(resume.chosen), corpus, config, device, out, progress, world, resume)
        started = time.perf_counter()
        run = Run(corpus, config, device, out, resume, progress, world)
        first = run.go()
        if not run.refits:
            return first
        if progress is not None and world.main:
            progress.write(f"validation chose step {first.chosen.step:,}: training again on training + validation "
                           f"for {first.chosen.step:,} steps")  # fmt: skip
        result = _refit(first.chosen, corpus, config, device, out, progress, world, on_disk=first.checkpoint.step)
        return dataclasses.replace(result, wall_seconds=time.perf_counter() - started,
                                   eval_seconds=first.eval_seconds + result.eval_seconds)  # fmt: skip
    finally:
        torch.backends.mkldnn.enabled = saved
        torch.set_num_threads(saved_threads)


class Measures:
    """The windows each evaluation reads, gathered once: along the way an even sample of
    `config.eval_windows` training windows, and of the validation part too, or all of it up to
    `config.stop_windows` when the run stops on it; at the end, of each part (the test part only
    then) all windows up to `config.final_windows`, an even sample beyond. Samples are fixed, so two
    evaluations differ only by the weights, and a corpus of millions of words costs each evaluation
    what a small one does."""

    def __init__(self, corpus: Corpus, config: TrainConfig, device: str, training: list[np.ndarray],
                 validating: bool = True):  # fmt: skip
        window = config.model.window
        self.device, self.window, self.banned = device, window, corpus.unknown_id
        self.streams = config.sampling == "streams"
        self.training = training  # the blocks the model learns from (a stream model's fit reads them)
        # A stream model reads each block whole (training/streams.py), as the runtime reads a text,
        # not 64-word windows each from the zero state: at most this many words of a held-out part
        # along the way and at the end, and of the training part `config.eval_windows` and
        # `config.final_windows` words. No window bounds what it gets right: it has no ceiling.
        self.limits = (config.stop_windows if config.stop == "heldout" else config.eval_windows, config.final_windows)
        self.fit_limits = (config.eval_windows, config.final_windows)
        self.ceiling: Ceiling | None = None
        self.sample_reachable = 0
        self.train_along = self.train_final = None
        if self.streams:  # (along, final, whole): the words each fit reads
            self.fit_sizes = tuple(stream_fit_size(training, limit) for limit in (*self.fit_limits, None))
        else:
            starts = corpus.starts(window)
            right = reachable_in(corpus.ids, starts, window)  # [N]: what a model at the ceiling gets right
            self.ceiling = Ceiling(int(right.sum()), len(right))
            along, final = even(len(starts), config.eval_windows), even(len(starts), config.final_windows)
            self.sample_reachable = int(right[along].sum())
            self.train_along = self._tensors(corpus.ids, starts[along])
            self.train_final = self._tensors(corpus.ids, starts[final])
            self.fit_sizes = (len(along), len(final), len(starts))
        self.sampled = self.fit_sizes[0] < self.fit_sizes[2]
        self.validation_along = self.validation_final = self.test_final = None
        held = ("validation", "test") if validating else ("test",)
        self.parts = {part: corpus.segments(part) for part in held} if config.holdout else {}
        if config.holdout and not self.streams:
            along = even_sample(corpus.starts(window, "validation"), self.limits[0])
            self.validation_along = gather(corpus.ids, along, window)
            self.validation_final = gather(corpus.ids, final_starts(corpus, config, "validation"), window)
            self.test_final = gather(corpus.ids, final_starts(corpus, config, "test"), window)
        # the validation words (windows) an evaluation reads: along the way, and the last
        self.validation_sizes = (0, 0)
        if self.streams and "validation" in self.parts:
            self.validation_sizes = tuple(stream_fit_size(self.parts["validation"], limit) for limit in self.limits)
        elif self.validation_along is not None:
            self.validation_sizes = (len(self.validation_along[1]), len(self.validation_final[1]))

    @property
    def final_validation_larger(self) -> bool:
        """Whether the last evaluation reads more of the validation part than those along the way."""
        return self.validation_sizes[0] < self.validation_sizes[1]

    def _tensors(self, ids: np.ndarray, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(a).to(self.device) for a in gather(ids, starts, self.window))

    def fit(self, model: WordLSTM, final: bool) -> Fit:
        if self.streams:
            return stream_fit(model, self.training, self.fit_limits[final])
        return evaluate(model, *(self.train_final if final else self.train_along))

    def is_final(self, fit: Fit) -> bool:
        """Whether `fit` read what the last evaluation reads."""
        return fit.windows == self.fit_sizes[1]

    def validation(self, model: WordLSTM, final: bool) -> Evaluation | None:
        if self.streams and self.parts:
            validation = self.parts.get("validation")
            return None if validation is None else stream_evaluation(model, validation, self.banned, self.limits[final])
        windows = self.validation_final if final else self.validation_along
        return None if windows is None else held_out(model, *windows, self.banned)

    def test(self, model: WordLSTM, cache: CacheSettings | None = None) -> Evaluation | None:
        """The test part: read once, when the run is over (a stream model's with its `cache`)."""
        if self.streams and self.parts:
            return stream_evaluation(model, self.parts["test"], self.banned, self.limits[1], cache)
        return None if self.test_final is None else held_out(model, *self.test_final, self.banned)

    def choose_cache(self, model: WordLSTM) -> CacheSettings | None:
        """A stream model's cache settings, chosen on the validation part."""
        if not (self.streams and self.parts):
            return None
        return choose_cache(model, self.parts["validation"], self.banned, self.limits[1])[0]


def final_starts(corpus: Corpus, config: TrainConfig, part: str) -> np.ndarray:
    """The windows the last evaluation of a window model reads of a held-out `part`: all of them
    up to `config.final_windows`, an even sample beyond."""
    return even_sample(corpus.starts(config.model.window, part), config.final_windows)


class Run:
    """One invocation of training: its model, data, schedule and measures, and the loop over them."""

    def __init__(self, corpus, config, device, out, resume, progress, world, chosen=None, on_disk=None):  # noqa: PLR0913
        self.started = time.perf_counter()
        self.corpus, self.config, self.device, self.out, self.resume, self.world = (
            corpus, config, device, out, resume, world)  # fmt: skip
        # A refit (chosen: what validation chose) learns from the validation part too, and no longer looks at it
        self.chosen: Chosen | None = chosen
        self.training = learnt_blocks(corpus, refit=chosen is not None)
        self.progress = progress if progress is not None and world.main else Progress(config.steps, bar=False)
        torch.manual_seed(config.seed)
        self.model = WordLSTM(config.model, len(corpus.vocabulary), config.dropout, config.tie).to(device)
        self.stepper = world.wrap(self.model)
        self.optimizer = make_optimizer(config, self.model)
        self.data_rng = torch.Generator().manual_seed(config.seed)
        self.batches = self._batches()
        self.measures = Measures(corpus, config, device, self.training, validating=chosen is None)
        self.schedule = Schedule(config)
        heldout = config.stop == "heldout" and chosen is None
        self.keeper = KeepBest(config.patience, config.rate_cuts) if heldout else None
        self.step, self.elapsed_before, self.best_state = 0, 0.0 if chosen is None else chosen.seconds, None
        self.over = chosen is not None  # the cache is chosen: the run is over, or it is a refit
        self.on_disk: int | None = on_disk  # a refit's: the chosen run's checkpoint step, on disk until the refit saves
        self.last: Fit | None = None
        self.last_validation: Evaluation | None = None
        self.tested: Evaluation | None = None  # the test part's figures, once the run is over
        self.tested_alone: Evaluation | None = None  # a stream model's without its cache
        self.cache: CacheSettings | None = None if chosen is None else chosen.cache
        self.saved: Checkpoint | None = None
        self.eval_seconds = 0.0
        if resume is not None:
            self._restore(resume)
        refitting = chosen is not None
        self.metrics = MetricsLog(out / "metrics.jsonl", keep_until=self.step, refit=refitting) if world.main else None

    @property
    def refits(self) -> bool:
        """Whether a refit follows this run (`TrainConfig.refit`: validate() holds it to a held-out part)."""
        return self.config.refit and self.chosen is None

    def _batches(self) -> WindowBatches | TutorialWalk:
        config, corpus, window = self.config, self.corpus, self.config.model.window
        if config.sampling == "tutorial":
            return TutorialWalk(corpus.ids, window, self.device, self.data_rng)
        if config.sampling == "streams":
            return StreamBatches(self.training, config.batch_size, config.bptt, self.device, self.world,
                                 self._teacher(), config.distill)  # fmt: skip
        return WindowBatches(corpus.ids, corpus.starts(window), window, config.batch_size, self.device,
                             self.data_rng, self._teacher(), config.distill, self.world)  # fmt: skip

    def _teacher(self) -> KneserNey | None:
        """The 4-gram the recipe distills, counted on what the model learns from, as the yardstick is."""
        return KneserNey(self.training, len(self.corpus.vocabulary)) if self.config.distill else None

    def _restore(self, resume: Checkpoint) -> None:
        self.model.load_state_dict(resume.model_state)
        self.optimizer.load_state_dict(resume.optimizer_state)
        restore_random_state(resume.rng_state, self.device, self.data_rng)
        self.batches.load_state(resume.rng_state["sampler"])
        self.schedule.load_state(resume.schedule_state)
        if self.keeper is not None:
            self.keeper.load_state(resume.schedule_state.get("keep_best", {}))
            self.best_state = resume.best_state
        self.step, self.elapsed_before = resume.step, resume.elapsed
        finished = Schedule(resume.config)  # as the run knew it: a larger --steps must not stretch a decay it ended
        finished.load_state(resume.schedule_state)
        if self.schedule.decays and self.step >= finished.end and self.step < self.config.steps and self.world.main:
            self.progress.write(self.schedule.reopen(self.step))

    def clock(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def end(self) -> int:
        return self.keeper.stopped_at if self.keeper is not None and self.keeper.stopped else self.schedule.end

    def go(self) -> TrainResult:
        self.model.train()
        self.progress.start(initial=self.step)
        running = torch.zeros(3, dtype=torch.float64)  # loss x windows, right, windows since the last evaluation
        try:
            while self.step < self.end():
                self.step += 1
                running += self._step()
                if self.step % self.config.eval_every == 0 or self.step == self.schedule.end:
                    self._evaluate(running)
                    running.zero_()
                if self.keeper is not None and self.keeper.stopped:
                    break
                if self.step % self.config.checkpoint_every == 0 or self.step >= self.schedule.end:
                    self.saved = self._checkpoint()
        except KeyboardInterrupt:
            # No checkpoint now: the interrupt may have landed inside an optimizer step.
            raise TrainingInterrupted(_interrupted(self.out, *self._kept())) from None
        finally:
            self.progress.close()
            if self.metrics is not None:
                self.metrics.close()
        return self._finish()

    def _kept(self) -> tuple[int | None, bool]:
        """The step of the checkpoint an interrupt leaves on disk, and whether it is the choosing
        run's (a refit cut before its first save)."""
        if self.saved:
            return self.saved.step, False
        if self.resume:
            return self.resume.step, False
        return self.on_disk, self.on_disk is not None

    def _step(self) -> torch.Tensor:
        """One optimizer step; [loss x windows, right, windows] of its whole batch."""
        self.world.seed_masks(self.config.seed, self.step)
        scale = self.keeper.scale if self.keeper is not None else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.rate(self.step) * scale
        x, y, targets = self.batches.next()
        if self.measures.streams:  # [rows, T] ids → [rows * T, vocab], read on from the last step's state
            logits, state = self.stepper(x, self.batches.start_state(self.model))
            self.batches.carry(state)
            logits = logits.reshape(-1, logits.shape[-1])
        else:
            logits = self.stepper(x)
        target = y if targets is None else targets
        if self.world.size == 1:
            loss = F.cross_entropy(logits, target)
        else:  # this share's part of the whole batch's mean, which DDP's average of gradients adds up
            rows = self.world.sum(torch.tensor([len(y)], dtype=torch.float64, device=y.device)).item()
            loss = F.cross_entropy(logits, target, reduction="sum") * (self.world.size / rows)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.optimizer.step()
        correct = (logits.argmax(dim=1) == y).sum().to(torch.float64)
        local_loss = loss.detach().to(torch.float64) * (len(y) if self.world.size == 1 else rows / self.world.size)
        figures = self.world.sum(torch.stack([local_loss, correct, torch.tensor(float(len(y)), device=y.device,
                                                                                   dtype=torch.float64)]))  # fmt: skip
        figures = figures.cpu()  # the step's one device sync
        self.progress.update(self.step, loss=float(figures[0] / figures[2]),
                             accuracy=self.last.accuracy if self.last else None)  # fmt: skip
        if self.config.sampling == "tutorial":
            self.tutorial_example = (x, y, logits.detach())
        return figures

    def _evaluate(self, running: torch.Tensor) -> None:
        evaluated = time.perf_counter()
        config, measures = self.config, self.measures
        final = self.step == self.schedule.end or not measures.sampled
        figures = None
        if self.world.main:  # every process takes the decisions of the first's figures
            self.model.eval()
            validation = measures.validation(self.model, final)
            # early stopping judges every step on the validation words read along the way: where
            # the last evaluation reads more of them, those only report
            judged = validation
            if self.keeper is not None and final and measures.sampled and measures.final_validation_larger:
                judged = measures.validation(self.model, False)
            figures = (measures.fit(self.model, final), validation, judged)
            self.model.train()
        self.last, validation, judged = self.world.from_main(figures)
        if validation is not None:
            self.last_validation = validation
        self.eval_seconds += time.perf_counter() - evaluated
        if not final or not measures.sampled:
            self.schedule.observe(self.step, self.last.correct, measures.sample_reachable)
        if self.keeper is not None and self.keeper.observe(self.step, judged.perplexity):
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.metrics is None:
            return
        last, ceiling = self.last, measures.ceiling
        # a window model's fit is over windows, bounded by the ceiling; a stream model's over words read whole
        bounds = (
            {} if ceiling is None else {"ceiling": ceiling.accuracy, "of_ceiling": last.accuracy / ceiling.accuracy}
        )
        self.metrics.write(step=self.step, loss=last.loss, accuracy=last.accuracy, correct=last.correct,
                           windows=last.windows, sampled=last.windows < measures.fit_sizes[2], **bounds,
                           perplexity=last.perplexity,
                           train_loss=float(running[0] / running[2]), train_accuracy=float(running[1] / running[2]),
                           lr=self.optimizer.param_groups[0]["lr"], elapsed=self.clock(),
                           eval_seconds=self.eval_seconds, **_validation_metrics(self.last_validation),
                           **({} if judged is validation else {"validation_judged_perplexity": judged.perplexity}),
                           **({"refit": True} if self.chosen is not None else {}))  # fmt: skip
        if config.sampling == "tutorial":
            x, y, logits = self.tutorial_example
            self.progress.write(_tutorial_line(self.step, float(running[0] / running[2]),
                                               float(running[1] / running[2]), x, y, logits, self.corpus.vocabulary))  # fmt: skip

    def _checkpoint(self) -> Checkpoint:
        resume, figures, tested = self.resume, self.last_validation, self.tested
        accuracy = self.last.accuracy if self.last else (resume.accuracy if resume else 0.0)
        rng = random_state(self.device, self.data_rng) | {"sampler": self.batches.state()}
        state = Checkpoint(
            config=self.config, vocabulary=self.corpus.vocabulary, corpus_name=self.corpus.name,
            corpus_sha256=self.corpus.sha256, ids=self.corpus.ids, step=self.step, elapsed=self.clock(),
            accuracy=accuracy, device=self.device.split(":")[0], model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(), rng_state=rng,
            schedule_state=self.schedule.state() | ({"keep_best": self.keeper.state()} if self.keeper else {}),
            heldout=tested.as_dict() if tested is not None else None,
            cache=cache_record(self.cache) if self.over and self.measures.streams else None,
            validation=figures.as_dict() if figures is not None else (resume.validation if resume else None),
            best_state=self.best_state,
            chosen=self.chosen.record() if self.chosen is not None else None,
        )  # fmt: skip
        if self.world.main:
            save_checkpoint(self.out / CHECKPOINT_NAME, state)
        return state

    def _finish(self) -> TrainResult:
        keeper, step = self.keeper, self.step
        if keeper is not None and self.best_state is not None and (keeper.stopped or step >= self.schedule.end):
            self.model.load_state_dict(self.best_state)  # the run is over: the best held-out weights are the model
            self.best_state, self.last = None, None
        evaluated = time.perf_counter()
        final = self.last
        if final is None or not self.measures.is_final(final):
            final = self.world.from_main(self.measures.fit(self.model, True) if self.world.main else None)
        main = self.world.main
        if self.config.holdout and self.chosen is not None:  # a refit: validation chose before it was learnt
            self.last_validation = self.chosen.validation
        elif self.config.holdout:
            if self.last is None or self.saved is None or keeper is not None:
                self.last_validation = self.world.from_main(
                    self.measures.validation(self.model, True) if main else None
                )
            self.cache = self.world.from_main(self.measures.choose_cache(self.model) if main else None)
        if self.config.holdout and not self.refits:  # the test part measures the file this run makes, once
            figures = None
            if main:
                alone = self.measures.test(self.model) if self.cache is not None else None
                figures = (self.measures.test(self.model, self.cache), alone)
            self.tested, self.tested_alone = self.world.from_main(figures)
        self.over = True
        self.eval_seconds += time.perf_counter() - evaluated
        self.last = final
        if self.saved is None or self.saved.step != step or keeper is not None or self.config.holdout:
            self.saved = self._checkpoint()
        chosen, stopped = self.chosen, keeper.reason(step) if keeper else ""
        if self.refits:
            chosen = Chosen(
                keeper.best_step, self.last_validation, self.cache, self.clock(), stopped, self.config.steps
            )
        elif chosen is not None:
            stopped = chosen.stopped
        return TrainResult(self.saved, final, time.perf_counter() - self.started, self.measures.ceiling,
                           self.eval_seconds, self.schedule, self.tested, stopped, self.last_validation, self.cache,
                           self.tested_alone, chosen)  # fmt: skip


def cache_record(cache: CacheSettings | None) -> dict[str, float]:
    """A checkpoint's `cache`: the settings chosen, or {} where the choice was none (None: not chosen yet)."""
    return {} if cache is None else dataclasses.asdict(cache)


def random_state(device: str, data: torch.Generator) -> dict[str, torch.Tensor]:
    """What draws a run's random numbers: torch's CPU generator, the GPU's (dropout's masks there)
    and the data sampler's, for a checkpoint."""
    state = {"torch": torch.get_rng_state(), "data": data.get_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_random_state(state: dict[str, torch.Tensor], device: str, data: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if device.startswith("cuda") and "cuda" in state:  # none in checkpoints of fable 0.3
        torch.cuda.set_rng_state(state["cuda"])
    data.set_state(state["data"])


def _validation_metrics(figures: Evaluation | None) -> dict[str, float]:
    if figures is None:
        return {}
    return {"validation_top1": figures.top1_rate, "validation_top3": figures.top3_rate,
            "validation_perplexity": figures.perplexity, "validation_words": figures.words}  # fmt: skip


def _interrupted(out: Path, step: int | None, refit: bool = False) -> str:
    """`refit`: cut in a refit before its first checkpoint; the one kept is the choosing run's last."""
    if step is None:
        return "interrupted before the first checkpoint; nothing to resume"
    again = " (the run that chose: --resume trains the refit again from its start)" if refit else ""
    return f"interrupted; the checkpoint of step {step} in {out} is kept{again}, continue with --resume --out {out}"


def _tutorial_line(step, loss, accuracy, x, y, logits, vocabulary) -> str:
    """What the tutorial printed every 1,000 iterations, with its last example."""
    words = [vocabulary[i] for i in x[-1].tolist()]
    return (
        f"Iter= {step}, Average Loss= {loss:.6f}, Average Accuracy= {accuracy * 100:.2f}%\n"
        f"{words} - [{vocabulary[int(y[-1])]}] vs [{vocabulary[int(logits[-1].argmax())]}]"
    )

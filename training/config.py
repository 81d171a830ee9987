"""Training recipes. Every default lives here, once; the CLI reads them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from fable.contract import MAX_HIDDEN, MAX_LAYERS, MAX_WINDOW, ModelConfig
from fable.errors import SettingError, check_whole
from fable.sampling import MAX_SEED
from fable.tokenizer import TOKENIZER_VERSION

from .split import MAX_HOLDOUT

MAX_STEPS = 10_000_000
MAX_EVAL_WINDOWS = 100_000_000
MAX_VOCABULARY = 10_000_000
# What --resume may change: how long to go, how often to look and to save; not what is learned.
RESUMABLE = ("steps", "eval_every", "checkpoint_every", "eval_windows")
DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("plateau", "constant")  # training/schedule.py
STOPS = ("schedule", "heldout")  # when the schedule ends, or when validation perplexity stops improving
SAMPLINGS = ("windows", "tutorial", "streams")  # TrainConfig.sampling
# With no preset named, a corpus of at least this many tokens trains with `predict` and holds 10%
# out (about 200 windows or more to measure it on); a smaller one, like the fable's 204 tokens,
# trains with `memorize`: learning its windows is the whole point there.
PREDICT_FROM_TOKENS = 2000


@dataclass(frozen=True)
class Size:
    """The model and budget of a recipe for corpora of at least `windows` training windows."""

    windows: int
    hidden: int  # units per layer, and the embedding's width where it is tied to the output layer
    dropout: float
    steps: int  # the most steps
    eval_every: int | None = None  # steps between evaluations; None: the recipe's
    distill: float | None = None  # the share of each target taken from the 4-gram; None: the recipe's


@dataclass(frozen=True)
class TrainConfig:
    preset: str
    steps: int | None  # the most steps; None: the budget of `epochs` for the corpus (`for_corpus`)
    batch_size: int  # windows per step; a corpus with fewer windows trains on all of them
    optimizer: str  # "adam" or "rmsprop"
    learning_rate: float
    # "plateau": warm up, hold, then decay to zero once accuracy reaches the ceiling or stops
    # improving, or the budget runs low (training/schedule.py); "constant": the tutorial's
    schedule: str
    warmup: int  # steps of linear warm-up
    clip_norm: float  # gradient-norm clipping: LSTMs' gradients can explode
    # "windows": random windows each step; "tutorial": the tutorial's stride walk; "streams": the
    # training part as `batch_size` parallel streams, `bptt` words a step, the state carried
    # (training/streams.py): a model that reads the whole text so far, whose `window` is how many
    # of a text's last words a fresh read feeds
    sampling: str
    eval_every: int  # steps between evaluations (a metrics.jsonl line each)
    checkpoint_every: int
    cpu_onednn: bool  # torch's oneDNN kernels on the CPU: measured per recipe, see README
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    # Evaluations during training read an even sample of this many windows (accuracy within about
    # 2 points); the last one reads them all. With the default preset on 2 CPU cores, evaluating
    # took 2%, 6% and 7% of training on the fable, gpl-3 and python-reference (76,002 windows)
    # corpora, the final full pass included (bench/results/corpora-default-preset-intel-xeon.txt).
    eval_windows: int = 512
    # Held-out windows each evaluation reads when training stops on them (`stop`), and windows of
    # each part the last evaluation reads: all of them up to these, an even sample beyond, so that
    # evaluating stays a small share of a run on a corpus of millions of words (a figure on 20,000
    # windows is within about half a point). The fable and the small corpora are read whole.
    stop_windows: int = 8192
    final_windows: int = 20_000
    tokenizer_version: int = TOKENIZER_VERSION  # checkpoints from before version 2 read as 1
    # Rare words: those seen fewer than min_count times, and all past the max_vocab most frequent
    # (<unk> included in the count), are read as <unk>. 1 and None keep every word.
    min_count: int = 1
    max_vocab: int | None = None
    # The budget when `steps` is None: this many passes over the windows, at least `min_steps`.
    epochs: float | None = None
    min_steps: int = 0
    # The plateau schedule: the decay lasts decay_fraction of the steps before it (at least
    # min_decay); "stops improving" is no new best on the evaluation sample for patience_fraction
    # of the steps so far (at least min_patience).
    decay_from_ceiling: float = 0.995  # the share of the sample's ceiling that begins the decay
    decay_fraction: float = 0.5
    min_decay: int = 50
    patience_fraction: float = 0.25
    min_patience: int = 100
    # Text the model has not seen (the predict preset). `holdout`: the share of the corpus kept out
    # of training (training/split.py) and measured at every evaluation. `dropout` on the
    # embedding, between the layers and before the output layer; AdamW's `weight_decay`; `tie`:
    # the output layer shares the embedding's weights (needs embedding_dim == hidden). `distill`:
    # the share of each step's target taken from the Kneser-Ney 4-gram counted on the training
    # part (training/ngram.py), the rest being the word that came. `stop`: "heldout" stops when
    # validation perplexity (training/split.py) has not improved for `patience` evaluations (after cutting the rate to a
    # quarter `rate_cuts` times, each after as long without a new best) and keeps the best weights.
    holdout: float = 0.0
    dropout: float = 0.0
    weight_decay: float = 0.0
    tie: bool = False
    distill: float = 0.0
    stop: str = "schedule"
    patience: int = 10
    rate_cuts: int = 0
    # `refit` (streams, stopping on validation): once the validation part has chosen the step and
    # the cache, train again from the start on training + validation for that many steps, so that
    # the file learns from all of the text but the test part, which then measures that file.
    refit: bool = False
    # By the corpus's size (`for_corpus`): the last Size whose `windows` it reaches sets hidden,
    # dropout and the budget. Empty: the recipe's own.
    sizes: tuple[Size, ...] = ()
    bptt: int = 35  # "streams": words a step reads of each stream, as Zaremba et al. 2014

    def for_corpus(self, windows: int) -> TrainConfig:
        """This recipe with its model (`sizes`) and step budget worked out for a corpus of
        `windows` training windows."""
        fitting = [size for size in self.sizes if windows >= size.windows]
        if fitting:
            size = fitting[-1]
            width = {"embedding_dim": size.hidden} if self.tie else {}
            model = dataclasses.replace(self.model, hidden=size.hidden, **width)
            steps = size.steps if self.steps is None else self.steps
            eval_every = size.eval_every or self.eval_every
            distill = self.distill if size.distill is None else size.distill
            return dataclasses.replace(self, model=model, dropout=size.dropout, steps=steps, eval_every=eval_every,
                                       distill=distill, sizes=())  # fmt: skip
        if self.steps is not None:
            return self
        if self.epochs is None:
            raise ValueError(f"the {self.preset} preset has neither steps nor epochs")
        return dataclasses.replace(self, steps=max(self.min_steps, math.ceil(self.epochs * windows / self.batch_size)))

    def validate(self) -> None:
        checks = [
            ("steps", 1 if self.steps is None else self.steps, 1, MAX_STEPS),
            ("layers", self.model.layers, 1, MAX_LAYERS),
            ("hidden", self.model.hidden, 1, MAX_HIDDEN),
            ("window", self.model.window, 1, MAX_WINDOW),
            ("seed", self.seed, 0, MAX_SEED),
            ("eval_every", self.eval_every, 1, MAX_STEPS),
            ("checkpoint_every", self.checkpoint_every, 1, MAX_STEPS),
            ("final_windows", self.final_windows, 1, MAX_EVAL_WINDOWS),
            # the evaluations along the way read at most what the last one reads
            ("eval_windows", self.eval_windows, 1, self.final_windows),
            ("stop_windows", self.stop_windows, 1, self.final_windows),
            ("min_count", self.min_count, 1, MAX_STEPS),
            ("bptt", self.bptt, 1, MAX_STEPS),
        ]
        if self.max_vocab is not None:
            checks.append(("max_vocab", self.max_vocab, 2, MAX_VOCABULARY))
        for name, value, low, high in checks:
            check_whole(name, value, low, high)
        if self.schedule not in SCHEDULES:
            raise SettingError("schedule", f"one of {', '.join(SCHEDULES)}", self.schedule)
        if self.stop not in STOPS:
            raise SettingError("stop", f"one of {', '.join(STOPS)}", self.stop)
        for name, value, high in (("holdout", self.holdout, MAX_HOLDOUT), ("dropout", self.dropout, 0.9),
                                  ("distill", self.distill, 1.0), ("weight_decay", self.weight_decay, 1.0)):  # fmt: skip
            if not 0 <= value <= high:
                raise SettingError(name, f"a number from 0 to {high:g}", value)
        if self.sampling not in SAMPLINGS:
            raise SettingError("sampling", f"one of {', '.join(SAMPLINGS)}", self.sampling)
        if self.sampling == "tutorial" and self.holdout:
            raise SettingError("holdout", "0 with the tutorial's walk over the whole text", self.holdout)
        if self.stop == "heldout" and self.holdout == 0:
            raise SettingError("holdout", "above 0 when training stops on validation perplexity", self.holdout)
        if self.refit and (self.sampling != "streams" or self.stop != "heldout" or self.rate_cuts):
            # a refit has no validation part to cut its rate on: it trains as the chosen run did until its best step
            raise SettingError(
                "refit", "used with streams that stop on validation perplexity, no rate cuts", self.refit
            )
        if self.tie and (self.model.encoding != "embedding" or self.model.embedding_dim != self.model.hidden):
            raise SettingError("tie", "used with an embedding as wide as the hidden layer", self.model.embedding_dim)


# For text the model has not seen: what an app meets. Chosen by measurement on held-out text
# of the two real corpora against a Kneser-Ney 4-gram (bench/results/predict-recipe-intel-xeon.md):
# the embedding tied to the output layer, a 6-word window, targets mixed half and half with
# the 4-gram's distribution, Adam at 3e-3 held, and the weights of the best held-out
# perplexity kept. By size: 256 units and dropout 0.65 for a few thousand windows, 512 units
# and dropout 0.1 from 20,000 (a smaller model learns too slowly there, a larger one overfits
# the small corpus); each within 3 and 15 minutes on 2 CPU cores.
_PREDICT = TrainConfig(
    preset="predict",
    steps=None,
    batch_size=256,
    optimizer="adam",
    learning_rate=3e-3,
    schedule="constant",
    warmup=0,
    clip_norm=1.0,
    sampling="windows",
    eval_every=100,  # a whole held-out pass of python-reference takes about 3 s at 512 units
    checkpoint_every=500,
    cpu_onednn=True,
    model=ModelConfig(window=6, hidden=256, embedding_dim=256),
    min_count=2,
    holdout=0.1,
    tie=True,
    distill=0.5,
    stop="heldout",
    sizes=(
        Size(0, hidden=256, dropout=0.65, steps=2500),
        Size(20_000, hidden=512, dropout=0.1, steps=3400),
        # From 200,000 windows a step costs more (the vocabulary is larger) and so does reading
        # the 8,192 held-out windows each evaluation; every 200 steps keeps evaluating near 5% of
        # a run (bench/results/scale-*.md).
        Size(200_000, hidden=512, dropout=0.1, steps=3400, eval_every=200),
        # A million windows and more, chosen on the validation part of a 2.2M-token text at equal
        # time on one core (bench/results/millions-recipe-amd-epyc-zen4.md): 512 units (1,024
        # took 2.5x as long a step for 2% less perplexity a step), windows (a stream model was at
        # 2.3 to 2.9x the perplexity in the first 20 minutes), 4-gram targets weighing 0.8 (8 to
        # 11% less perplexity than 0.5 at steps 200 to 800) and a longer budget (validation
        # perplexity was still falling at step 3,400, 1.4x the 4-gram's there).
        Size(1_000_000, hidden=512, dropout=0.1, steps=5000, eval_every=200, distill=0.8),
    ),
)

PRESETS: dict[str, TrainConfig] = {
    "predict": _PREDICT,
    # A model that reads the whole text so far: the training part as 16 parallel streams, 35 words
    # a step, the state carried (training/streams.py), targets mixed half and half with the
    # 4-gram's, the rest as `predict`'s, and a cache of the text so far chosen on the validation part
    # (training/cache_choice.py). By size, chosen on the validation parts of the four corpora
    # (bench/results/stream-recipe-validation-amd-epyc-zen4.md): 256 units and dropout 0.5 below
    # 40,000 windows, 512 and 0.2 from there (256 learnt too slowly on the Python reference's
    # 68,000; 512 did worse than 256 on the sed changelog's 22,000).
    "stream": dataclasses.replace(
        _PREDICT,
        preset="stream",
        batch_size=16,
        sampling="streams",
        eval_every=50,
        refit=True,
        model=ModelConfig(window=64, hidden=256, embedding_dim=256),
        sizes=(
            Size(0, hidden=256, dropout=0.5, steps=5000),
            Size(40_000, hidden=512, dropout=0.2, steps=4000, eval_every=100),
        ),
    ),
    # For learning a text by heart (the fable: its 201 windows are the golden test). Adam at 3e-3
    # on 256 random windows a step, held until accuracy reaches the ceiling or stops improving,
    # then decayed (training/schedule.py), within 16 passes over the windows and at least 1,000
    # steps. Chosen by measurement on the fable and two real corpora (docs/performance.md;
    # bench/results/preset-choice-intel-xeon.txt): on 2 CPU cores 256 windows a step learned more
    # per second than 1,024, and decaying over half the held steps ended nearer the ceiling than
    # over a fifth. fable 0.2 called it "default".
    "memorize": TrainConfig(
        preset="memorize",
        steps=None,
        epochs=16,
        min_steps=1000,
        batch_size=256,
        optimizer="adam",
        learning_rate=3e-3,
        schedule="plateau",
        warmup=10,
        clip_norm=1.0,
        sampling="windows",
        eval_every=10,
        checkpoint_every=100,
        cpu_onednn=True,  # 16.7 s with, 24.1 s without (median of 3 on 2 cores)
    ),
    # The rnn-words tutorial: ids fed as floats, one window per step on a stride-(window+1) walk
    # with random restarts, RMSProp at 0.001 with TensorFlow's decay and epsilon, 50,000 steps.
    "tutorial": TrainConfig(
        preset="tutorial",
        steps=50_000,
        batch_size=1,
        optimizer="rmsprop",
        learning_rate=1e-3,
        schedule="constant",
        warmup=0,
        clip_norm=5.0,
        sampling="tutorial",
        eval_every=1000,
        checkpoint_every=5000,
        cpu_onednn=False,  # batch of one: 13.6 s per 1,000 steps without, 18.5 s with
        model=ModelConfig(encoding="index"),
    ),
}


PRESET_ALIASES = {"default": "memorize"}  # fable 0.2's name, still taken


def choose_preset(tokens: int) -> tuple[str, str]:
    """The preset for a corpus of `tokens` tokens when none is named, and why."""
    if tokens >= PREDICT_FROM_TOKENS:
        return "predict", (f"its {tokens:,} tokens can spare 10% to measure it on text it has not seen "
                           f"(--preset memorize learns all of it by heart)")  # fmt: skip
    return "memorize", (f"its {tokens:,} tokens are fewer than {PREDICT_FROM_TOKENS:,}, too few to hold any out, "
                        f"so it learns them by heart (--preset predict to hold 10% out)")  # fmt: skip

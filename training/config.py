"""Training recipes. Every default lives here, once; the CLI reads them."""

from __future__ import annotations

from dataclasses import dataclass, field

from fable.contract import MAX_HIDDEN, MAX_LAYERS, MAX_WINDOW, ModelConfig
from fable.errors import check_whole

MAX_STEPS = 10_000_000
MAX_SEED = 2**63 - 1
MAX_EVAL_WINDOWS = 100_000_000
MAX_THREADS = 256
# What --resume may change: how long to go, how often to look and to save; not what is learned.
RESUMABLE = ("steps", "eval_every", "checkpoint_every", "eval_windows")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    preset: str
    steps: int
    batch_size: int  # windows per step; a corpus with fewer windows trains on all of them
    optimizer: str  # "adam" or "rmsprop"
    learning_rate: float
    schedule: str  # "cosine": warm up, then decay to zero; "constant"
    warmup: int  # steps of linear warm-up (cosine schedule)
    clip_norm: float  # gradient-norm clipping: LSTMs' gradients can explode
    sampling: str  # "windows": random windows each step; "tutorial": the tutorial's stride walk
    eval_every: int  # steps between evaluations (a metrics.jsonl line each)
    checkpoint_every: int
    cpu_onednn: bool  # torch's oneDNN kernels on the CPU: measured per recipe, see README
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    # Evaluations during training read an even sample of this many windows (accuracy within about
    # 2 points); the last one reads them all. Measured on a 40,000-word corpus (3,598 words), 2
    # CPU cores: a step of 256 windows takes 0.1 s and evaluating 1,024 windows as long, so 512
    # every 10 steps is 5% of the run; the final pass over all 55,185 windows, 7 s, once.
    eval_windows: int = 512

    def validate(self) -> None:
        checks = [
            ("steps", self.steps, 1, MAX_STEPS),
            ("layers", self.model.layers, 1, MAX_LAYERS),
            ("hidden", self.model.hidden, 1, MAX_HIDDEN),
            ("window", self.model.window, 1, MAX_WINDOW),
            ("seed", self.seed, 0, MAX_SEED),
            ("eval_every", self.eval_every, 1, MAX_STEPS),
            ("checkpoint_every", self.checkpoint_every, 1, MAX_STEPS),
            ("eval_windows", self.eval_windows, 1, MAX_EVAL_WINDOWS),
        ]
        for name, value, low, high in checks:
            check_whole(name, value, low, high)


PRESETS: dict[str, TrainConfig] = {
    # Fast: every window in each step (the fable has 201), Adam with warm-up and cosine decay.
    # It reaches 199/201 in about 20 steps; the rest make the model confident, which int8 needs.
    "default": TrainConfig(
        preset="default",
        steps=300,
        batch_size=256,
        optimizer="adam",
        learning_rate=3e-3,
        schedule="cosine",
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

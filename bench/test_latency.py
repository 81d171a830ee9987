"""Latency of the shipped models, the plain window-graph decode and torch eager, per word and whole.

Per-word benchmarks time one more word of an endless stream (sample + one decode), greedy and
sampled (temperature 1, seed 0): sampling wanders over many windows, so a repeating greedy cycle
cannot flatter anything.
"""

from __future__ import annotations

import os
from collections import deque
from itertools import cycle

import pytest

from fable import Model, load
from fable.benchmark import word_stepper
from fable.sampling import Sampling, make_sampler
from fable.tuning import CACHE_ENV

PROMPT = "the old mouse"
QUANTS = ["fp32", "int8", "int4"]
MODES = {"greedy": Sampling(), "sampled": Sampling(temperature=1.0, seed=0)}
PER_WORD = {"group": "per word", "min_rounds": 2000, "max_time": 2.0, "warmup": True}
WINDOW_SETTINGS = [
    (t, spin) for t in range(1, (os.cpu_count() or 1) + 1) for spin in (False, True) if t > 1 or not spin
]


@pytest.mark.benchmark(group="load")
@pytest.mark.parametrize("quant", QUANTS)
def test_load(benchmark, shipped, quant):
    benchmark(Model, shipped[quant])


@pytest.mark.benchmark(group="prompt to first word")
@pytest.mark.parametrize("quant", QUANTS)
def test_first_word(benchmark, shipped, quant):
    model = Model(shipped[quant])
    benchmark(model.generate, PROMPT, 1)


@pytest.mark.benchmark(group="32-word generation")
@pytest.mark.parametrize("quant", QUANTS)
def test_generate_32(benchmark, shipped, quant):
    model = Model(shipped[quant])
    benchmark(model.generate, PROMPT, 32)


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("graph", ["step", "window"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("quant", QUANTS)
def test_word(benchmark, shipped, window_files, quant, mode, graph):
    if graph == "window" and quant not in window_files:
        pytest.skip("the window graph has no int4 file")
    path = shipped[quant] if graph == "step" else window_files[quant]
    model = Model(path)
    assert model.metadata.graph == graph
    benchmark(word_stepper(model, MODES[mode]))


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("onednn", ["onednn", "no-onednn"])
def test_torch_word(benchmark, shipped, onednn, mode):
    """torch eager, the whole window per word, as a PyTorch user would decode (fp32 weights)."""
    torch = pytest.importorskip("torch", reason="the torch baseline needs pip install '.[train]'")
    import onnx

    from fable.training.export.weights import torch_from_weights, weights_from_arrays

    model = Model(shipped["fp32"])
    config = model.metadata.config
    arrays = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(shipped["fp32"]).graph.initializer}
    net = torch_from_weights(weights_from_arrays(arrays, config), config)
    sample = make_sampler(MODES[mode])
    window = deque(range(model.window), maxlen=model.window)

    def step() -> int:
        with torch.no_grad():
            logits = net(torch.tensor([list(window)]))[0].numpy()
        token = sample(logits)
        window.append(token)
        return token

    saved = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = onednn == "onednn"
    try:
        benchmark(step)
    finally:
        torch.backends.mkldnn.enabled = saved


@pytest.mark.benchmark(group="suggest")
@pytest.mark.parametrize("text", ["the old mouse ", "the old mo"], ids=["next word", "completion"])
@pytest.mark.parametrize("quant", QUANTS)
def test_suggest(benchmark, shipped, quant, text):
    """Top-3 suggestions, as a keyboard asks for them at every keystroke (a whole window each)."""
    model = Model(shipped[quant])
    benchmark(model.suggest, text, 3)


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("quant", QUANTS)
def test_typing_suggest(benchmark, shipped, quant):
    """Top-3 suggestions while the text grows a word a call (`model.typing()`: one step a word):
    compared with test_word[...-sampled-step], a generated word on the same file and settings."""
    model = Model(shipped[quant])
    words = cycle(model.vocabulary[:40])
    text = deque((next(words) for _ in range(model.window)), maxlen=200)  # a message, not a book
    with model.typing() as typing:

        def next_word() -> None:
            text.append(next(words))
            typing.suggest(" ".join(text) + " ", 3)

        benchmark(next_word)


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize(
    "setting", WINDOW_SETTINGS, ids=[f"{t}-threads-spin-{'on' if s else 'off'}" for t, s in WINDOW_SETTINGS]
)
def test_window_setting(benchmark, window_files, setting):
    """The plain window graph (int8) at each setting the tune tries, so that the tuned fable can
    be held against the window graph at its own best (bench/conftest.py, the ratios)."""
    threads, spin = setting
    benchmark(word_stepper(Model(window_files["int8"], threads, spin=spin), MODES["sampled"]))


@pytest.mark.benchmark(**PER_WORD)
def test_tuned_word(benchmark, tune_cache, monkeypatch):
    """One more sampled word through fable.load(pattern="stream"), after fable-bench --tune chose
    this machine's settings for words back to back (as fable-run runs a prompt): compared with
    test_word[int8-sampled-step], the same file at the defaults."""
    monkeypatch.setenv(CACHE_ENV, str(tune_cache))
    model = load(pattern="stream")  # the shipped default, as fable-run loads it for a prompt
    assert "for words back to back by fable-bench --tune" in model.settings
    benchmark.extra_info["setting"] = f"{model.path.name}, {model.threads} threads, spin {model.spin}"
    benchmark(word_stepper(model, MODES["sampled"]))


BATCH = 8


@pytest.mark.benchmark(group="8 prompts x 32 words")
@pytest.mark.parametrize("how", ["batch", "one-by-one"])
@pytest.mark.parametrize("quant", QUANTS)
def test_eight_prompts(benchmark, shipped, quant, how):
    """generate_batch of 8 prompts against 8 generate calls, default settings; the same words."""
    model = Model(shipped[quant])
    prompts = [" ".join(model.vocabulary[3 * i : 3 * i + 3]) for i in range(BATCH)]  # 8 different contexts
    sampling = MODES["sampled"]
    assert model.generate_batch(prompts, 32, sampling) == [model.generate(p, 32, sampling) for p in prompts]
    if how == "batch":
        benchmark(model.generate_batch, prompts, 32, sampling)
    else:
        benchmark(lambda: [model.generate(p, 32, sampling) for p in prompts])

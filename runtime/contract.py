"""The model-file contract: the single place that says what a fable `.onnx` file holds.

A fable model is one ONNX file. Its `metadata_props` carry everything the runtime needs besides
the graph (keys below, all under `fable.`), and its graph takes and returns the tensors named here.
The exporter writes files with `metadata_to_props` and `graph_io`; the runtime reads them back with
`metadata_from_props` and holds the graph to `graph_io` with `check_graph`, so no name is typed twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .errors import ModelFileError, is_number, is_whole
from .tokenizer import TOKENIZER_VERSION, TOKENIZER_VERSIONS

# Bump when a file of the new shape could not be read by older runtimes. Version 2: the step graph
# takes a batch of sequences and is built of plain products (so its int8 and int4 files round
# every row on its own; see docs/design.md, "Batches"). Version 3: the stream graph, and the
# cache settings. A file is written at the lowest version that holds it, so a window model's file
# still opens in fable 0.5. This runtime reads versions 1 to 3.
FORMAT_VERSION = 3
BATCHED_SINCE = 2  # step graphs of older files have a batch of exactly one sequence
STREAM_SINCE = 3

PREFIX = "fable."
KEY_FORMAT_VERSION = PREFIX + "format_version"
KEY_GRAPH = PREFIX + "graph"
KEY_VOCABULARY = PREFIX + "vocabulary"
KEY_WINDOW = PREFIX + "window"
KEY_MODEL = PREFIX + "model"
KEY_TOKENIZER_VERSION = PREFIX + "tokenizer_version"
KEY_QUANTIZATION = PREFIX + "quantization"
KEY_PROVENANCE = PREFIX + "provenance"
KEY_PRODUCER = PREFIX + "producer"
KEY_CACHE = PREFIX + "cache"  # stream files: the cache of the text so far (CacheSettings), JSON

# The step graph: one batched LSTM step per word for the `window` windows in flight, one row of
# state each; every row reads the newest word. After the n-th word fed (from 1), row n mod window
# holds the next-word logits, and the caller zeroes that row of every state tensor. Why and how,
# with a worked example: docs/design.md, "Fast decoding".
GRAPH_STEP = "step"
# The plain graph: a whole window from a zero state per call; the reference and the baseline.
GRAPH_WINDOW = "window"
# The stream graph: the step graph with one row of state per sequence, which the caller never
# zeroes: the state carries the whole text read so far (docs/design.md, "The whole text"). Its
# model's `window` is how many of a text's last words a fresh read feeds, from the zero state.
GRAPH_STREAM = "stream"
GRAPHS = (GRAPH_STEP, GRAPH_WINDOW, GRAPH_STREAM)

# step: int64 [batch, window], each sequence's newest word id in every column; stream: [batch, 1]
INPUT_TOKENS = "tokens"
INPUT_WINDOW = "window"  # window: int64 [batch, window]
# step: float32 [batch, window, vocab], a row per window; window: [batch, vocab]; stream: [batch, 1, vocab]
OUTPUT_LOGITS = "logits"


def state_names(layers: int) -> list[str]:
    """The step and stream graphs' state inputs, each float32 [batch, rows, hidden]: h then c of
    each layer (rows: the window for step graphs, 1 for stream graphs). The last h is the top layer's output."""
    return [f"state_{kind}{layer}" for layer in range(layers) for kind in ("h", "c")]


def next_state_name(state: str) -> str:
    """The step graph output that holds `state` after the step."""
    return "next_" + state


QUANTIZATIONS = ("fp32", "int8", "int4")

# What one export writes into its folder: a file per variant (int4 and int8-lstm on request), and
# the report that proves them. The runtime reads the report to know which files passed their
# guards. A variant is a quantization of the step graph, or "int8-lstm": the step graph for one
# sequence built of onnxruntime's LSTM operators, int8 by its dynamic quantizer (format 1), for
# CPUs whose integer products are slow in format 2's plain ones (no VNNI; ARM without dot products).
FILE_NAMES = {
    "fp32": "fable.onnx",
    "int8": "fable.int8.onnx",
    "int4": "fable.int4.onnx",
    "int8-lstm": "fable.int8-lstm.onnx",
}
LSTM_VARIANT = "int8-lstm"
LSTM_FORMAT_VERSION = 1  # its graph takes one sequence, as every step graph of format 1 did
REPORT_NAME = "report.json"

# The weights of a version-2 step graph, as initializers of these names, so that a backend that
# computes the step itself (numpy) finds them without following the graph. Each LSTM layer is one
# product: [x, h] [rows, in + hidden] @ cell weight [in + hidden, 4 * hidden], gates i, o, f, c
# (with the index encoding, layer 0's cell weight is [hidden, 4 * hidden], beside INDEX_WEIGHT).
EMBEDDING = "embedding"  # [vocab, embedding_dim]; int8 files: uint8 codes on the activation scale
HEAD_WEIGHT, HEAD_BIAS = "head.weight", "head.bias"  # [hidden, vocab], [vocab]
WEIGHT_SCALE = ".scale"  # suffix: int8, a scale per output column [N]; int4, per block [N * blocks]
# int8 files round every product's input to uint8 on one fixed scale (|h| < 1 always), so a row's
# result never depends on the other rows of the batch.
ACTIVATION_SCALE, ACTIVATION_ZERO_POINT = "activation.scale", "activation.zero_point"


INDEX_WEIGHT = "cell0.index_weight"  # [1, 4 * hidden]: the index encoding's input product, fp32 in every file


def cell_weight(layer: int) -> str:
    return f"cell{layer}.weight"


def cell_bias(layer: int) -> str:
    return f"cell{layer}.bias"  # [4 * hidden], the input and recurrent biases summed


ENCODINGS = ("embedding", "index")

# Bounds checked before any value is parsed, so a hostile file cannot make us parse 100 MB of JSON.
MAX_VOCABULARY_BYTES = 8 * 1024 * 1024
MAX_VALUE_BYTES = 64 * 1024
MAX_WINDOW = 64
MAX_LAYERS = 16
MAX_HIDDEN = 8192
MAX_EMBEDDING_DIM = 8192


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: `window` word ids → encoding → `layers` LSTMs of `hidden` → logits."""

    window: int = 3
    layers: int = 2
    hidden: int = 512
    encoding: str = "embedding"  # or "index": the id as one float per step, as the tutorial fed it
    embedding_dim: int = 64  # unused by the index encoding

    @property
    def input_size(self) -> int:
        return self.embedding_dim if self.encoding == "embedding" else 1


@dataclass(frozen=True)
class Provenance:
    """Where the weights came from."""

    corpus_sha256: str
    corpus_name: str
    preset: str
    steps: int
    accuracy: float  # next-word accuracy over all windows at the end of training
    device: str
    seed: int
    ceiling: float | None = None  # the best accuracy any model with this window can reach; None in older files
    # With a part of the corpus held out of training (fable-train --holdout): its share, and the
    # trained weights' figures there: words predicted, top-1, top-3, perplexity. None otherwise.
    heldout: float | None = None
    heldout_words: int | None = None
    heldout_top1: float | None = None
    heldout_top3: float | None = None
    heldout_perplexity: float | None = None


@dataclass(frozen=True)
class CacheSettings:
    """The cache of a stream model (Grave et al. 2017's continuous cache): the top layer's output
    after each of the last `size` words read votes for the word that came next, by
    exp(`flatness` x its dot product with the output now); the votes, a distribution, are mixed
    into the model's at `weight`. Chosen on the validation part when the model is trained."""

    size: int
    flatness: float
    weight: float

    def describe(self) -> str:
        return f"the last {self.size:,} words, flatness {self.flatness:g}, weight {self.weight:g}"


MAX_CACHE = 10_000  # kept outputs per sequence: [size, hidden] floats for every sequence of a batch
MAX_FLATNESS = 1000.0


@dataclass(frozen=True)
class ModelMetadata:
    graph: str
    vocabulary: tuple[str, ...]
    config: ModelConfig
    quantization: str
    provenance: Provenance
    producer: str
    tokenizer_version: int = TOKENIZER_VERSION
    format_version: int = FORMAT_VERSION
    cache: CacheSettings | None = None  # stream files only, where training chose one

    @property
    def batched(self) -> bool:
        """Whether one run decodes a batch of sequences, each row on its own: step graphs from
        format 2, and stream graphs. Older step graphs and window graphs decode one sequence a run."""
        return self.graph == GRAPH_STREAM or (self.graph == GRAPH_STEP and self.format_version >= BATCHED_SINCE)

    @property
    def whole_text(self) -> bool:
        """Whether the model carries its state through the whole text read (a stream graph)."""
        return self.graph == GRAPH_STREAM

    @property
    def rows(self) -> int:
        """Rows of state per sequence in a step or stream graph: a window in flight each, or one."""
        return 1 if self.whole_text else self.config.window

    @property
    def least_words(self) -> int:
        """The fewest words a prompt may have: any for a stream model, a whole window otherwise
        (as many as its rows of state)."""
        return self.rows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"vocabulary": list(self.vocabulary)}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # as onnxruntime names it: "tensor(float)", "tensor(int64)"
    shape: tuple[int | None, ...]  # None: any size


def graph_io(
    graph: str, config: ModelConfig, vocab_size: int, format_version: int = FORMAT_VERSION
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs a graph of this kind must have, in order."""
    w = 1 if graph == GRAPH_STREAM else config.window
    if graph in (GRAPH_STEP, GRAPH_STREAM):
        states = state_names(config.layers)
        batch = None if format_version >= BATCHED_SINCE else 1
        state_shape = (batch, w, config.hidden)
        inputs = [TensorSpec(INPUT_TOKENS, "tensor(int64)", (batch, w))]
        inputs += [TensorSpec(name, "tensor(float)", state_shape) for name in states]
        outputs = [TensorSpec(OUTPUT_LOGITS, "tensor(float)", (batch, w, vocab_size))]
        outputs += [TensorSpec(next_state_name(name), "tensor(float)", state_shape) for name in states]
        return inputs, outputs
    if graph == GRAPH_WINDOW:
        inputs = [TensorSpec(INPUT_WINDOW, "tensor(int64)", (None, w))]
        return inputs, [TensorSpec(OUTPUT_LOGITS, "tensor(float)", (None, vocab_size))]
    raise ValueError(f"unknown graph kind {graph!r}")


class GraphArg(Protocol):
    """A graph input or output as a backend reports it (onnxruntime's NodeArg, or onnxfile.ValueInfo)."""

    name: str
    type: str
    shape: Sequence[int | str | None]


def check_graph(inputs: Sequence[GraphArg], outputs: Sequence[GraphArg], meta: ModelMetadata, source: str) -> None:
    """ModelFileError unless the graph's inputs and outputs are what `graph_io` says for this metadata."""
    expected_in, expected_out = graph_io(meta.graph, meta.config, len(meta.vocabulary), meta.format_version)
    for role, expected, actual in (("input", expected_in, inputs), ("output", expected_out, outputs)):
        found = {arg.name: arg for arg in actual}
        if set(found) != {spec.name for spec in expected}:
            raise ModelFileError(
                f"model file {source} has {role}s {sorted(found)}, but its metadata describes a {meta.graph} graph "
                f"with {sorted(spec.name for spec in expected)}; export it again"
            )
        for spec in expected:
            arg = found[spec.name]
            static_ok = len(arg.shape) == len(spec.shape) and all(
                want is None or got == want for want, got in zip(spec.shape, arg.shape)
            )
            if arg.type != spec.dtype or not static_ok:
                raise ModelFileError(
                    f"model file {source} has {role} {spec.name} of {arg.type} {list(arg.shape)}, but its metadata "
                    f"(vocabulary of {len(meta.vocabulary)}, {meta.config}) needs {spec.dtype} "
                    f"{[d if d is not None else 'any' for d in spec.shape]}; export it again"
                )


def metadata_to_props(meta: ModelMetadata) -> dict[str, str]:
    """The `metadata_props` of a model file, as strings."""
    config = asdict(meta.config)
    window = config.pop("window")
    props = {
        KEY_FORMAT_VERSION: str(meta.format_version),
        KEY_GRAPH: meta.graph,
        KEY_VOCABULARY: json.dumps(list(meta.vocabulary), ensure_ascii=False),
        KEY_WINDOW: str(window),
        KEY_MODEL: json.dumps(config),
        KEY_TOKENIZER_VERSION: str(meta.tokenizer_version),
        KEY_QUANTIZATION: meta.quantization,
        # no ceiling: left out, as files of format 1 have it, not null (which fable 0.5 refuses)
        KEY_PROVENANCE: json.dumps(
            {k: v for k, v in asdict(meta.provenance).items() if k != "ceiling" or v is not None}
        ),
        KEY_PRODUCER: meta.producer,
    }
    if meta.cache is not None:
        props[KEY_CACHE] = json.dumps(asdict(meta.cache))
    return props


def lowest_version(graph: str) -> int:
    """The format version a new file of this graph is written at: the lowest that holds it."""
    return STREAM_SINCE if graph == GRAPH_STREAM else BATCHED_SINCE


def metadata_from_props(props: Mapping[str, str], source: str = "model file") -> ModelMetadata:
    """Parse and validate `metadata_props`; raise ModelFileError naming the first problem."""
    reader = _Reader(props, source)
    if KEY_FORMAT_VERSION not in props:
        raise ModelFileError(
            f"{source} is not a fable model (no {KEY_FORMAT_VERSION} metadata); export one with fable-export"
        )
    version = reader.integer(KEY_FORMAT_VERSION, 1, None)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source} has model format {version}, newer than this fable reads ({FORMAT_VERSION}); upgrade fable"
        )
    tokenizer_version = reader.integer(KEY_TOKENIZER_VERSION, 1, None)
    if tokenizer_version not in TOKENIZER_VERSIONS:
        raise ModelFileError(
            f"{source} needs tokenizer version {tokenizer_version}, this fable reads versions "
            f"{', '.join(map(str, TOKENIZER_VERSIONS))}; upgrade fable"
        )
    model = reader.json_object(KEY_MODEL)
    config = ModelConfig(
        window=reader.integer(KEY_WINDOW, 1, MAX_WINDOW),
        layers=reader.field_int(KEY_MODEL, model, "layers", 1, MAX_LAYERS),
        hidden=reader.field_int(KEY_MODEL, model, "hidden", 1, MAX_HIDDEN),
        encoding=reader.field_choice(KEY_MODEL, model, "encoding", ENCODINGS),
        embedding_dim=reader.field_int(KEY_MODEL, model, "embedding_dim", 1, MAX_EMBEDDING_DIM),
    )
    provenance = reader.json_object(KEY_PROVENANCE)
    graph = reader.choice(KEY_GRAPH, GRAPHS)
    if graph == GRAPH_STREAM and version < STREAM_SINCE:
        raise reader.fail(KEY_GRAPH, f"a stream graph in a file of format {version} (streams: {STREAM_SINCE} on)")
    return ModelMetadata(
        graph=graph,
        vocabulary=reader.vocabulary(),
        config=config,
        quantization=reader.choice(KEY_QUANTIZATION, QUANTIZATIONS),
        provenance=Provenance(
            corpus_sha256=reader.field_str(KEY_PROVENANCE, provenance, "corpus_sha256"),
            corpus_name=reader.field_str(KEY_PROVENANCE, provenance, "corpus_name"),
            preset=reader.field_str(KEY_PROVENANCE, provenance, "preset"),
            steps=reader.field_int(KEY_PROVENANCE, provenance, "steps", 0, None),
            accuracy=reader.field_float(KEY_PROVENANCE, provenance, "accuracy"),
            device=reader.field_str(KEY_PROVENANCE, provenance, "device"),
            seed=reader.field_int(KEY_PROVENANCE, provenance, "seed", None, None),
            ceiling=reader.field_float(KEY_PROVENANCE, provenance, "ceiling") if "ceiling" in provenance else None,
            **_heldout(reader, provenance),
        ),
        producer=reader.text(KEY_PRODUCER),
        tokenizer_version=tokenizer_version,
        format_version=version,
        cache=_cache(reader, graph) if KEY_CACHE in props else None,
    )


def _cache(reader: _Reader, graph: str) -> CacheSettings:
    if graph != GRAPH_STREAM:
        raise reader.fail(KEY_CACHE, f"a cache for a {graph} graph (only stream graphs have one)")
    cache = reader.json_object(KEY_CACHE)
    settings = CacheSettings(
        size=reader.field_int(KEY_CACHE, cache, "size", 1, MAX_CACHE),
        flatness=reader.field_float(KEY_CACHE, cache, "flatness"),
        weight=reader.field_float(KEY_CACHE, cache, "weight"),
    )
    if not 0 <= settings.weight < 1 or not 0 <= settings.flatness <= MAX_FLATNESS:
        raise reader.fail(KEY_CACHE, f"a weight outside [0, 1) or a flatness outside [0, {MAX_FLATNESS}] ({settings})")
    return settings


def _heldout(reader: _Reader, provenance: dict[str, Any]) -> dict[str, Any]:
    """The held-out figures of a provenance, those present (older files have none)."""
    found: dict[str, Any] = {}
    for name in ("heldout", "heldout_top1", "heldout_top3", "heldout_perplexity"):
        if provenance.get(name) is not None:
            found[name] = reader.field_float(KEY_PROVENANCE, provenance, name)
    if provenance.get("heldout_words") is not None:
        found["heldout_words"] = reader.field_int(KEY_PROVENANCE, provenance, "heldout_words", 0, None)
    return found


class _Reader:
    """Typed, bounded access to string metadata; every failure is one ModelFileError line."""

    def __init__(self, props: Mapping[str, str], source: str):
        self.props = props
        self.source = source

    def fail(self, key: str, problem: str) -> ModelFileError:
        return ModelFileError(f"{self.source} has {problem} in {key} metadata; re-export the model with fable-export")

    def text(self, key: str, limit: int = MAX_VALUE_BYTES) -> str:
        value = self.props.get(key)
        if value is None:
            raise self.fail(key, "no value")
        if len(value) > limit:  # a str's length bounds its UTF-8 size from below: refuse before parsing
            raise self.fail(key, f"an oversized value ({len(value):,} characters, at most {limit:,})")
        return value

    def integer(self, key: str, low: int | None, high: int | None) -> int:
        value = self.text(key)
        try:
            number = int(value)
        except ValueError:
            raise self.fail(key, f"a non-integer {value[:40]!r}") from None
        return self._bounded(key, number, low, high)

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in options:
            raise self.fail(key, f"{value[:40]!r} (expected one of {', '.join(options)})")
        return value

    def json_any(self, key: str, limit: int = MAX_VALUE_BYTES) -> Any:
        value = self.text(key, limit)
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise self.fail(key, "malformed JSON") from None

    def json_object(self, key: str) -> dict[str, Any]:
        value = self.json_any(key)
        if not isinstance(value, dict):
            raise self.fail(key, "JSON that is not an object")
        return value

    def vocabulary(self) -> tuple[str, ...]:
        words = self.json_any(KEY_VOCABULARY, MAX_VOCABULARY_BYTES)
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w for w in words):
            raise self.fail(KEY_VOCABULARY, "something other than a non-empty list of words")
        if len(set(words)) != len(words):
            raise self.fail(KEY_VOCABULARY, "repeated words")
        return tuple(words)

    def field_int(self, key: str, obj: dict[str, Any], name: str, low: int | None, high: int | None) -> int:
        value = obj.get(name)
        if not is_whole(value):
            raise self.fail(key, f"no integer {name!r}")
        return self._bounded(f"{key}.{name}", value, low, high)

    def field_float(self, key: str, obj: dict[str, Any], name: str) -> float:
        value = obj.get(name)
        if not is_number(value):
            raise self.fail(key, f"no number {name!r}")
        return float(value)

    def field_str(self, key: str, obj: dict[str, Any], name: str) -> str:
        value = obj.get(name)
        if not isinstance(value, str):
            raise self.fail(key, f"no text {name!r}")
        return value

    def field_choice(self, key: str, obj: dict[str, Any], name: str, options: tuple[str, ...]) -> str:
        value = self.field_str(key, obj, name)
        if value not in options:
            raise self.fail(key, f"{name} {value[:40]!r} (expected one of {', '.join(options)})")
        return value

    def _bounded(self, key: str, number: int, low: int | None, high: int | None) -> int:
        if (low is not None and number < low) or (high is not None and number > high):
            raise self.fail(key, f"the out-of-range value {number}")
        return number

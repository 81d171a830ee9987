"""Damaged and hostile model files: each refused at load with one line, by the library and by fable-run.
Building the damage needs the onnx package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fable
from fable import ModelFileError, contract

from .helpers import SHIPPED, assert_clean_failure, invoke

onnx = pytest.importorskip("onnx", reason='building damaged files needs onnx: pip install "fable[train]"')
helper = onnx.helper

INT8 = SHIPPED / "fable.int8.onnx"
VOCABULARY = fable.load(INT8).vocabulary


# --- damaged model files ---------------------------------------------------------------------


def with_props(source: Path, target: Path, **changes: str | None) -> Path:
    model = onnx.load(source)
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        key = contract.PREFIX + key
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    onnx.save(model, target)
    return target


def damaged(kind: str, folder: Path) -> Path:
    path = folder / f"{kind.replace(' ', '-')}.onnx"
    data = INT8.read_bytes()
    if kind.startswith("truncated"):
        path.write_bytes(data[: {"truncated 10": 10, "truncated 1000": 1000, "truncated half": len(data) // 2,
                                 "truncated end": len(data) - 16}[kind]])  # fmt: skip
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(1).bytes(100_000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "foreign onnx":
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])  # fmt: skip
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    elif kind == "vocabulary shorter than the graph":
        with_props(INT8, path, vocabulary=json.dumps(list(VOCABULARY[:-1])))
    elif kind == "malformed vocabulary JSON":
        with_props(INT8, path, vocabulary='[",", "the", ')
    elif kind == "malformed model JSON":
        with_props(INT8, path, model="{layers: 2}")
    elif kind == "newer format":
        with_props(INT8, path, format_version=str(contract.FORMAT_VERSION + 1))
    elif kind == "newer tokenizer":
        with_props(INT8, path, tokenizer_version="99")
    elif kind == "window disagrees with the graph":
        with_props(INT8, path, window="4")
    elif kind == "format 1 on a batched graph":  # format 1 step graphs take one sequence, not a batch
        with_props(INT8, path, format_version="1")
    elif kind == "missing metadata":
        with_props(INT8, path, graph=None)
    return path


DAMAGE = {
    "truncated 10": "not a readable ONNX model",
    "truncated 1000": "not a readable ONNX model",
    "truncated half": "not a readable ONNX model",
    "truncated end": "not a readable ONNX model",
    "random bytes": "not a readable ONNX model",
    "empty": "is empty",
    "directory": "not a file",
    "foreign onnx": "not a fable model",
    "vocabulary shorter than the graph": "vocabulary of 111",
    "malformed vocabulary JSON": "malformed JSON in fable.vocabulary",
    "malformed model JSON": "malformed JSON in fable.model",
    "newer format": f"model format {contract.FORMAT_VERSION + 1}, newer than this fable reads",
    "newer tokenizer": "tokenizer version 99",
    "window disagrees with the graph": "needs tensor(int64) ['any', 4]",
    "format 1 on a batched graph": "needs tensor(int64) [1, 3]",
    "missing metadata": "no value in fable.graph",
}


@pytest.mark.parametrize("backend", ["onnxruntime", "numpy"])
@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_model_file_is_refused_at_load_with_one_line(tmp_path, kind, backend):
    path = damaged(kind, tmp_path)
    with pytest.raises(ModelFileError) as error:
        fable.load(path, backend=backend)
    message = str(error.value)
    assert DAMAGE[kind] in message and "\n" not in message, message
    result = invoke("fable-run", "the old mouse", "--model", str(path), "--backend", backend)
    assert_clean_failure(result, 1, DAMAGE[kind])


@pytest.mark.parametrize("seed", range(200))
def test_random_damage_anywhere_in_the_file_is_one_line_for_the_numpy_reader(tmp_path, seed):
    """Bytes flipped, cut or inserted at random places: a clear refusal or a working model, never
    a traceback, and no allocation bigger than the file allows (the reader checks every length)."""
    rng = np.random.default_rng(seed)
    data = bytearray(INT8.read_bytes())
    for _ in range(rng.integers(1, 20)):
        at = int(rng.integers(0, len(data)))
        data[at] = int(rng.integers(0, 256))
    path = tmp_path / "flipped.onnx"
    path.write_bytes(bytes(data[: int(rng.integers(len(data) // 2, len(data) + 1))]))
    try:
        model = fable.load(path, backend="numpy")
        words = list(model.stream("the old mouse", 3))
    except (ModelFileError, fable.PromptError) as error:
        assert "\n" not in str(error) and str(error)
    else:  # damage the reader could not see (inside a weight, say) still gives words of the model's own
        assert len(words) == 3 and set(words) <= set(model.vocabulary)


@pytest.mark.slow
def test_a_100_mb_vocabulary_is_refused_not_parsed(tmp_path, monkeypatch):
    path = with_props(INT8, tmp_path / "huge.onnx", vocabulary='["' + "x" * (100 * 1024**2) + '"]')
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(
        contract.json, "loads", lambda text, *a, **k: parsed.append(len(text)) or real_loads(text, *a, **k)
    )
    for backend in ("onnxruntime", "numpy"):
        with pytest.raises(ModelFileError, match="oversized value"):
            fable.load(path, backend=backend)
    assert all(size <= contract.MAX_VALUE_BYTES for size in parsed)  # the vocabulary never reached the parser

"""The blend trials of learned-blend-validation-amd-epyc-zen4.txt: keystrokes saved on a corpus's
validation blocks by a model file alone, with the block's own text learnt, and with the document
before each block learnt too, for each blend of the grid.

    OPENBLAS_NUM_THREADS=1 python learned-blend-validation-amd-epyc-zen4.py CORPUS.txt MODEL.onnx
"""

import itertools
import sys
import time

import fable
from fable.evaluation import NOTHING
from fable.learned import Blend
from fable.training.corpus import read_corpus
from fable.training.split import split

corpus_path, model_path = sys.argv[1], sys.argv[2]
text = read_corpus(corpus_path)
words = [text.words[i] for i in text.ids.tolist()]
chosen = split(len(words), 0.1).validation
model = fable.Model(model_path)


def run(blend: Blend, learning: bool = True, history: bool = True) -> fable.evaluation.Evaluation:
    model.blend = blend
    total = NOTHING
    for start, end in chosen:
        model.forget()
        if history and learning:
            model.learn(" ".join(words[:start]))
        total += model.evaluate(" ".join(words[start:end]), learning=learning)
    return total


started = time.time()
print("alone", run(Blend(), learning=False).line(), f"{time.time() - started:.1f}s", flush=True)
started = time.time()
print("text only", run(Blend(), history=False).line(), f"{time.time() - started:.1f}s", flush=True)
for weight, prior in itertools.product([0.05, 0.1, 0.2, 0.3], [0.5, 2, 8]):
    started = time.time()
    print(weight, prior, run(Blend(weight, prior)).line(), f"{time.time() - started:.1f}s", flush=True)

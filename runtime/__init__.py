"""fable's runtime: generate text from a fable model file with numpy and onnxruntime alone.

import runtime
model = runtime.load()                      # the shipped default model
print(model.generate("the old mouse"))      # greedy, 32 words
"""

from .errors import FableError, ModelFileError, PromptError, UnknownWordError, UsageError
from .model import Model, default_model_path, load

__version__ = "0.1.0"

__all__ = [
    "FableError",
    "Model",
    "ModelFileError",
    "PromptError",
    "UnknownWordError",
    "UsageError",
    "__version__",
    "default_model_path",
    "load",
]

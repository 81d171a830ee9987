"""fable: generate text from a fable model file with numpy and onnxruntime alone.

import fable
model = fable.load()                        # the shipped default model
print(model.generate("the old mouse"))      # greedy, 32 words
model.generate("the old mouse", 8, fable.Sampling(temperature=0.8, seed=1))

Training and export live in `fable.training` (pip install "fable[train]"); nothing here imports them.
"""

from .errors import FableError, ModelFileError, PromptError, SettingError, UnknownWordError, UsageError
from .model import Model, default_model_path, load
from .sampling import Sampling

__version__ = "0.6.0"

__all__ = [
    "FableError",
    "Model",
    "ModelFileError",
    "PromptError",
    "Sampling",
    "SettingError",
    "UnknownWordError",
    "UsageError",
    "__version__",
    "default_model_path",
    "load",
]

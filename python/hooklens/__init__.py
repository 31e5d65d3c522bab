"""hooklens: TransformerLens' ``HookedTransformer`` API on the hooklens engine.

Arrays are numpy (``torch.from_numpy`` makes a tensor without a copy). Hooks receive writable
views of the engine's own buffers, valid during the call. See ``docs/python.md``.
"""

from hooklens._hooklens import (
    ActivationCache,
    Config,
    HookedTransformer,
    HookLensError,
    HookPoint,
    HookShapeError,
    InputError,
    ModelLoadError,
    TokenError,
    UnknownHookError,
    UnsupportedError,
    set_num_threads,
)
from hooklens._view import ActivationView

__all__ = [
    "ActivationCache",
    "ActivationView",
    "Config",
    "HookedTransformer",
    "HookLensError",
    "HookPoint",
    "HookShapeError",
    "InputError",
    "ModelLoadError",
    "TokenError",
    "UnknownHookError",
    "UnsupportedError",
    "set_num_threads",
]

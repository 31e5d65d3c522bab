"""hooklens: TransformerLens' ``HookedTransformer`` API on the hooklens engine.

Arrays are numpy (``torch.from_numpy`` makes a tensor without a copy). Hooks receive writable
views of the engine's own buffers, valid during the call. See ``docs/python.md``.
"""

from hooklens._hooklens import (
    ActivationCache,
    CacheFileError,
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
from hooklens._factored import FactoredMatrix
from hooklens._view import ActivationView


def load_cache(path, model):
    """An ``ActivationCache`` saved by ``cache.save(path)`` (or the CLI's ``--save-cache``),
    read for ``model`` (its hook names); the tokens are in ``cache.tokens``. The same as
    ``model.load_cache(path)``; a bad file raises ``CacheFileError``."""
    return model.load_cache(path)


__all__ = [
    "ActivationCache",
    "ActivationView",
    "CacheFileError",
    "Config",
    "FactoredMatrix",
    "HookedTransformer",
    "HookLensError",
    "HookPoint",
    "HookShapeError",
    "InputError",
    "ModelLoadError",
    "TokenError",
    "UnknownHookError",
    "UnsupportedError",
    "load_cache",
    "set_num_threads",
]

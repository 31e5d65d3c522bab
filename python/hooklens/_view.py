"""The array type a hook receives: a writable view of the engine's own buffer.

The view is valid while the hook runs. When the hook returns, every array that still points
into the buffer (the view itself if something kept it, and any slice, reshape or transpose of
it) is moved by the engine onto a private copy taken at that moment, so keeping one is safe
but it no longer changes the pass. Keep ``act.copy()`` to make that explicit.
"""

import weakref

import numpy as np


class ActivationView(np.ndarray):
    """``numpy.ndarray`` over an activation of the running pass (see the module docstring)."""

    def __array_finalize__(self, obj):
        # Every array derived from a hook's view joins that call's registry, so the engine can
        # find the ones that outlive the call.
        registry = getattr(obj, "_hl_views", None)
        self._hl_views = registry
        if registry is not None:
            registry.append(weakref.ref(self))

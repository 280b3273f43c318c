"""Arrays reused from one call to the next, so that the hot path allocates nothing.

A training step computes the same intermediate arrays, of the same shapes, thousands of times;
each fresh (K·B, D) temporary costs an allocation and page faults on top of its pass over
memory. A :class:`Workspace` hands out one array per name, kept while the requested shape and
dtype stay the same (a new shape, e.g. the last, shorter minibatch, replaces it)::

    work = Workspace()
    log_phi = work("log_phi", logits.shape, logits.dtype)     # same memory at every step

Functions of the hot path take ``work=None`` and write their results into ``work``'s arrays
when given one (then the results are only valid until the next call with the same workspace),
or allocate fresh arrays when not (what the labs and every other caller see).
"""
from .backend import xp


class Workspace:
    """A dict of reusable arrays: ``work(name, shape, dtype)`` returns the array for name."""

    def __init__(self):
        self._arrays = {}

    @property
    def nbytes(self):
        """The memory its arrays hold (part of a training step's, allocated once)."""
        return sum(int(a.nbytes) for a in self._arrays.values())

    def __call__(self, name, shape, dtype):
        a = self._arrays.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self._arrays[name] = xp.empty(shape, dtype)
        return a


def buffer(work, name, shape, dtype):
    """``work(name, shape, dtype)``, or a fresh array when there is no workspace."""
    return xp.empty(shape, dtype) if work is None else work(name, shape, dtype)

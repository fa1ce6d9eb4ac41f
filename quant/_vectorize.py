"""Run an elementwise numpy kernel over cache-sized chunks.

A Black-Scholes or implied-vol kernel is a chain of 30-300 numpy ufunc calls. Over a 1M
element array each call streams 8 MB temporaries through memory (and the allocator hands
back fresh pages that fault in); over 16k-element chunks the temporaries stay in L2 cache.
That alone is worth 1.5-3x. Arguments of size 1 stay scalars, so shared S/t/r/q cost once.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

CHUNK = 16_384


def run_chunked(kernel: Callable[..., tuple[np.ndarray, ...]], args: Sequence[np.ndarray],
                n_out: int, chunk: int = CHUNK) -> tuple[np.ndarray, ...]:
    """Apply `kernel(*args) -> tuple of n_out arrays` elementwise over broadcast `args`.

    The kernel must be elementwise (output element i depends only on input element i) and
    accept a mix of 0-d and full-size arguments; the FIRST argument is always full-size, so
    an expression involving it is a fresh array the kernel may update in place. Results
    have the broadcast shape (0-d arrays for all-scalar input).
    """
    shape = np.broadcast_shapes(*(a.shape for a in args))
    size = int(np.prod(shape, dtype=np.int64))
    if size <= chunk:
        out = kernel(np.broadcast_to(args[0], shape), *args[1:])
        return tuple(np.broadcast_to(o, shape).copy() if np.shape(o) != shape else np.asarray(o)
                     for o in out)
    flat = [a.reshape(()) if a.size == 1 and i else np.broadcast_to(a, shape).reshape(-1)
            for i, a in enumerate(args)]
    results = [np.empty(size, dtype=np.float64) for _ in range(n_out)]
    for lo in range(0, size, chunk):
        hi = min(lo + chunk, size)
        part = kernel(*(a if a.ndim == 0 else a[lo:hi] for a in flat))
        for res, p in zip(results, part):
            res[lo:hi] = p
    return tuple(r.reshape(shape) for r in results)

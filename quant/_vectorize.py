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
    """Apply `kernel(*args) -> tuple of n_out float arrays` elementwise over broadcast `args`.

    The kernel sees 1-d arguments of equal length, except that arguments of size 1 are
    passed as 0-d scalars; the FIRST argument is always 1-d, so an expression involving it is
    a fresh array the kernel may update in place. The kernel must be elementwise (output i
    depends only on input i). Results have the broadcast shape (0-d for all-scalar input).
    """
    shape = np.broadcast_shapes(*(a.shape for a in args))
    size = int(np.prod(shape, dtype=np.int64))
    flat = [a.reshape(()) if a.size == 1 and i else np.broadcast_to(a, shape).reshape(-1)
            for i, a in enumerate(args)]
    if size <= chunk:
        out = kernel(*flat)
        return tuple(np.array(np.broadcast_to(o, (size,)), dtype=np.float64).reshape(shape) for o in out)
    results = [np.empty(size, dtype=np.float64) for _ in range(n_out)]
    for lo in range(0, size, chunk):
        hi = min(lo + chunk, size)
        part = kernel(*(a if a.ndim == 0 else a[lo:hi] for a in flat))
        for res, p in zip(results, part):
            res[lo:hi] = p
    return tuple(r.reshape(shape) for r in results)

"""Implied volatility, vectorised over whole chains, with NaN instead of a wrong number.

    implied_volatility(price, is_call, S, K, t, r, q=0.0)

Argument order: the price being inverted first (as py_vollib), then the `quant` order
(is_call, S, K, t, r, q) without sigma. Everything broadcasts.

Method (after P. Jäckel, "Let's Be Rational", Wilmott 2015; the structure of the four
initial-guess branches, the three objective functions and the Householder(3) step follow
his reference implementation, vectorised here with numpy):

1. Normalise to Black on the forward: x = ln(F/K), beta = undiscounted price / sqrt(F K),
   unknown s = sigma sqrt(t). An in-the-money option is replaced by the out-of-the-money
   one through put-call parity, and a put by a call through b_put(x) = b_call(-x), so the
   solver only sees an OTM call: x <= 0, 0 < beta < b_max = e^{x/2}.
2. Initial guess from rational cubic interpolation of s(beta) in four branches around the
   inflection point s_c = sqrt(2|x|) (lower/upper branches in Jäckel's transformed
   coordinates), accurate to a few digits everywhere.
3. Householder(3) iterations on the branch's objective (1/ln b for tiny prices, b in the
   middle, ln(b_max - b) near the upper bound), keeping a bracket [lo, hi] per element and
   bisecting when a step leaves it or stalls; typically two iterations to full precision.

Recoverable - when a number is returned (otherwise NaN)
-------------------------------------------------------
The input must be valid (t > 0, S > 0, K > 0, finite price) and strictly inside the no-
arbitrage bounds: above the discounted intrinsic value (the OTM-equivalent normalised price
must be a normal double, >= 2.2e-308) and below S e^{-qt} (call) / K e^{-rt} (put). And the
price must carry information about sigma at double precision: a double-precision price
computed from its two Black-Scholes terms T = S e^{-qt} N(±d1) + K e^{-rt} N(±d2) is
uncertain by a few ulps of T, so we require

    NOISE_ULPS * (eps * T * (1 + |x|) + DBL_MIN * (S e^{-qt} + K e^{-rt}))  <=  vol_resolution * vega

(eps = 2^-52, NOISE_ULPS = 16; the forward F = S e^{(r-q)t} is itself only known to ~|x|
ulps; the DBL_MIN term is N(.) flushing to zero in its far tail), i.e. a 16-ulp
perturbation of the price moves sigma by at most `vol_resolution` (1e-10 by default). This rejects deep in-the-money short-dated options (the time value is below an
ulp of the intrinsic value) and prices at the upper bound (vega -> 0), and accepts deep OTM
options down to the smallest normal doubles. Where it holds, the returned sigma is within
`vol_resolution` of the true one (tested); `iv_recoverable` evaluates the same condition
from a known sigma.

Attribution: the lower/upper guess maps, the rational cubic interpolation and the
Householder objectives are adapted from LetsBeRational (via the MIT-licensed
py_lets_be_rational port, (c) 2017 Gammon Capital LLC):
    Copyright (c) 2013-2014 Peter Jäckel. Permission to use, copy, modify, and distribute
    this software is freely granted, provided that this notice is preserved.
    WARRANTY DISCLAIMER: The Software is provided "as is" without warranty of any kind.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from quant._vectorize import run_chunked
from quant.black_scholes import FloatArray, _floats, _sign

DEFAULT_VOL_RESOLUTION = 1e-10
NOISE_ULPS = 16.0
_EPS = np.finfo(np.float64).eps
_DBL_MIN = np.finfo(np.float64).tiny
_DBL_MAX = np.finfo(np.float64).max
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT3 = math.sqrt(3.0)
_TWO_PI_OVER_SQRT27 = 2.0 * math.pi / math.sqrt(27.0)
_SQRT_PI_OVER_2 = math.sqrt(math.pi / 2.0)
_R_MAX = 2.0 / (_EPS * _EPS)           # rational cubic control: "linear"
_R_MIN = -(1.0 - math.sqrt(_EPS))
_MAX_ITER = 40
# Accept s + ds once |ds| <= _REL_TOL * s: Householder(3) converges quartically (measured:
# a step of 5e-2 leaves < 1e-6, one of 1e-5 leaves < 3e-12, the noise floor), so the error
# after accepting is far below the resolution.
_REL_TOL = 1e-5
_LOWER, _MIDDLE, _UPPER = 0, 1, 2


# --- normalised Black: x <= 0 (OTM call), s = sigma sqrt(t) -------------------------------

def _terms(x, s, bmax, inv_bmax):
    """(e^{x/2} N(d1), e^{-x/2} N(d2), b'(s)) for the OTM call; b = first - second."""
    h = x / s
    half_s = 0.5 * s
    a = ndtr(h + half_s)
    a *= bmax
    b = ndtr(h - half_s)
    b *= inv_bmax
    vega = np.exp(-0.5 * (h * h + half_s * half_s))
    vega *= _INV_SQRT_2PI
    return a, b, vega


def _black(x, s, bmax, inv_bmax):
    a, b, vega = _terms(x, s, bmax, inv_bmax)
    return np.maximum(a - b, 0.0), vega


# --- rational cubic interpolation (Delbourgo & Gregory; as in Let's Be Rational) ---------

def _rc_interp(xv, x_l, x_r, y_l, y_r, d_l, d_r, r):
    h = x_r - x_l
    t = (xv - x_l) / h
    omt = 1.0 - t
    val = (y_r * t * t * t + (r * y_r - h * d_r) * t * t * omt + (r * y_l + h * d_l) * t * omt * omt
           + y_l * omt * omt * omt) / (1.0 + (r - 3.0) * t * omt)
    val = np.where(r >= _R_MAX, y_r * t + y_l * omt, val)
    return np.where(np.abs(h) > 0, val, 0.5 * (y_l + y_r))


def _rc_min_param(d_l, d_r, slope, prefer_shape: bool):
    monotonic = (d_l * slope >= 0) & (d_r * slope >= 0)
    convex = (d_l <= slope) & (slope <= d_r)
    concave = (d_l >= slope) & (slope >= d_r)
    fallback = _R_MAX if prefer_shape else -_DBL_MAX
    r1 = np.where(monotonic, np.where(np.abs(slope) >= _DBL_MIN, (d_r + d_l) / slope, fallback), -_DBL_MAX)
    cc = convex | concave
    ok = (np.abs(slope - d_l) >= _DBL_MIN) & (np.abs(d_r - slope) >= _DBL_MIN)
    r2 = np.where(ok, np.maximum(np.abs((d_r - d_l) / (d_r - slope)), np.abs((d_r - d_l) / (slope - d_l))),
                  fallback)
    r2 = np.where(cc, r2, np.where(monotonic, fallback if prefer_shape else -_DBL_MAX, -_DBL_MAX))
    res = np.maximum(_R_MIN, np.maximum(r1, r2))
    return np.where(monotonic | cc, res, _R_MIN)


def _rc_param(num, den):
    out = np.where(np.abs(den) < _DBL_MIN, np.where(num > 0, _R_MAX, _R_MIN), num / den)
    return np.where(np.abs(num) < _DBL_MIN, 0.0, out)


def _convex_param_right(x_l, x_r, y_l, y_r, d_l, d_r, d2_r, prefer_shape: bool):
    h = x_r - x_l
    r = _rc_param(0.5 * h * d2_r + (d_r - d_l), d_r - (y_r - y_l) / h)
    return np.maximum(r, _rc_min_param(d_l, d_r, (y_r - y_l) / h, prefer_shape))


def _convex_param_left(x_l, x_r, y_l, y_r, d_l, d_r, d2_l, prefer_shape: bool):
    h = x_r - x_l
    r = _rc_param(0.5 * h * d2_l + (d_r - d_l), (y_r - y_l) / h - d_l)
    return np.maximum(r, _rc_min_param(d_l, d_r, (y_r - y_l) / h, prefer_shape))


# --- initial guesses ------------------------------------------------------------------------

def _guess_lowest(beta, x, s_l, b_l):
    """beta < b_l: interpolate Jäckel's lower map f(beta) ~ (2pi|x|/sqrt27) N(-|x|/(sqrt3 s))^3."""
    ax = -x
    z = ax / (_SQRT3 * s_l)
    y = z * z
    s2 = s_l * s_l
    cdf = ndtr(-z)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * y)
    fpp = (math.pi / 6.0) * y / (s2 * s_l) * cdf \
        * (8.0 * _SQRT3 * s_l * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * cdf / pdf) \
        * np.exp(2.0 * y + 0.25 * s2)
    fp = 2.0 * math.pi * y * cdf * cdf * np.exp(y + 0.125 * s2)
    f_l = _TWO_PI_OVER_SQRT27 * ax * cdf * cdf * cdf
    zero, one = np.zeros_like(beta), np.ones_like(beta)
    r = _convex_param_right(zero, b_l, zero, f_l, one, fp, fpp, True)
    f = _rc_interp(beta, zero, b_l, zero, f_l, one, fp, r)
    bad = ~(f > 0)   # round-off or overflow for extreme |x|: quadratic through f(0)=0, f'(0)=1, f(b_l)
    if np.any(bad):
        t = beta / b_l
        f = np.where(bad, (f_l * t + b_l * (1.0 - t)) * t, f)
    return np.abs(x / (_SQRT3 * ndtri(np.cbrt(f / (_TWO_PI_OVER_SQRT27 * ax)))))


def _guess_highest(beta, x, bmax, s_h, b_h):
    """beta > b_h: interpolate the upper map f(beta) ~ N(-s/2), with f(b_max) = 0."""
    f_h = ndtr(-0.5 * s_h)
    w = (x / s_h) ** 2
    fp = -0.5 * np.exp(0.5 * w)
    fpp = _SQRT_PI_OVER_2 * np.exp(w + 0.125 * s_h * s_h) * w / s_h
    zero, half = np.zeros_like(beta), np.full_like(beta, -0.5)
    r = _convex_param_left(b_h, bmax, f_h, zero, fp, half, fpp, True)
    f = _rc_interp(beta, b_h, bmax, f_h, zero, fp, half, r)
    bad = ~(f > 0) | ~np.isfinite(fpp)   # quadratic through f(b_h), f(b_max) = 0, f'(b_max) = -1/2
    if np.any(bad):
        hh = bmax - b_h
        t = (beta - b_h) / hh
        f = np.where(bad, (f_h * (1.0 - t) + 0.5 * hh * t) * (1.0 - t), f)
    return -2.0 * ndtri(f)


# --- Householder(3) with a bracket ------------------------------------------------------

def _iterate(kind: int, beta, x, bmax, inv_bmax, s, lo, hi, abs_tol):
    """Solve b(x, s) = beta for one objective kind, all elements at once; converged elements
    drop out of the working set. Returns (s, terms, vega): terms = e^{x/2}N(d1) +
    e^{-x/2}N(d2) and vega = b'(s) at the last evaluation (for the noise check); s is NaN
    where _MAX_ITER iterations did not converge."""
    n = beta.size
    out_s = np.full(n, np.nan)
    out_terms = np.full(n, np.nan)
    out_vega = np.full(n, np.nan)
    idx = np.arange(n)
    ln_beta = np.log(beta) if kind == _LOWER else None
    ln_gap = np.log(bmax - beta) if kind == _UPPER else None
    ds_prev = np.full(n, np.inf)
    lo, hi = lo.copy(), hi.copy()   # updated in place below
    s = np.clip(s, lo, hi)
    inside = (s > lo) & (s < hi)
    if not np.all(inside):
        s = np.where(inside, s, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * lo))
    for it in range(_MAX_ITER):
        h = x / s
        half_s = 0.5 * s
        vega = np.exp(-0.5 * (h * h + half_s * half_s))
        vega *= _INV_SQRT_2PI
        nb = ndtr(h - half_s)
        nb *= inv_bmax
        if kind == _UPPER:   # b_max - b = e^{x/2} N(-d1) + e^{-x/2} N(d2): no cancellation
            gap = ndtr(-h - half_s)
            gap *= bmax
            gap += nb
            b = bmax - gap
            terms = b + 2.0 * nb
        else:
            na = ndtr(h + half_s)
            na *= bmax
            b = na - nb
            terms = na + nb
        np.minimum(hi, s, out=hi, where=b > beta)   # keep the root bracketed
        np.maximum(lo, s, out=lo, where=b < beta)
        b_halley = h * h / s - 0.25 * s
        b_hh3 = b_halley * b_halley - 3.0 * (h / s) ** 2 - 0.25
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if kind == _MIDDLE:
                newton = (beta - b) / vega
                halley = b_halley
                hh3 = b_hh3
            elif kind == _LOWER:
                ln_b = np.log(b)
                bpob = vega / b
                inv_ln_b = 1.0 / ln_b
                newton = (ln_beta - ln_b) * ln_b / ln_beta / bpob
                c1 = 1.0 + 2.0 * inv_ln_b
                halley = b_halley - bpob * c1
                hh3 = (b_hh3 + 2.0 * bpob * bpob * (1.0 + 3.0 * inv_ln_b * (1.0 + inv_ln_b))
                       - 3.0 * b_halley * bpob * c1)
            else:
                gp = vega / gap
                newton = (np.log(gap) - ln_gap) / gp
                halley = b_halley + gp
                hh3 = b_hh3 + gp * (2.0 * gp + 3.0 * b_halley)
            ds = newton * (1.0 + 0.5 * halley * newton) / (1.0 + newton * (halley + hh3 * newton / 6.0))
        ds = np.maximum(ds, -0.5 * s)
        ads = np.abs(ds)
        small = (ads <= _REL_TOL * s) | (ads <= abs_tol)   # converged: accept this last step
        s_new = s + ds
        # Safeguards: bisect when a step leaves the bracket, is not finite, or stalls.
        bad = ~((s_new > lo) & (s_new < hi))
        if it >= 2:
            bad |= ads > 0.5 * np.abs(ds_prev)
        bad &= ~small
        if np.any(bad):
            mid = np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * lo)
            s_new = np.where(bad, mid, s_new)
        done = small | (hi - lo <= 4.0 * _EPS * s_new)
        ds_prev = ds
        s = s_new
        if np.any(done):
            where = idx[done]
            out_s[where] = s[done]
            out_terms[where] = terms[done]
            out_vega[where] = vega[done]
            keep = ~done
            if not np.any(keep):
                break
            idx, s, lo, hi, ds_prev = idx[keep], s[keep], lo[keep], hi[keep], ds_prev[keep]
            beta, x, bmax, inv_bmax, abs_tol = beta[keep], x[keep], bmax[keep], inv_bmax[keep], abs_tol[keep]
            if ln_beta is not None:
                ln_beta = ln_beta[keep]
            if ln_gap is not None:
                ln_gap = ln_gap[keep]
    return out_s, out_terms, out_vega


def _solve_normalised(beta, x, bmax, inv_bmax, abs_tol):
    """s = sigma sqrt(t) with b(x, s) = beta, for OTM calls: x <= 0, 0 < beta < bmax.

    Returns (s, terms, vega) as `_iterate`. Each of Jäckel's four branches is computed on
    its own subset only (a guess costs as much as an iteration: don't compute it twice).
    """
    n = beta.size
    s, terms, vega = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)

    def solve(kind, idx, guess, lo, hi):
        if idx.size:
            s[idx], terms[idx], vega[idx] = _iterate(kind, beta[idx], x[idx], bmax[idx], inv_bmax[idx],
                                                     guess, lo, hi, abs_tol[idx])

    s_c = np.maximum(np.sqrt(-2.0 * x), _DBL_MIN)   # the inflection point of b(s)
    b_c, v_c = _black(x, s_c, bmax, inv_bmax)
    low = beta < b_c
    i = np.flatnonzero(low)
    if i.size:   # below the inflection point: the tangent there meets b = 0 at s_l
        xb, bb, sc, bc, vc = x[i], beta[i], s_c[i], b_c[i], v_c[i]
        s_l = sc - bc / vc
        b_l, v_l = _black(xb, s_l, bmax[i], inv_bmax[i])
        lowest = bb < b_l
        j = np.flatnonzero(lowest)
        solve(_LOWER, i[j], _guess_lowest(bb[j], xb[j], s_l[j], b_l[j]), np.zeros(j.size), s_l[j])
        j = np.flatnonzero(~lowest)
        if j.size:
            bl, sl, sc_, bc_, dl, dr = b_l[j], s_l[j], sc[j], bc[j], 1.0 / v_l[j], 1.0 / vc[j]
            r = _convex_param_right(bl, bc_, sl, sc_, dl, dr, 0.0, False)
            solve(_MIDDLE, i[j], _rc_interp(bb[j], bl, bc_, sl, sc_, dl, dr, r), sl, sc_)
    i = np.flatnonzero(~low)
    if i.size:   # above it: the tangent there meets b = b_max at s_h
        xb, bb, sc, bc, vc, bm = x[i], beta[i], s_c[i], b_c[i], v_c[i], bmax[i]
        s_h = np.where(vc > _DBL_MIN, sc + (bm - bc) / vc, sc)
        b_h, v_h = _black(xb, s_h, bm, inv_bmax[i])
        highest = bb > b_h
        j = np.flatnonzero(~highest)
        if j.size:
            bc_, bh, sc_, sh, dl, dr = bc[j], b_h[j], sc[j], s_h[j], 1.0 / vc[j], 1.0 / v_h[j]
            r = _convex_param_left(bc_, bh, sc_, sh, dl, dr, 0.0, False)
            solve(_MIDDLE, i[j], _rc_interp(bb[j], bc_, bh, sc_, sh, dl, dr, r), sc_, sh)
        j = np.flatnonzero(highest)
        if j.size:
            g = _guess_highest(bb[j], xb[j], bm[j], s_h[j], b_h[j])
            upper = bb[j] > 0.5 * bm[j]   # else the plain objective b - beta is the better one
            for kind, m in ((_UPPER, upper), (_MIDDLE, ~upper)):
                k = np.flatnonzero(m)
                solve(kind, i[j[k]], g[k], s_h[j[k]], np.full(k.size, np.inf))
    return s, terms, vega


# --- public API ---------------------------------------------------------------------------

def _noise(terms, bmax, inv_bmax, abs_x):
    """Price uncertainty in normalised units: NOISE_ULPS ulps of the two Black-Scholes terms,
    widened by (1 + |x|) because x = ln(F/K) = ln(S/K) + (r-q)t carries an absolute rounding
    error ~ eps |x|, i.e. the forward is known to ~|x| ulps; plus the absolute floor of N(.)
    itself, which flushes to 0 below ~DBL_MIN (d < -37.5)."""
    return NOISE_ULPS * (_EPS * terms * (1.0 + abs_x) + _DBL_MIN * (bmax + inv_bmax))


def _normalise(sign, price, S, K, t, r, q):
    """(x_otm = -|ln(F/K)|, beta_otm, bmax = e^{x_otm/2}, itm, valid); see the module docstring."""
    x = np.log(S / K) + (r - q) * t                  # ln(F/K)
    ex2 = np.exp(0.5 * x)
    beta = price * np.exp(r * t) / (K * ex2)         # undiscounted price / sqrt(F K)
    itm = sign * x > 0
    beta_otm = np.where(itm, beta - sign * (ex2 - 1.0 / ex2), beta)
    bmax = np.where(x > 0, 1.0 / ex2, ex2)           # e^{-|x|/2}
    valid = (t > 0) & (S > 0) & (K > 0) & np.isfinite(beta_otm) & np.isfinite(x)
    valid &= (beta_otm >= _DBL_MIN) & (beta_otm < bmax)
    return -np.abs(x), beta_otm, bmax, itm, valid


def _iv_kernel(sign, price, S, K, t, r, q, resolution):
    with np.errstate(all="ignore"):
        x_otm, beta, bmax, itm, valid = (np.broadcast_to(a, sign.shape)
                                         for a in _normalise(sign, price, S, K, t, r, q))
        sqrt_t = np.broadcast_to(np.sqrt(t), sign.shape)
        sigma = np.full(sign.shape, np.nan)
        i = np.flatnonzero(valid)
        if i.size == 0:
            return (sigma,)
        bm = bmax[i]
        inv_bm = 1.0 / bm
        st = sqrt_t[i]
        s, terms, vega = _solve_normalised(beta[i], x_otm[i], bm, inv_bm, 1e-3 * resolution * st)
        # The option's own terms: for an ITM input they are (e^{x/2} + e^{-x/2}) - OTM terms.
        terms = np.where(itm[i], (bm + inv_bm) - terms, terms)
        ok = _noise(terms, bm, inv_bm, -x_otm[i]) <= resolution * vega * st
        sigma[i] = np.where(ok & (s > 0), s / st, np.nan)
    return (sigma,)


def implied_volatility(price: ArrayLike, is_call: ArrayLike, S: ArrayLike, K: ArrayLike,
                       t: ArrayLike, r: ArrayLike, q: ArrayLike = 0.0, *,
                       vol_resolution: float = DEFAULT_VOL_RESOLUTION) -> FloatArray:
    """Black-Scholes-Merton implied volatility; NaN where it is not recoverable.

    `vol_resolution` is the sigma error a 16-ulp price perturbation may cause before the
    answer is declared unrecoverable (see the module docstring); raise it (e.g. 1e-6) to
    accept more deep-ITM / near-bound prices with correspondingly less accurate vols.
    """
    args = [_sign(is_call), *_floats(price, S, K, t, r, q)]
    kernel = lambda *a: _iv_kernel(*a, vol_resolution)  # noqa: E731
    return run_chunked(kernel, args, 1)[0]


def iv_recoverable(is_call: ArrayLike, S: ArrayLike, K: ArrayLike, t: ArrayLike, r: ArrayLike,
                   sigma: ArrayLike, q: ArrayLike = 0.0, *,
                   vol_resolution: float = DEFAULT_VOL_RESOLUTION) -> np.ndarray:
    """Whether `implied_volatility` can recover `sigma` from a double-precision price
    (the condition of the module docstring, evaluated at the true sigma)."""
    def kernel(sign, S, K, t, r, sigma, q):
        with np.errstate(all="ignore"):
            x = np.log(S / K) + (r - q) * t
            ex2 = np.exp(0.5 * x)
            bmax = np.where(x > 0, 1.0 / ex2, ex2)
            sqrt_t = np.sqrt(t)
            s = sigma * sqrt_t
            a, b, vega = _terms(-np.abs(x), s, bmax, 1.0 / bmax)
            b_otm = a - b
            terms = np.where(sign * x > 0, (bmax + 1.0 / bmax) - (a + b), a + b)
            ok = (t > 0) & (S > 0) & (K > 0) & (sigma > 0) & (b_otm >= _DBL_MIN)
            ok &= _noise(terms, bmax, 1.0 / bmax, np.abs(x)) <= vol_resolution * vega * sqrt_t
        return (ok.astype(np.float64),)
    args = [_sign(is_call), *_floats(S, K, t, r, sigma, q)]
    return run_chunked(kernel, args, 1)[0].astype(bool)

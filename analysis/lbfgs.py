"""L-BFGS-B on many independent problems at once: the same iterates as scipy.optimize.minimize, problem by problem.

A bootstrap fits one small problem per resample (approach 3: 5 parameters, ~20 runs, ~300 evaluations each). One
minimize() call per resample spends most of its time in scipy's per-evaluation Python wrapper and in ~40 numpy calls
on 20-element arrays, not in arithmetic. Here every problem keeps its own L-BFGS-B state and takes exactly the steps
minimize() would take; the problems that want an evaluation in a round are evaluated together, one vectorised call of
`fun_batch` on their stacked points. Each problem's iterates depend only on its own (f, g), so a problem's result is
the same whichever problems share its batch (and so whatever the number of processes), bit for bit, provided
`fun_batch`'s rows are bit for bit the single-problem objective (elementwise numpy ops and row sums are).

The driver calls scipy's L-BFGS-B core (`scipy.optimize._lbfgsb.setulb`, scipy >= 1.15) as scipy's own
`_minimize_lbfgsb` does. That is not public API: `available()` checks, once per process, that the driver reproduces
minimize() on a test problem to the bit, and callers fall back to minimize() per problem when it does not (another
scipy), which gives the same numbers, only slower.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

# scipy.optimize.minimize's L-BFGS-B defaults, for the options a caller leaves out
DEFAULTS = dict(maxcor=10, ftol=2.2204460492503131e-09, gtol=1e-5, maxiter=15000, maxls=20, maxfun=15000)
FG, NEW_X = 3, 1                     # setulb's task codes: wants f and g at x; finished an iteration
STOP, MAXITER, MAXFUN = 5, 504, 502  # task[0] to stop, with the reason in task[1] (as scipy sets them)
CONVERGED = 4


def minimize_many(fun_batch: Callable, x0: np.ndarray, options: dict | None = None) -> dict:
    """Minimise K problems from x0 [K, n]. fun_batch(X [k, n], rows [k]) -> (f [k], g [k, n]) evaluates the problems
    `rows` (indices into x0) at X. Returns {"x": [K, n], "fun": [K], "nit": [K], "nfev": [K], "success": [K],
    "message": [K]}, each problem's as minimize(method="L-BFGS-B", jac=True, options=options) gives them."""
    from scipy.optimize import _lbfgsb
    from scipy.optimize._lbfgsb_py import status_messages, task_messages
    opt = {**DEFAULTS, **(options or {})}
    if unknown := set(opt) - set(DEFAULTS):
        raise ValueError(f"minimize_many: unknown L-BFGS-B options {sorted(unknown)}; use {sorted(DEFAULTS)}")
    x = np.array(x0, dtype=np.float64, copy=True)
    n_problems, n = x.shape
    m, factr, pgtol, maxls = opt["maxcor"], opt["ftol"] / np.finfo(float).eps, opt["gtol"], opt["maxls"]
    nbd, lower, upper = np.zeros(n, np.int32), np.zeros(n), np.zeros(n)        # unbounded
    wa = np.zeros((n_problems, 2 * m * n + 5 * n + 11 * m * m + 8 * m))
    iwa = np.zeros((n_problems, 3 * n), np.int32)
    task, ln_task, lsave = (np.zeros((n_problems, k), np.int32) for k in (2, 2, 4))
    isave, dsave = np.zeros((n_problems, 44), np.int32), np.zeros((n_problems, 29))
    nit, nfev = np.zeros(n_problems, int), np.ones(n_problems, int)
    rows = np.arange(n_problems)
    f, g = fun_batch(x, rows)                         # minimize() evaluates x0 before the first step, as here
    f, g = [float(v) for v in f], np.array(g, dtype=np.float64)
    at = x.copy()                                     # where each problem's f, g were evaluated (minimize's cache)
    # each problem's row views, made once: setulb updates them in place
    views = list(zip(x, g, wa, iwa, task, lsave, isave, dsave, ln_task))
    active = rows
    while len(active):
        for k in active.tolist():
            xk, gk, wak, iwak, tk, lk, ik, dk, lnk = views[k]
            _lbfgsb.setulb(m, xk, lower, upper, nbd, f[k], gk, factr, pgtol, wak, iwak, tk, lk, ik, dk, maxls, lnk)
        state = task[active, 0]
        stepped = active[state == NEW_X]
        nit[stepped] += 1
        over_iter = nit[stepped] >= opt["maxiter"]
        task[stepped[over_iter]] = STOP, MAXITER
        task[stepped[~over_iter & (nfev[stepped] > opt["maxfun"])]] = STOP, MAXFUN
        asks = active[state == FG]
        want = asks[(x[asks] != at[asks]).any(1)]     # minimize() re-evaluates only at a new point
        if len(want):
            fw, gw = fun_batch(x[want], want)
            for k, v in zip(want.tolist(), fw.tolist()):
                f[k] = v
            g[want] = gw
            at[want] = x[want]
            nfev[want] += 1
        active = active[(state == FG) | (state == NEW_X)]
    return {"x": x, "fun": np.array(f), "nit": nit, "nfev": nfev, "success": task[:, 0] == CONVERGED,
            "message": [f"{status_messages[a]}: {task_messages[b]}" for a, b in task.tolist()]}


@functools.cache
def available() -> bool:
    """Whether minimize_many reproduces scipy.optimize.minimize here, to the bit (checked once per process on a
    test problem: a skewed quadratic plus a quartic, two starts, tight tolerances)."""
    scale = np.array([1.0, 30.0, 0.2])

    def one(x):
        d = x - np.array([1.0, -2.0, 0.5])
        return float((scale * d * d).sum() + 0.1 * (d**4).sum()), 2 * scale * d + 0.4 * d**3

    def batch(X, rows):
        d = X - np.array([1.0, -2.0, 0.5])
        return (scale * d * d).sum(1) + 0.1 * (d**4).sum(1), 2 * scale * d + 0.4 * d**3

    x0 = np.array([[3.0, 4.0, -1.0], [-2.0, 0.0, 7.0]])
    options = dict(ftol=1e-15, gtol=1e-11, maxiter=200, maxcor=5)
    try:
        got = minimize_many(batch, x0, options)
    except (ImportError, AttributeError, TypeError, ValueError):    # no such core, or another signature
        return False
    for k, start in enumerate(x0):
        ref = minimize(one, start, jac=True, method="L-BFGS-B", options=options)
        if not (np.array_equal(ref.x, got["x"][k]) and ref.nit == got["nit"][k] and ref.nfev == got["nfev"][k]
                and ref.message == got["message"][k]):
            return False
    return True

"""IsoFLOP profiles in the shape the loss law gives them, fitted by variable projection.

On one budget's isoFLOP line, L(N, D) = E + A/N^alpha + B/D^beta is, for fixed exponents, linear in
three coefficients:

    L = e_g + a_g u + b_g v,    u = exp(-alpha (log N - mN_g)),  v = exp(-beta (log D - mD_g))

(mN_g, mD_g: the budget's mean log N, log D, which only rescale a_g, b_g and keep the features near 1).
So each budget gets its own (e_g, a_g, b_g), solved exactly by least squares, and the exponents are
shared by all budgets and searched (a 2-D profile: every candidate's sum of squared residuals after
the linear solve). This curve has the isoFLOP profile's asymmetry (steeper towards small N when
alpha > beta) that a parabola in log N lacks, so its minimum does not move with the width or the
centring of the grid of sizes (bench/isoflop_bias.py measures both).

With few sizes per budget (3 sizes and 3 coefficients fit any exponents exactly) the budgets' shapes are not
determined one by one: `shared=True` then ties a_g and b_g to one A and B for all budgets (the law's own
coefficients, each budget keeping its own offset e_g), so that the shape comes from every budget together:

    L = e_g + A exp(-alpha (log N - mN)) + B exp(-beta (log D - mD))      (mN, mD: means over all runs)

Its vertices are those of one L(N, D) with a loss offset per budget; e_g is eliminated by centring each
budget's moments, leaving a 2x2 solve per candidate (Profiles.sse).

`own_vertices=True` (with `shared`) is a two-stage fit between the two: the exponents are searched on the shared
model's SSE (pinned by every budget together), and each budget's vertex then comes from its own (e_g, a_g, b_g)
solved at those exponents. Where the budgets' shapes differ (no one L(N, D) fits them all) each vertex follows its
own budget's data, as per-budget shapes' do, while a narrow grid cannot send the exponents along the per-budget
SSE's flat valley (bench/README.md, "IsoFLOP: choosing the profile model by its vertices").

Everything is written for many weight vectors at once (rows of W: bootstrap multiplicities), so a
resample costs one [R, n] x [n, 10] product per budget and candidate: the weighted moments of
(1, u, v, y) from which the 3x3 normal equations and the residual sum of squares follow.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.stats import f as f_dist

# The exponents' search range: published alpha, beta lie in 0.2-0.8 (analysis/laws/common.py); the
# search is wider so that a narrow grid of sizes may trade them freely (its vertex stays put).
EXP_RANGE = (0.03, 3.0)
GLOBAL_GRID = 24                 # candidates per exponent for the full-data search (log-spaced)
PATTERN_ROUNDS = 60               # at most this many local 9 x 9 grids after it (fit_exponents)
BOOT_GRID = 11                   # per axis for each bootstrap resample, around the full-data optimum
BOOT_SPAN = np.log(3.0)          # that local grid spans at most the optimum / 3 .. x 3 along each axis
BOOT_SIGMAS = 4.0                # ... and at most this many standard errors
BOOT_PASSES = 3                  # grids per resample at most: re-centred where the best lies on the edge
POLISH_RESTARTS = 4              # L-BFGS-B runs after the pattern search at most (polish)
POLISH_STEP = 1e-6               # its central-difference step in log alpha, log beta
PROFILE_GRID = 41                # per axis for the profile region of the exponents (profile_region)
RIDGE = 1e-13                    # relative ridge on the normal equations (alpha -> 0 makes u collinear with 1)


def features(logN, logD, mN, mD, alpha, beta):
    """u, v [P, n] for candidate exponents alpha, beta [P] (or scalars: [n])."""
    alpha, beta = np.asarray(alpha, float)[..., None], np.asarray(beta, float)[..., None]
    return np.exp(-alpha * (logN - mN)), np.exp(-beta * (logD - mD))


def moments(u, v, y, W: np.ndarray) -> np.ndarray:
    """[P, R, 10] weighted sums of 1, u, v, uu, uv, vv, y, uy, vy, yy for features u, v [P, n] and
    weight rows W [R, n]: one matrix product for all candidates and resamples."""
    if W.shape[0] == 1:        # one weight row (full-data fits, the profile region): matrix-vector products suffice
        w = W[0]
        wy = w * y
        P = u.shape[0]
        cols = [np.full(P, w.sum()), u @ w, v @ w, (u * u) @ w, (u * v) @ w, (v * v) @ w, np.full(P, wy.sum()),
                u @ wy, v @ wy, np.full(P, (wy * y).sum())]
        return np.stack(cols, -1)[:, None, :]
    one, y = np.ones_like(u), np.broadcast_to(y, u.shape)
    F = np.stack([one, u, v, u * u, u * v, v * v, y, u * y, v * y, y * y], axis=-1)     # [P, n, 10]
    P, n = u.shape
    return (W @ F.transpose(1, 0, 2).reshape(n, P * 10)).reshape(-1, P, 10).transpose(1, 0, 2)


def solve(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (e, a, b) [..., 3] and residual sum of squares [...] from moments [..., 10]
    (the symmetric 3x3 normal equations by their adjugate: vectorised, no per-system LAPACK call)."""
    r = RIDGE * (M[..., 0] + M[..., 3] + M[..., 5])
    g00, g01, g02, g11, g12, g22 = M[..., 0] + r, M[..., 1], M[..., 2], M[..., 3] + r, M[..., 4], M[..., 5] + r
    b = M[..., 6:9]
    c00, c01, c02 = g11 * g22 - g12 * g12, g02 * g12 - g01 * g22, g01 * g12 - g02 * g11
    c11, c12, c22 = g00 * g22 - g02 * g02, g01 * g02 - g00 * g12, g00 * g11 - g01 * g01
    det = g00 * c00 + g01 * c01 + g02 * c02
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.stack([c00 * b[..., 0] + c01 * b[..., 1] + c02 * b[..., 2],
                          c01 * b[..., 0] + c11 * b[..., 1] + c12 * b[..., 2],
                          c02 * b[..., 0] + c12 * b[..., 1] + c22 * b[..., 2]], -1) / det[..., None]
    sse = M[..., 9] - (theta * b).sum(-1)            # at the solution of the normal equations
    return theta, np.where(np.isfinite(sse), np.maximum(sse, 0.0), np.inf)


class Profiles:
    """The budgets of one table: per budget its rows, centring and (weighted) isoFLOP line log D = s log N + t.
    shared: one (A, B) for all budgets instead of (a_g, b_g) each; own_vertices (with shared): the shared model's SSE
    but each budget's own coefficients at the exponents (module docstring)."""

    def __init__(self, logN, logD, loss, group_ids, shared: bool = False, own_vertices: bool = False):
        if own_vertices and not shared:
            raise ValueError("Profiles: own_vertices=True needs shared=True (the exponents come from the shared SSE)")
        self.logN, self.logD = np.asarray(logN, float), np.asarray(logD, float)
        self.loss = np.asarray(loss, float)
        self.idx = [np.flatnonzero(group_ids == g) for g in np.unique(group_ids)]
        self.mN = np.array([self.logN[i].mean() for i in self.idx])
        self.mD = np.array([self.logD[i].mean() for i in self.idx])
        self.ym = np.array([self.loss[i].mean() for i in self.idx])      # centring y keeps the SSE accurate
        self.shared, self.own_vertices = shared, own_vertices
        # the rows budget by budget, for the moments of all budgets at once (one_row_moments)
        self._order = np.concatenate(self.idx)
        self._gid = np.repeat(np.arange(len(self.idx)), [len(i) for i in self.idx])
        self._starts = np.concatenate([[0], np.cumsum([len(i) for i in self.idx])[:-1]])

    @property
    def n_linear(self) -> int:
        """Coefficients solved exactly: (e, a, b) per budget, or e per budget and one (A, B)."""
        return len(self.idx) + 2 if self.shared else 3 * len(self.idx)

    def sse(self, alpha, beta, Ws: list[np.ndarray], coef: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """For candidate exponents alpha, beta [P] and weights Ws[g] [R, n_g] (budget g's rows): the SSE
        summed over budgets [P, R] and the coefficients [P, R, G, 3] (per budget, in its own centring; with
        coef=False not computed where they cost extra, None: own vertices' second solve, the shared curve's stack)."""
        alpha, beta = np.atleast_1d(alpha), np.atleast_1d(beta)
        if not self.shared:
            return self._sse_own(alpha, beta, Ws)
        sse, theta = self._sse_shared(alpha, beta, Ws, coef and not self.own_vertices)
        if not coef:
            return sse, None
        return (sse, self._sse_own(alpha, beta, Ws)[1]) if self.own_vertices else (sse, theta)

    def one_row_moments(self, alpha, beta, Ws, mN, mD) -> np.ndarray | None:
        """[P, 1, G, 10] weighted moments (moments()) of every budget at once, features centred on mN, mD [G], where
        each budget has one weight row (full-data fits: the exponent search, its polish, the profile region): one
        np.add.reduceat pass instead of a loop over budgets, whose per-call overhead made the search on 30 budgets of
        20 sizes take seconds (bench/README.md, "More public isoFLOP tables"). None with several rows (resamples:
        the loop's matrix products are the cheaper way there)."""
        if not all(W.shape[0] == 1 for W in Ws):
            return None
        o, g = self._order, self._gid
        u, v = features(self.logN[o], self.logD[o], mN[g], mD[g], alpha, beta)      # [P, n]
        w = np.concatenate([W[0] for W in Ws])
        y = self.loss[o] - self.ym[g]
        wy = w * y
        cols = (w, u * w, v * w, u * u * w, u * v * w, v * v * w, wy, u * wy, v * wy, wy * y)
        return np.stack([np.add.reduceat(np.broadcast_to(c, u.shape), self._starts, axis=1) for c in cols], -1)[:, None]

    def _sse_own(self, alpha, beta, Ws):
        M = self.one_row_moments(alpha, beta, Ws, self.mN, self.mD)
        if M is not None:
            theta, s = solve(M)                                             # [P, 1, G, 3], [P, 1, G]
            return s.sum(-1), theta
        thetas, total = [], 0.0
        for g, i in enumerate(self.idx):
            u, v = features(self.logN[i], self.logD[i], self.mN[g], self.mD[g], alpha, beta)
            th, s = solve(moments(u, v, self.loss[i] - self.ym[g], Ws[g]))
            thetas.append(th)
            total = total + s
        return total, np.stack(thetas, axis=2)

    def _sse_shared(self, alpha, beta, Ws, coef: bool = True):
        """sse() with one (A, B): each budget's weighted moments centred on its own means (which eliminates e_g),
        summed over budgets, give a 2x2 system per candidate and resample."""
        mN, mD = self.logN.mean(), self.logD.mean()
        M_all = self.one_row_moments(alpha, beta, Ws, np.full(len(self.idx), mN), np.full(len(self.idx), mD))
        Ms, S = [], 0.0
        for g, i in enumerate(self.idx):
            if M_all is None:
                u, v = features(self.logN[i], self.logD[i], mN, mD, alpha, beta)
                M = moments(u, v, self.loss[i] - self.ym[g], Ws[g])                   # [P, R, 10]
            else:
                M = M_all[:, :, g]
            w0 = np.where(M[..., 0] > 0, M[..., 0], np.inf)
            m1 = M[..., 1:3] / w0[..., None], M[..., 6] / w0                    # weighted means of (u, v), y
            Ms.append(m1)
            c = np.stack([M[..., 3] - M[..., 1] * m1[0][..., 0], M[..., 4] - M[..., 1] * m1[0][..., 1],
                          M[..., 5] - M[..., 2] * m1[0][..., 1], M[..., 7] - M[..., 1] * m1[1],
                          M[..., 8] - M[..., 2] * m1[1], M[..., 9] - M[..., 6] * m1[1]], -1)
            S = S + c                     # within-budget sums of squares: uu, uv, vv, uy, vy, yy
        r = RIDGE * (S[..., 0] + S[..., 2])
        suu, suv, svv = S[..., 0] + r, S[..., 1], S[..., 2] + r
        det = suu * svv - suv * suv
        with np.errstate(divide="ignore", invalid="ignore"):
            A = (svv * S[..., 3] - suv * S[..., 4]) / det
            B = (suu * S[..., 4] - suv * S[..., 3]) / det
        sse = S[..., 5] - A * S[..., 3] - B * S[..., 4]
        sse = np.where(np.isfinite(sse), np.maximum(sse, 0.0), np.inf)
        if not coef:
            return sse, None
        al, be = alpha[:, None], beta[:, None]
        thetas = []
        for g, (mu, my) in enumerate(Ms):
            e = my - A * mu[..., 0] - B * mu[..., 1]
            # the same curve in budget g's own centring (vertex() and curve() use it)
            thetas.append(np.stack([e, A * np.exp(-al * (self.mN[g] - mN)), B * np.exp(-be * (self.mD[g] - mD))], -1))
        return sse, np.stack(thetas, axis=2)

    def lines(self, Ws: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Weighted least-squares slope s and intercept t of log D on log N per budget: [R, G] each."""
        s, t = [], []
        for g, i in enumerate(self.idx):
            x, z, W = self.logN[i], self.logD[i], Ws[g]
            w0, wx, wz, wxx, wxz = (W @ f for f in (np.ones_like(x), x, z, x * x, x * z))
            var = wxx * w0 - wx * wx
            slope = np.where(var > 0, (wxz * w0 - wx * wz) / np.where(var > 0, var, 1), np.nan)
            s.append(slope)
            t.append((wz - slope * wx) / w0)
        return np.stack(s, 1), np.stack(t, 1)

    def vertex(self, theta, alpha, beta, s, t):
        """log N at the minimum of e + a u + b v along log D = s log N + t; nan where there is none
        (a or b not positive, or the line not falling). theta [..., G, 3]; alpha, beta [...]; s, t [..., G]."""
        a, b = theta[..., 1], theta[..., 2]
        alpha, beta = np.asarray(alpha, float)[..., None], np.asarray(beta, float)[..., None]
        ok = (a > 0) & (b > 0) & (s < 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # d/dx [a e^{-alpha (x - mN)} + b e^{-beta (s x + t - mD)}] = 0, solved for x = log N
            num = (np.log(beta * -s * b) - np.log(alpha * a) - beta * (t - self.mD) - alpha * self.mN)
            x = num / (beta * s - alpha)
        return np.where(ok, x, np.nan)

    def curve(self, g: int, theta_g, alpha, beta, s_g, t_g, logN):
        """The fitted profile of budget g along its isoFLOP line, at log N values (for plots)."""
        logN = np.asarray(logN, float)
        u, v = np.exp(-alpha * (logN - self.mN[g])), np.exp(-beta * (s_g * logN + t_g - self.mD[g]))
        return self.ym[g] + theta_g[0] + theta_g[1] * u + theta_g[2] * v


def _full_weights(p: Profiles) -> list[np.ndarray]:
    return [np.ones((1, len(i))) for i in p.idx]


def fit_exponents(p: Profiles, Ws: list[np.ndarray] | None = None) -> tuple[float, float]:
    """The shared (alpha, beta) minimising the summed SSE: the best of a log-spaced grid, then a pattern search
    of 9 x 9 local grids (in log alpha, log beta) that follows the best point while it lies on the local grid's
    edge and shrinks fourfold when it is inside. The minimum lies in a narrow curved valley along which alpha and
    beta trade off: a simplex crawls along it and a single refinement of a coarse grid can miss it."""
    Ws = Ws or _full_weights(p)
    lo, hi = np.log(EXP_RANGE)
    za = zb = np.linspace(lo, hi, GLOBAL_GRID)
    step = za[1] - za[0]
    for _ in range(PATTERN_ROUNDS):
        A, B = (x.ravel() for x in np.meshgrid(za, zb, indexing="ij"))
        k = int(np.argmin(p.sse(np.exp(A), np.exp(B), Ws)[0][:, 0]))
        i, j = np.unravel_index(k, (len(za), len(zb)))
        edge = lambda n, z, m: m in (0, n - 1) and not np.isclose(z[m], lo) and not np.isclose(z[m], hi)  # noqa: E731
        inside = not edge(len(za), za, i) and not edge(len(zb), zb, j)      # (the search range's bound counts)
        if step < 1e-4 and inside:
            break
        step = step / 4 if inside or len(za) == GLOBAL_GRID else step
        offs = np.arange(-4, 5) * step
        za, zb = np.unique(np.clip(A[k] + offs, lo, hi)), np.unique(np.clip(B[k] + offs, lo, hi))
    return polish(p, Ws, A[k], B[k])


def polish(p: Profiles, Ws: list[np.ndarray], za: float, zb: float) -> tuple[float, float]:
    """L-BFGS-B on (log alpha, log beta) from the pattern search's best point: where the valley's floor is nearly
    flat along its length the pattern search's shrinking grids stop short of the bottom (measured: alpha 0.350 for
    0.340 noise-free on a lopsided grid, SSE 6e-9 where the truth's is 2e-14); the quasi-Newton steps follow it."""
    lo, hi = np.log(EXP_RANGE)
    z = np.array([za, zb])
    f = float(p.sse(np.exp(za), np.exp(zb), Ws)[0][0, 0])
    steps = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]]) * POLISH_STEP

    def value_and_gradient(x, c):             # central differences: the 5 candidates in one sse() call
        v = p.sse(np.exp(x[0] + steps[:, 0]), np.exp(x[1] + steps[:, 1]), Ws)[0][:, 0] / c
        return v[0], np.array([v[1] - v[2], v[3] - v[4]]) / (2 * POLISH_STEP)

    for _ in range(POLISH_RESTARTS):          # each restart rescales the objective to its current value
        scale = max(f, 1e-300)
        res = minimize(value_and_gradient, z, args=(scale,), jac=True, method="L-BFGS-B",
                       bounds=[(lo, hi), (lo, hi)], options=dict(ftol=1e-15, gtol=1e-10, maxiter=200))
        if not (np.isfinite(res.fun) and res.fun < 1.0 - 1e-9):
            break
        z, f = res.x, res.fun * scale
    return float(np.exp(z[0])), float(np.exp(z[1]))


def fit(p: Profiles) -> dict:
    """Full-data fit: exponents, per-budget coefficients, lines and vertices (log N, log D, loss) [G]."""
    Ws = _full_weights(p)
    alpha, beta = fit_exponents(p, Ws)
    sse, theta = p.sse(alpha, beta, Ws)
    theta = theta[0, 0]
    s, t = (x[0] for x in p.lines(Ws))
    x = p.vertex(theta, alpha, beta, s, t)
    loss = np.array([p.curve(g, theta[g], alpha, beta, s[g], t[g], xg) if np.isfinite(xg) else np.nan
                     for g, xg in enumerate(x)])
    return {"alpha": alpha, "beta": beta, "theta": theta, "s": s, "t": t, "logN_opt": x,
            "logD_opt": s * x + t, "loss_opt": loss, "sse": float(sse[0, 0])}


def local_axes(p: Profiles, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap's search directions and half-widths in (log alpha, log beta): the principal axes of the
    full-data SSE's curvature (the valley is narrow across and long along), each spanning BOOT_SIGMAS standard
    errors (s^2 = SSE / residual degrees of freedom; SE_i = sqrt(2 s^2 / lambda_i)), capped at BOOT_SPAN.
    A square grid in alpha and beta would put most candidates on the valley's walls."""
    Ws = _full_weights(p)
    h = 0.02
    za, zb = np.log(alpha), np.log(beta)
    d = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], float) * h
    f = p.sse(np.exp(za + d[:, 0]), np.exp(zb + d[:, 1]), Ws)[0][:, 0].reshape(3, 3)
    H = np.array([[f[2, 1] - 2 * f[1, 1] + f[0, 1], (f[2, 2] - f[2, 0] - f[0, 2] + f[0, 0]) / 4],
                  [0.0, f[1, 2] - 2 * f[1, 1] + f[1, 0]]]) / h ** 2
    H[1, 0] = H[0, 1]
    lam, vec = np.linalg.eigh(H)
    dof = max(1, sum(len(i) for i in p.idx) - p.n_linear - 2)
    s2 = max(f[1, 1], 1e-300) / dof
    se = np.sqrt(2 * s2 / np.maximum(lam, 1e-300))
    return vec, np.clip(BOOT_SIGMAS * se, 1e-3, BOOT_SPAN)


def grid_at(za: float, zb: float, vec: np.ndarray, span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BOOT_GRID x BOOT_GRID exponents centred on (log alpha, log beta) = (za, zb) along the axes `vec`."""
    t = np.linspace(-1, 1, BOOT_GRID)
    T1, T2 = (x.ravel() for x in np.meshgrid(t * span[0], t * span[1], indexing="ij"))
    lo, hi = np.log(EXP_RANGE)
    return (np.exp(np.clip(za + T1 * vec[0, 0] + T2 * vec[0, 1], lo, hi)),
            np.exp(np.clip(zb + T1 * vec[1, 0] + T2 * vec[1, 1], lo, hi)))


def _on_edge(k: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Best candidates k on their grid's edge, other than where the edge is the search range's bound."""
    i, j = np.unravel_index(k, (BOOT_GRID, BOOT_GRID))
    lo, hi = EXP_RANGE
    at_bound = np.isclose(A[k], lo) | np.isclose(A[k], hi) | np.isclose(B[k], lo) | np.isclose(B[k], hi)
    return (np.isin(i, (0, BOOT_GRID - 1)) | np.isin(j, (0, BOOT_GRID - 1))) & ~at_bound


def bootstrap_vertices(p: Profiles, Ws: list[np.ndarray], alpha: float, beta: float) -> tuple[np.ndarray, ...]:
    """Per resample (rows of Ws[g]): the exponents re-searched on a local grid (grid_at, local_axes) around the
    full-data (alpha, beta), re-centred up to BOOT_PASSES - 1 times for resamples whose best lies on its edge;
    then each budget's vertex. Returns log N_opt, log D_opt [R, G] and the fraction of resamples still on an
    edge after the last pass (where a wider search might have gone further)."""
    vec, span = local_axes(p, alpha, beta)
    A, B = grid_at(np.log(alpha), np.log(beta), vec, span)
    # the search compares SSEs only; the coefficients are solved once, at each resample's best exponents (every
    # candidate's cost 7 s of 1000 resamples of the own-vertices model on 22 budgets: bench/README.md, "More public
    # isoFLOP tables")
    sse, _ = p.sse(A, B, Ws, coef=False)                  # [P, R]
    R = sse.shape[1]
    k = np.argmin(sse, axis=0)                            # best candidate per resample
    best = sse[k, np.arange(R)]
    a_best, b_best = A[k], B[k]
    edge = _on_edge(k, A, B)
    for _ in range(BOOT_PASSES - 1):
        if not edge.any():
            break
        centres, group = np.unique(np.stack([a_best[edge], b_best[edge]], 1), axis=0, return_inverse=True)
        rows_on_edge = np.flatnonzero(edge)
        for c, (ca, cb) in enumerate(centres):
            rows = rows_on_edge[group.ravel() == c]
            A2, B2 = grid_at(np.log(ca), np.log(cb), vec, span)
            s2, _ = p.sse(A2, B2, [W[rows] for W in Ws], coef=False)
            k2 = np.argmin(s2, axis=0)
            cols = np.arange(len(rows))
            better = s2[k2, cols] < best[rows]
            r = rows[better]
            best[r] = s2[k2, cols][better]
            a_best[r], b_best[r] = A2[k2][better], B2[k2][better]
            edge[rows] = better & _on_edge(k2, A2, B2)
    theta = np.empty((R, len(p.idx), 3))
    pairs, which = np.unique(np.stack([a_best, b_best], 1), axis=0, return_inverse=True)
    for c, (ca, cb) in enumerate(pairs):
        rows = np.flatnonzero(which.ravel() == c)
        theta[rows] = p.sse(np.array([ca]), np.array([cb]), [W[rows] for W in Ws])[1][0]
    s, t = p.lines(Ws)
    # a resample that keeps one size of a budget has no line of its own: the budget's isoFLOP line is the design's
    s_full, t_full = (z[0] for z in p.lines(_full_weights(p)))
    s, t = np.where(np.isfinite(s), s, s_full), np.where(np.isfinite(t), t, t_full)
    x = p.vertex(theta, a_best, b_best, s, t)
    return x, s * x + t, float(edge.mean())


def profile_region(p: Profiles, alpha: float, beta: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The vertices (log N, log D [P, G]) of every exponent pair (alpha, beta) on a PROFILE_GRID x PROFILE_GRID grid
    along the SSE's principal axes (local_axes) whose SSE, the per-budget coefficients solved exactly, lies within
    the F test's bound of the best: SSE <= SSE_min (1 + F(level; 1, dof) / dof), dof the residual degrees of freedom.
    A statistic of the exponents ranges over this region exactly as over its profile-likelihood interval at `level`
    (the region's projection onto the statistic is that interval, Bates and Watts 1988, 6.1); the grid's span
    doubles, up to three times, while the region touches its edge."""
    Ws = _full_weights(p)
    vec, span = local_axes(p, alpha, beta)
    sse0 = float(p.sse(alpha, beta, Ws)[0][0, 0])
    dof = max(1, sum(len(i) for i in p.idx) - p.n_linear - 2)
    bound = sse0 * (1 + f_dist.ppf(level, 1, dof) / dof)
    lo, hi = np.log(EXP_RANGE)
    g = np.linspace(-1, 1, PROFILE_GRID)
    for _ in range(4):
        T1, T2 = (x.ravel() for x in np.meshgrid(g * span[0], g * span[1], indexing="ij"))
        A = np.exp(np.clip(np.log(alpha) + T1 * vec[0, 0] + T2 * vec[0, 1], lo, hi))
        B = np.exp(np.clip(np.log(beta) + T1 * vec[1, 0] + T2 * vec[1, 1], lo, hi))
        sse, theta = p.sse(A, B, Ws)
        inside = sse[:, 0] <= bound
        ring = (np.abs(T1) >= span[0] * (1 - 1e-9)) | (np.abs(T2) >= span[1] * (1 - 1e-9))
        if not (inside & ring).any():
            break
        span = span * 2
    s, t = (x[0] for x in p.lines(Ws))
    x = p.vertex(theta[inside, 0], A[inside], B[inside], s, t)
    return x, s * x + t


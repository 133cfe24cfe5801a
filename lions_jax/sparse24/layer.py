r"""Layer-wise 2:4 pruning: the matrix prox pruner, SparseGPT, Wanda, magnitude, masked refinement.

One linear layer :math:`y = x W` with a Flax kernel :math:`\bar W \in \mathbb{R}^{d_{in}\times
d_{out}}` and calibration inputs :math:`X \in \mathbb{R}^{N \times d_{in}}` is pruned to a 2:4
(generally N:M) pattern along the input axis by minimising the local reconstruction loss

.. math:: f(W) = \operatorname{tr}\big((W - \bar W)^\top H (W - \bar W)\big), \qquad
          H = X^\top X / N,

whose gradient is :math:`2H(W - \bar W)` and smoothness constant :math:`L = 2\lambda_{max}(H)`.
Output columns are independent problems sharing one :math:`H`; everything here works from
:math:`H` (:func:`hessian` from inputs, or accumulated by the caller over streaming batches).

Methods (``prune_layer(method=...)``):

* ``"prox"`` — Kübler et al.'s matrix prox pruner (Algorithm 2 of arXiv 2501.18015, schedule
  reconstructed; see :class:`ProxSchedule`): proximal gradient
  :math:`W \leftarrow \mathrm{prox}_{t_k r}(W - \tfrac1L \nabla f(W))` with the exact 2:4 prox
  (:func:`~lions_jax.sparse24.prox_24`) and a geometrically growing threshold :math:`t_k`, from the
  dense weights until every group has at most two non-zeros; groups still denser after
  ``max_iters`` keep their two largest magnitudes. Optionally in feature-normalised coordinates
  :math:`\tilde W = D^{1/2} W`, :math:`\tilde H = D^{-1/2} H D^{-1/2}` with :math:`D = \mathrm{diag}(H)`
  (same loss; the prox then acts on weights measured in units of their input's scale).
* ``"sparsegpt"`` — SparseGPT (Frantar & Alistarh, 2023): damped :math:`H`, dead inputs zeroed,
  upper Cholesky factor :math:`U` of :math:`H^{-1}`, columns swept in blocks with the N:M choice
  by :math:`w^2 / U_{jj}^2` at the start of each group and the OBS update, lazy between blocks.
  If the Cholesky factorisation fails the damping grows ×10 (up to four times), then :math:`U = I`
  (magnitude pruning without updates), reported in :class:`PruneInfo`.
* ``"wanda"`` — scores :math:`|W_{jk}|\,\|X_{:,j}\|` (i.e. :math:`|W_{jk}|\sqrt{H_{jj}}`), no update.
* ``"magnitude"`` — scores :math:`|W_{jk}|`, no update.

Refinement (any method): with the mask fixed, minimise :math:`f` over the kept weights by masked
gradient descent with step :math:`1/L` (the paper's "masked gradient updates"; monotone) or by
conjugate gradients (``refine="cg"``, also monotone, and exact after at most
:math:`d_{in}\,n/m` steps in exact arithmetic). :func:`masked_lstsq` is the exact optimum on the
mask, per column, for tests and small layers.

Layout: ``w`` is a Flax kernel ``(d_in, d_out)`` and groups run along axis 0; a PyTorch-layout
``(d_out, d_in)`` weight passes ``axis=-1`` (or ``1``). ``x`` is ``(N, d_in)`` either way.
"""

import dataclasses
import functools
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool, Float

from lions_jax._src.typing import AnyArray as Array
from lions_jax.sparse24.core import _check_nm, _lanes, _unlanes, nm_mask, prox_24_lanes

__all__ = [
    "METHODS",
    "ProxSchedule",
    "PruneInfo",
    "hessian",
    "lipschitz",
    "magnitude_scores",
    "masked_cg",
    "masked_gd",
    "masked_lstsq",
    "prox_prune",
    "prune_layer",
    "reconstruction_error",
    "sparsegpt_prune",
    "wanda_scores",
]

METHODS = ("prox", "sparsegpt", "wanda", "magnitude")
Refine = Literal["gd", "cg"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProxSchedule:
    r"""The annealed threshold of the matrix prox pruner (hashable: a static argument).

    The prox threshold at iteration :math:`k` is :math:`t_k = \tau_0 \gamma^k / s^2`, where
    :math:`s` is the root-mean-square of the dense weights in the working coordinates, so that
    :math:`\tau` is dimensionless (the regulariser is cubic in the weights: shrinkage
    :math:`t\,|w_j w_l|` relative to :math:`|w_i|` scales with :math:`t s^2`). In the paper's
    notation :math:`t_k = \eta \lambda_k` with :math:`\eta = 1/L`.

    The paper's schedule (start, growth, steps per value, stopping rule) is not public; this one is
    reconstructed (spec §2.4): growth per iteration, stop when every group is 2:4. Slower growth
    gives better masks at proportionally more iterations (each costs one ``d_in``-by-``d_in``
    times ``d_in``-by-``d_out`` matmul and one prox).

    Attributes:
      tau0: initial dimensionless threshold.
      growth: factor per iteration (> 1).
      max_iters: iteration cap; groups not yet 2:4 then keep their two largest magnitudes.
      num_sweeps: coordinate sweeps per prox evaluation (early exit at working precision).
      normalize_features: iterate in feature-normalised coordinates (see the module docstring).
    """

    tau0: float = 1e-3
    growth: float = 1.01
    max_iters: int = 3000
    num_sweeps: int = 30
    normalize_features: bool = False

    def __post_init__(self) -> None:
        if not self.tau0 > 0:
            raise ValueError(f"tau0: expected > 0, got {self.tau0}")
        if not self.growth > 1:
            raise ValueError(f"growth: expected > 1, got {self.growth}")
        if self.max_iters < 1 or self.num_sweeps < 1:
            raise ValueError(
                f"max_iters and num_sweeps: expected >= 1, got {self.max_iters}, {self.num_sweeps}"
            )


class PruneInfo(NamedTuple):
    """Diagnostics of :func:`prune_layer` (a pytree of scalars).

    Attributes:
      rel_error_mask: :math:`f(W)/f(0)` of the method's own weights, before refinement.
      rel_error: :math:`f(W)/f(0)` of the returned weights.
      iterations: prox iterations run (0 for other methods).
      converged: the prox loop reached a 2:4 pattern by itself (True for other methods).
      damping: SparseGPT's final damping as a fraction of mean(diag H) (0 for other methods).
      fallback: SparseGPT's Cholesky fell back to the identity (False for other methods).
    """

    rel_error_mask: jax.Array
    rel_error: jax.Array
    iterations: jax.Array
    converged: jax.Array
    damping: jax.Array
    fallback: jax.Array


# ============================================================================================
# Small pure pieces
# ============================================================================================
def _work_dtype(*xs: Any) -> Any:
    return jnp.promote_types(jnp.result_type(*xs), jnp.float32)


def _check_layer(w: Any, h: Any, *others: tuple[str, Any]) -> None:
    """Static shape checks shared by the pure layer functions (ValueError naming the argument)."""
    if jnp.ndim(w) != 2:
        raise ValueError(f"w: expected a 2-D (d_in, d_out) kernel, got shape {jnp.shape(w)}")
    d_in = jnp.shape(w)[0]
    if jnp.shape(h) != (d_in, d_in):
        raise ValueError(
            f"h: expected shape ({d_in}, {d_in}) for w of shape {jnp.shape(w)}, got {jnp.shape(h)}"
        )
    for name, a in others:
        if jnp.shape(a) != jnp.shape(w):
            raise ValueError(
                f"{name}: expected shape {jnp.shape(w)} (that of w), got {jnp.shape(a)}"
            )


def hessian(x: Float[Array, "tokens d_in"]) -> Float[Array, "d_in d_in"]:
    r""":math:`H = X^\top X / N` in float32 (float64 for float64 input).

    For streaming calibration, sum ``x.T @ x`` over batches and divide by the token count.
    """
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x: expected (tokens, d_in) with tokens >= 1, got shape {x.shape}")
    x = x.astype(_work_dtype(x.dtype))
    return (x.T @ x) / x.shape[0]


def lipschitz(h: Float[Array, "d d"], *, iters: int = 64) -> jax.Array:
    r"""An estimate of :math:`L = 2\lambda_{max}(H)` by power iteration (no LAPACK: vmap-safe).

    The Rayleigh quotient converges to :math:`\lambda_{max}` from below; the estimate is inflated
    by 1% so the step :math:`1/L` stays on the safe side (gradient descent on the quadratic is
    stable for steps up to :math:`2/L`).
    """
    v = jnp.ones(h.shape[0], h.dtype) / np.sqrt(h.shape[0])

    def body(_, v):
        u = h @ v
        return u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(h.dtype).tiny)

    v = jax.lax.fori_loop(0, iters, body, v)
    lam = jnp.maximum(v @ (h @ v), jnp.finfo(h.dtype).tiny)
    return 2.0 * 1.01 * lam


def reconstruction_error(
    w: Float[Array, "d_in d_out"], w_dense: Float[Array, "d_in d_out"], h: Float[Array, "d_in d_in"]
) -> jax.Array:
    r"""Relative local loss :math:`f(W)/f(0) = \mathrm{tr}(\Delta^\top H \Delta) / \mathrm{tr}(\bar W^\top H \bar W)`."""
    _check_layer(w, h, ("w_dense", w_dense))
    d = w - w_dense
    num = jnp.sum(d * (h @ d))
    den = jnp.sum(w_dense * (h @ w_dense))
    return num / jnp.maximum(den, jnp.finfo(den.dtype).tiny)


def magnitude_scores(w: Float[Array, "d_in d_out"]) -> Float[Array, "d_in d_out"]:
    """``|w|``: magnitude pruning's scores."""
    return jnp.abs(w)


def wanda_scores(
    w: Float[Array, "d_in d_out"], h: Float[Array, "d_in d_in"]
) -> Float[Array, "d_in d_out"]:
    r"""Wanda's scores :math:`|W_{jk}|\,\|X_{:,j}\|_2` (up to the constant :math:`\sqrt N`), from :math:`H`."""
    _check_layer(w, h)
    return jnp.abs(w) * jnp.sqrt(jnp.maximum(jnp.diagonal(h), 0.0))[:, None]


def masked_gd(
    w: Float[Array, "d_in d_out"],
    mask: Bool[Array, "d_in d_out"],
    w_dense: Float[Array, "d_in d_out"],
    h: Float[Array, "d_in d_in"],
    steps: int,
    *,
    lip: jax.Array | None = None,
) -> Float[Array, "d_in d_out"]:
    r"""``steps`` of :math:`W \leftarrow W - \tfrac1L M \odot 2H(W - \bar W)` from ``w * mask``.

    Monotone: with step :math:`1/L` each step decreases :math:`f` (or leaves it unchanged).
    """
    _check_layer(w, h, ("mask", mask), ("w_dense", w_dense))
    lip = lipschitz(h) if lip is None else lip
    m = mask.astype(w.dtype)
    hw = h @ w_dense

    def body(_, w):
        return w - (m * (2.0 * (h @ w - hw))) / lip

    return jax.lax.fori_loop(0, steps, body, w * m)


def masked_cg(
    w: Float[Array, "d_in d_out"],
    mask: Bool[Array, "d_in d_out"],
    w_dense: Float[Array, "d_in d_out"],
    h: Float[Array, "d_in d_in"],
    steps: int,
) -> Float[Array, "d_in d_out"]:
    r"""``steps`` of conjugate gradients on :math:`f` restricted to the mask, every column at once.

    Column :math:`k` solves :math:`P_k H P_k w = P_k H \bar w` (:math:`P_k` the column's mask)
    from ``w * mask``; CG decreases :math:`f` monotonically and, in exact arithmetic, reaches the
    masked least-squares solution in at most (kept entries per column) steps.
    """
    _check_layer(w, h, ("mask", mask), ("w_dense", w_dense))
    m = mask.astype(w.dtype)
    tiny = jnp.finfo(w.dtype).tiny

    def op(v):
        return m * (h @ (m * v))

    x = w * m
    r = m * (h @ w_dense) - op(x)
    p = r
    rr = jnp.sum(r * r, axis=0)

    def body(_, state):
        x, r, p, rr = state
        ap = op(p)
        pap = jnp.sum(p * ap, axis=0)
        alpha = jnp.where(pap > tiny, rr / jnp.maximum(pap, tiny), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = jnp.sum(r * r, axis=0)
        beta = jnp.where(rr > tiny, rr_new / jnp.maximum(rr, tiny), 0.0)
        return x, r, r + beta * p, rr_new

    x, *_ = jax.lax.fori_loop(0, steps, body, (x, r, p, rr))
    return x


def masked_lstsq(
    w_dense: Float[Array, "d_in d_out"],
    h: Float[Array, "d_in d_in"],
    mask: Bool[Array, "d_in d_out"],
) -> Float[Array, "d_in d_out"]:
    r"""The exact minimiser of :math:`f` on the mask: per column :math:`w_S = H_{SS}^{+} H_{S,:}\bar w`.

    One ``d_in``-sized linear solve per output column (:math:`H_{SS}` must be non-singular: damp
    :math:`H` otherwise): a test oracle and a tool for small layers, not for LLM-sized ones.
    """
    mask = jnp.asarray(mask)
    _check_layer(w_dense, h, ("mask", mask))

    def col(wd, mk):
        mf = mk.astype(h.dtype)
        a = mf[:, None] * h * mf[None, :] + jnp.diag(1.0 - mf)
        b = mf * (h @ wd)
        return mf * jnp.linalg.solve(a, b)

    return jax.vmap(col, in_axes=(1, 1), out_axes=1)(w_dense, mask)


# ============================================================================================
# The pruners (Flax layout: w (d_in, d_out), groups along axis 0)
# ============================================================================================
def prox_prune(
    w_dense: Float[Array, "d_in d_out"],
    h: Float[Array, "d_in d_in"],
    schedule: ProxSchedule = ProxSchedule(),
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Algorithm 2 (2:4 only): returns ``(w, mask, iterations, converged)``; see :class:`ProxSchedule`."""
    _check_layer(w_dense, h)
    dtype = w_dense.dtype
    if schedule.normalize_features:
        diag = jnp.diagonal(h)
        live = diag > 0
        d = jnp.where(live, jnp.sqrt(jnp.where(live, diag, 1.0)), 0.0)
        inv = jnp.where(live, 1.0 / jnp.where(live, d, 1.0), 0.0)
        h_w = inv[:, None] * h * inv[None, :] + jnp.diag(jnp.where(live, 0.0, 1.0))
        w0 = d[:, None] * w_dense
    else:
        h_w, w0 = h, w_dense
    lip = lipschitz(h_w)
    hw0 = h_w @ w0
    scale = jnp.maximum(jnp.mean(jnp.square(w0)), jnp.finfo(dtype).tiny)
    t0 = schedule.tau0 / scale
    tol = 8 * jnp.finfo(dtype).eps * jnp.max(jnp.abs(w0), initial=0.0)

    def is_24(w):
        nnz = sum((lane != 0).astype(jnp.int32) for lane in _lanes(w, 0))
        return jnp.all(nnz <= 2)

    def cond(state):
        k, _, done = state
        return (k < schedule.max_iters) & ~done

    def body(state):
        k, w, _ = state
        z = w - (2.0 / lip) * (h_w @ w - hw0)
        t = (t0 * jnp.asarray(schedule.growth, dtype) ** k).astype(dtype)
        lanes = prox_24_lanes(_lanes(z, 0), t, num_sweeps=schedule.num_sweeps, tol=tol)
        w = _unlanes(lanes, 0, z.shape)
        return k + 1, w, is_24(w)

    k, w, done = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), w0, jnp.array(False)))
    mask = nm_mask(jnp.abs(w), 2, 4, axis=0)
    w = jnp.where(mask, w, 0.0)
    if schedule.normalize_features:
        w = inv[:, None] * w
    return w, mask, k, done


def _upper_cholesky_of_inverse(h: jax.Array, damp: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Upper ``U`` with ``H_damped^{-1} = U^T U``; damping ×10 on failure (4 tries), then ``I``."""
    n = h.shape[0]
    mean_diag = jnp.mean(jnp.diagonal(h))
    eye = jnp.eye(n, dtype=h.dtype)

    def factor(frac):
        hd = h + frac * mean_diag * eye
        low = jnp.linalg.cholesky(hd)
        hinv = jax.scipy.linalg.cho_solve((low, True), eye)
        u = jnp.linalg.cholesky(hinv, upper=True)
        return u, jnp.all(jnp.isfinite(u))

    def cond(state):
        i, _, _, ok = state
        return (i < 5) & ~ok

    def body(state):
        i, frac, _, _ = state
        frac = jnp.where(i == 0, frac, frac * 10.0)
        u, ok = factor(frac)
        return i + 1, frac, u, ok

    init = (jnp.zeros((), jnp.int32), jnp.asarray(damp, h.dtype), eye, jnp.array(False))
    _, frac, u, ok = jax.lax.while_loop(cond, body, init)
    return jnp.where(ok, u, eye), frac, ~ok


def sparsegpt_prune(
    w_dense: Float[Array, "d_in d_out"],
    h: Float[Array, "d_in d_in"],
    *,
    n: int = 2,
    m: int = 4,
    damp: float = 0.01,
    block_size: int = 128,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """SparseGPT with N:M masks: returns ``(w, mask, damping, fallback)``; see the module docstring."""
    _check_layer(w_dense, h)
    _check_nm(w_dense.shape, 0, n, m, "w_dense")
    d_in, _ = w_dense.shape
    dead = jnp.diagonal(h) == 0
    h = h + jnp.diag(dead.astype(h.dtype))
    w = jnp.where(dead[:, None], 0.0, w_dense)
    u, frac, fallback = _upper_cholesky_of_inverse(h, damp)
    bs = min(block_size, d_in)
    pad = -d_in % bs
    if pad:  # decoupled padding features (identity rows of U, zero weights) make blocks uniform
        u = jnp.pad(u, ((0, pad), (0, pad))) + jnp.diag(
            jnp.concatenate([jnp.zeros(d_in, u.dtype), jnp.ones(pad, u.dtype)])
        )
        w = jnp.pad(w, ((0, pad), (0, 0)))
    total = d_in + pad
    cols = jnp.arange(total)

    def group_step(i1, g, carry):
        w1, err1, mask1, u1 = carry
        j0 = g * m
        diag = jax.lax.dynamic_slice_in_dim(jnp.diagonal(u1), j0, m)
        cur = jax.lax.dynamic_slice_in_dim(w1, j0, m, axis=0)
        keep = nm_mask(jnp.square(cur) / jnp.square(diag)[:, None], n, m, axis=0)
        mask1 = jax.lax.dynamic_update_slice_in_dim(mask1, keep, j0, axis=0)
        for c in range(m):
            j = j0 + c
            wj = w1[j]
            q = jnp.where(keep[c], wj, 0.0)
            e = (wj - q) / u1[j, j]
            w1 = w1 - u1[j][:, None] * e[None, :]  # u1 is upper: rows < j are untouched
            err1 = err1.at[j].set(e)
        return w1, err1, mask1, u1

    def block_step(b, state):
        w, mask = state
        i1 = b * bs
        w1 = jax.lax.dynamic_slice_in_dim(w, i1, bs, axis=0)
        u1 = jax.lax.dynamic_slice(u, (i1, i1), (bs, bs))
        init = (w1, jnp.zeros_like(w1), jnp.zeros(w1.shape, bool), u1)
        w1, err1, mask1, _ = jax.lax.fori_loop(0, bs // m, functools.partial(group_step, i1), init)
        # lazy update of the later blocks: W[i2:] -= U[i1:i2, i2:]^T Err
        rows = jax.lax.dynamic_slice_in_dim(u, i1, bs, axis=0)
        rows = jnp.where(cols[None, :] >= i1 + bs, rows, 0.0)
        w = w - rows.T @ err1
        w = jax.lax.dynamic_update_slice_in_dim(w, jnp.where(mask1, w1, 0.0), i1, axis=0)
        mask = jax.lax.dynamic_update_slice_in_dim(mask, mask1, i1, axis=0)
        return w, mask

    w, mask = jax.lax.fori_loop(0, total // bs, block_step, (w, jnp.zeros(w.shape, bool)))
    return w[:d_in], mask[:d_in], frac, fallback


# ============================================================================================
# The public entry point
# ============================================================================================
@functools.partial(
    jax.jit,
    static_argnames=(
        "method",
        "n",
        "m",
        "refine",
        "refine_steps",
        "damp",
        "block_size",
        "schedule",
    ),
)
def _prune(w, h, *, method, n, m, refine, refine_steps, damp, block_size, schedule):
    zero, false = jnp.zeros((), w.dtype), jnp.array(False)
    iters, converged, frac, fallback = jnp.zeros((), jnp.int32), jnp.array(True), zero, false
    if method == "prox":
        wp, mask, iters, converged = prox_prune(w, h, schedule)
    elif method == "sparsegpt":
        wp, mask, frac, fallback = sparsegpt_prune(w, h, n=n, m=m, damp=damp, block_size=block_size)
    else:
        scores = wanda_scores(w, h) if method == "wanda" else magnitude_scores(w)
        mask = nm_mask(scores, n, m, axis=0)
        wp = jnp.where(mask, w, 0.0)
    err_mask = reconstruction_error(wp, w, h)
    if refine_steps:
        refined = (
            masked_gd(wp, mask, w, h, refine_steps)
            if refine == "gd"
            else masked_cg(wp, mask, w, h, refine_steps)
        )
        wp = jnp.where(mask, refined, 0.0)
    info = PruneInfo(
        rel_error_mask=err_mask,
        rel_error=reconstruction_error(wp, w, h),
        iterations=iters,
        converged=converged,
        damping=frac,
        fallback=fallback,
    )
    return wp, mask, info


def _nonfinite(x: jax.Array) -> bool:
    """True for a concrete array holding NaN/inf (checked on the host; tracers are skipped)."""
    return not isinstance(x, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(x)))


def prune_layer(
    w: Float[Array, "a b"],
    x: Float[Array, "tokens d_in"] | None = None,
    method: str = "prox",
    *,
    h: Float[Array, "d_in d_in"] | None = None,
    n: int = 2,
    m: int = 4,
    axis: int = 0,
    refine: Refine = "gd",
    refine_steps: int | None = None,
    damp: float = 0.01,
    block_size: int = 128,
    schedule: ProxSchedule = ProxSchedule(),
) -> tuple[jax.Array, jax.Array, PruneInfo]:
    r"""Prunes one linear layer to N:M sparsity, minimising :math:`\|X W - X \bar W\|^2`.

    Args:
      w: dense weights; a Flax kernel ``(d_in, d_out)`` (``axis=0``) or a PyTorch-layout
        ``(d_out, d_in)`` matrix (``axis=-1``).
      x: calibration inputs ``(tokens, d_in)``; or pass ``h`` instead.
      method: ``"prox"`` (2:4 only), ``"sparsegpt"``, ``"wanda"`` or ``"magnitude"``.
      h: :math:`X^\top X / N` ``(d_in, d_in)``, e.g. accumulated over streaming batches.
      n, m: keep ``n`` of every ``m`` consecutive weights along the input axis.
      axis: the input axis of ``w`` (0 or -1).
      refine: ``"gd"`` (masked gradient descent, step :math:`1/L`, the paper's) or ``"cg"``.
      refine_steps: refinement steps after masking; default 100 for ``"prox"`` (the paper's
        pruner ends with masked updates) and 0 for the baselines (their published form).
      damp: SparseGPT's Hessian damping, a fraction of ``mean(diag H)``.
      block_size: SparseGPT's column block (rounded to the layer; a multiple of ``m``).
      schedule: the prox pruner's threshold schedule (:class:`ProxSchedule`).

    Returns:
      ``(w_pruned, mask, info)``: weights and boolean mask in ``w``'s layout (exactly N:M:
      ``mask`` has ``n`` of every ``m``; ``w_pruned`` is zero outside it), and a
      :class:`PruneInfo`. Computation runs in float32 (float64 for float64 inputs); ``w_pruned``
      has ``w``'s dtype.

    Raises:
      ValueError: on a non-2-D or non-float ``w``, an input size not divisible by ``m``,
        ``n > m``, a method or option that does not exist, both or neither of ``x`` and ``h``,
        mismatched shapes, or non-finite values (checked when the inputs are concrete).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> w = jax.random.normal(jax.random.key(0), (16, 8))
        >>> x = jax.random.normal(jax.random.key(1), (64, 16))
        >>> wp, mask, info = prune_layer(w, x, "wanda", refine_steps=50)
        >>> mask.shape, int(mask.sum()), bool(info.rel_error <= info.rel_error_mask)
        ((16, 8), 64, True)
    """
    w = jnp.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w: expected a 2-D weight matrix, got shape {w.shape}")
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise ValueError(f"w: expected a floating-point array, got dtype {w.dtype}")
    if axis not in (0, 1, -1, -2):
        raise ValueError(f"axis: expected 0 or -1 for a 2-D weight, got {axis}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    ax = _check_nm(w.shape, axis, n, m, "w")
    if method == "prox" and (n, m) != (2, 4):
        raise ValueError(f"method='prox' supports 2:4 only, got n={n}, m={m}")
    if refine not in ("gd", "cg"):
        raise ValueError(f"refine: expected 'gd' or 'cg', got {refine!r}")
    if refine_steps is None:
        refine_steps = 100 if method == "prox" else 0
    if refine_steps < 0:
        raise ValueError(f"refine_steps: expected >= 0, got {refine_steps}")
    if not damp > 0:
        raise ValueError(f"damp: expected > 0, got {damp}")
    if method == "sparsegpt" and (block_size < m or block_size % m):
        raise ValueError(f"block_size: expected a positive multiple of m={m}, got {block_size}")
    if not isinstance(schedule, ProxSchedule):
        raise ValueError(f"schedule: expected a ProxSchedule, got {type(schedule).__name__}")
    kernel = w if ax == 0 else w.T
    d_in = kernel.shape[0]
    if (x is None) == (h is None):
        raise ValueError("pass exactly one of x (calibration inputs) or h (their X^T X / N)")
    if x is not None:
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[1] != d_in or x.shape[0] < 1:
            raise ValueError(
                f"x: expected (tokens, {d_in}) for w of shape {w.shape}, got {x.shape}"
            )
        if _nonfinite(x):
            raise ValueError("x: contains NaN or infinite values")
        h = hessian(x)
    h = jnp.asarray(h)
    if h.shape != (d_in, d_in):
        raise ValueError(
            f"h: expected shape ({d_in}, {d_in}) for w of shape {w.shape}, got {h.shape}"
        )
    if _nonfinite(h):
        raise ValueError("h: contains NaN or infinite values")
    if _nonfinite(w):
        raise ValueError("w: contains NaN or infinite values")
    work = _work_dtype(w.dtype, h.dtype)
    wp, mask, info = _prune(
        kernel.astype(work),
        h.astype(work),
        method=method,
        n=n,
        m=m,
        refine=refine,
        refine_steps=int(refine_steps),
        damp=float(damp),
        block_size=int(block_size),
        schedule=schedule,
    )
    wp = wp.astype(w.dtype)
    if ax != 0:
        wp, mask = wp.T, mask.T
    return wp, mask, info

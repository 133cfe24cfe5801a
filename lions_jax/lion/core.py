r"""LION bidirectional linear attention: pure JAX (no Flax, no optax, no I/O).

LION (Afzal et al., 2025) is full, non-causal linear attention with a multiplicative decay mask,

.. math::

    Y = \mathrm{Scale}\big((Q K^\top) \odot M\big)\, V, \qquad
    M_{ij} = \begin{cases} \prod_{t=j}^{i-1} \lambda_t & i > j \\ 1 & i = j \\
                           \prod_{t=i+1}^{j} \lambda_t & i < j \end{cases}

where ``Scale`` divides each row by its sum (``normalize=True``, the vision models) or multiplies
by ``scale`` (``normalize=False``, the masked-language models). :math:`M = M^F + M^B - I` with
lower/upper triangular :math:`M^F, M^B` that are rank-1 semiseparable, so the same output comes
from three algorithms, all implemented here and equal to round-off:

* ``"parallel"``: build :math:`M` in log space (stable segment sums, no :math:`+\infty` ever
  created) and do one masked matmul, O(L^2 d). For LION-LIT (:math:`\lambda \equiv 1`) the mask is
  all ones and the form takes the linear shortcut :math:`Q(K^\top V)`, O(L d^2).
* ``"recurrent"``: two causal linear-attention RNNs (``lax.scan`` forward and backward),
  :math:`S^F_i = \lambda_{i-1} S^F_{i-1} + k_i v_i^\top` and
  :math:`S^B_i = \lambda_{i+1} S^B_{i+1} + k_i v_i^\top`, whose outputs are added with the
  diagonal counted once (the "half-diagonal correction" applied to numerator and normaliser);
  O(L d^2) time, O(d^2) state.
* ``"chunked"``: the same two directions computed chunk-wise (SSD/GLA style): C x C masked
  blocks inside each chunk, and a d x d state carried across chunks through the rank-1 structure
  of the off-diagonal mask blocks; O(L C d + L d^2) time, ``L / C`` sequential steps of
  element-wise work. Any ``chunk_size`` (sequences are zero-padded internally).

Mask variants by the shape of ``log_decay`` (values :math:`\log\lambda \le 0`): ``None`` is
LION-LIT, ``(heads,)`` LION-D (a constant decay per head, Toeplitz mask
:math:`\lambda^{|i-j|}`), ``(batch, seq, heads)`` LION-S (input-dependent, selective decays).

References:
  Afzal, Al-Dahle, ... Cevher, *LION: Linear Attention for Efficient Bidirectional Sequence
  Modeling*, arXiv:2502.16249, 2025. https://arxiv.org/abs/2502.16249
  Official code (PyTorch): https://github.com/LIONS-EPFL/LION
"""

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from lions_jax._src.typing import AnyArray as Array

__all__ = [
    "FORMS",
    "column_snake_order",
    "elu_feature_map",
    "invert_order",
    "lion_attention",
    "lion_attention_multiorder",
    "lion_mask",
    "silu_feature_map",
    "snake_order",
    "with_cls_order",
]

Form = Literal["parallel", "recurrent", "chunked"]
FORMS: tuple[str, ...] = ("parallel", "recurrent", "chunked")


# ============================================================================================
# Feature maps
# ============================================================================================
def elu_feature_map(x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    r""":math:`\phi(x) = \mathrm{elu}(x) + 1 > 0` (LION-LIT in the vision models)."""
    return jax.nn.elu(x) + 1.0


def silu_feature_map(x: Float[Array, "*shape d"], eps: float = 1e-6) -> Float[Array, "*shape d"]:
    r""":math:`\phi(x) = (\mathrm{silu}(x) + 0.5) / \|\mathrm{silu}(x) + 0.5\|_2` over the last axis.

    Strictly positive (:math:`\mathrm{silu} \ge -0.2785`), so :math:`q \cdot k > 0` and the row-sum
    normaliser stays positive (LION-D and LION-S in the vision models).
    """
    y = jax.nn.silu(x) + 0.5
    return y / jnp.maximum(jnp.linalg.norm(y, axis=-1, keepdims=True), eps)


# ============================================================================================
# Masks
# ============================================================================================
def _shift_right(x: jax.Array) -> jax.Array:
    """``[0, x_0, ..., x_{L-2}]`` along the last axis."""
    return jnp.concatenate([jnp.zeros_like(x[..., :1]), x[..., :-1]], axis=-1)


def _shift_left(x: jax.Array) -> jax.Array:
    """``[x_1, ..., x_{L-1}, 0]`` along the last axis."""
    return jnp.concatenate([x[..., 1:], jnp.zeros_like(x[..., :1])], axis=-1)


def _segsum(x: jax.Array) -> jax.Array:
    r"""Stable segment sums: ``out[..., i, j] = sum_{t=j+1}^{i} x_t`` for ``i >= j``, ``-inf`` above.

    Built as a cumulative sum of a masked (L, L) array rather than as a difference of cumulative
    sums, so no precision is lost for long sequences or strong decays (Mamba-2's ``segsum``).
    """
    n = x.shape[-1]
    strictly_lower = jnp.tril(jnp.ones((n, n), bool), -1)
    xx = jnp.where(strictly_lower, x[..., :, None], 0.0)  # xx[i, j] = x_i for i > j
    seg = jnp.cumsum(xx, axis=-2)
    return jnp.where(jnp.tril(jnp.ones((n, n), bool)), seg, -jnp.inf)


def _log_mask(x: jax.Array) -> jax.Array:
    r"""``log M`` for per-token log-decays ``x`` (..., L): finite everywhere, 0 on the diagonal.

    Forward (:math:`i \ge j`): :math:`\sum_{t=j}^{i-1} x_t`; backward (:math:`i \le j`):
    :math:`\sum_{t=i+1}^{j} x_t`. Each triangle is selected *before* exponentiation.
    """
    fwd = _segsum(_shift_right(x))
    bwd = jnp.swapaxes(_segsum(x), -1, -2)
    n = x.shape[-1]
    return jnp.where(jnp.tril(jnp.ones((n, n), bool)), fwd, bwd)


def lion_mask(
    log_decay: Float[Array, " heads"] | Float[Array, "batch seq heads"] | None, seq_len: int
) -> Float[Array, "*batch_heads seq seq"]:
    r"""The LION mask :math:`M` (see module docstring), computed in log space in float32 or wider.

    Args:
      log_decay: ``None`` (LIT: all ones), ``(heads,)`` (LION-D) or ``(batch, seq, heads)``
        (LION-S), values :math:`\log\lambda \le 0`.
      seq_len: sequence length L.

    Returns:
      ``(seq, seq)`` for LIT, ``(heads, seq, seq)`` for D, ``(batch, heads, seq, seq)`` for S.

    Example:
        >>> import jax.numpy as jnp
        >>> m = lion_mask(jnp.log(jnp.array([0.5])), 3)
        >>> m[0].tolist()
        [[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]]
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if log_decay is None:
        return jnp.ones((seq_len, seq_len), jnp.float32)
    dtype = jnp.promote_types(log_decay.dtype, jnp.float32)
    if log_decay.ndim == 1:
        x = jnp.broadcast_to(log_decay.astype(dtype)[:, None], (log_decay.shape[0], seq_len))
    elif log_decay.ndim == 3:
        if log_decay.shape[1] != seq_len:
            raise ValueError(f"log_decay: seq axis {log_decay.shape[1]} != seq_len {seq_len}")
        x = jnp.swapaxes(log_decay.astype(dtype), 1, 2)  # (B, H, L)
    else:
        raise ValueError(
            f"log_decay: expected shape (heads,) or (batch, seq, heads), got {log_decay.shape}"
        )
    return jnp.exp(_log_mask(x))


# ============================================================================================
# One (batch, head): numerator and normaliser of each form
# ============================================================================================
def _mm(spec: str, a: jax.Array, b: jax.Array, acc: jnp.dtype) -> jax.Array:
    """Matmul with ``acc`` accumulation; low-precision operands stay low-precision on GPU/TPU.

    XLA:CPU cannot run every bf16 x bf16 -> f32 dot ("Unsupported element type for
    DotThunk"), so on the CPU backend the operands are upcast instead (same result up to the
    operand rounding that already happened).
    """
    if jax.default_backend() == "cpu":
        a, b = a.astype(jnp.promote_types(a.dtype, acc)), b.astype(jnp.promote_types(b.dtype, acc))
    return jnp.einsum(spec, a, b, preferred_element_type=acc)


def _scan_direction(q, k, v1, decay_in, acc, reverse):
    """``out_i = q_i S_i`` with ``S_i = exp(decay_in_i) S_prev + k_i v1_i^T`` in scan order."""

    def step(state, inputs):
        qi, ki, vi, di = inputs
        state = jnp.exp(di) * state + jnp.outer(ki.astype(acc), vi.astype(acc))
        return state, qi.astype(acc) @ state

    init = jnp.zeros((k.shape[-1], v1.shape[-1]), acc)
    _, out = jax.lax.scan(step, init, (q, k, v1, decay_in), reverse=reverse)
    return out


def _recurrent(q, k, v1, x, acc):
    """Sum of the forward and backward RNN outputs, diagonal counted once: (L, dv1)."""
    x = jnp.zeros(q.shape[:1], acc) if x is None else x.astype(acc)
    fwd = _scan_direction(q, k, v1, _shift_right(x), acc, reverse=False)
    bwd = _scan_direction(q, k, v1, _shift_left(x), acc, reverse=True)
    return fwd, bwd


def _chunked_causal(q, k, v1, x, chunk: int, acc):
    r"""Causal part :math:`\sum_{j \le i} e^{\sum_{t=j}^{i-1} x_t} (q_i \cdot k_j) v_j`, chunk-wise.

    Per chunk: an intra-chunk C x C masked block, plus the contribution of all earlier chunks
    through the carried state :math:`H_n = \sum_{j < s_n} e^{\sum_{t=j}^{s_n - 1} x_t} k_j v_j^\top`
    (``s_n`` the chunk start), which obeys :math:`H_{n+1} = e^{G_n} H_n + \sum_b e^{r_b} k_b v_b^\top`
    with :math:`G_n` the chunk's total log-decay and :math:`r_b` its suffix sums. Every exponent
    is :math:`\le 0`.
    """
    n = q.shape[0]
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n

    def blocks(a):
        a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape(num_chunks, chunk, *a.shape[1:])

    qc, kc, vc, xc = blocks(q), blocks(k), blocks(v1), blocks(x)
    x_prev = _shift_right(xc)  # within each chunk; element 0 is never used by the mask
    intra_mask = jnp.exp(_segsum(x_prev))  # (N, C, C), lower triangular incl. diagonal
    scores = _mm("nad,nbd->nab", qc, kc, acc) * intra_mask
    intra = _mm("nab,nbe->nae", scores.astype(v1.dtype), vc, acc)

    prefix = jnp.cumsum(x_prev, axis=1)  # g_a = sum_{t<a} x_t (exclusive)
    suffix = jnp.flip(jnp.cumsum(jnp.flip(xc, 1), axis=1), 1)  # r_b = sum_{t>=b} x_t
    total = suffix[:, 0]  # G_n
    weighted_k = (kc.astype(acc) * jnp.exp(suffix)[..., None]).astype(kc.dtype)
    deltas = _mm("nbd,nbe->nde", weighted_k, vc, acc)  # (N, dk, dv1)

    def carry_state(h, inputs):
        g, delta = inputs
        return jnp.exp(g) * h + delta, h

    h0 = jnp.zeros(deltas.shape[1:], acc)
    _, states = jax.lax.scan(carry_state, h0, (total, deltas))  # H_n entering chunk n
    inter = _mm("nad,nde->nae", qc, states.astype(qc.dtype), acc)
    out = intra + jnp.exp(prefix)[..., None] * inter
    return out.reshape(num_chunks * chunk, -1)[:n]


def _chunked(q, k, v1, x, chunk, acc):
    x = jnp.zeros(q.shape[:1], acc) if x is None else x.astype(acc)
    fwd = _chunked_causal(q, k, v1, x, chunk, acc)
    flip = lambda a: jnp.flip(a, 0)  # noqa: E731
    bwd = flip(_chunked_causal(flip(q), flip(k), flip(v1), flip(x), chunk, acc))
    return fwd, bwd


def _num_den_one(q, k, v, x, *, form: str, chunk_size: int, normalize: bool, acc):
    """(num (L, dv), den (L,) or None) for one (batch, head)."""
    v1 = jnp.concatenate([v, jnp.ones_like(v[:, :1])], axis=-1) if normalize else v
    if form == "recurrent":
        fwd, bwd = _recurrent(q, k, v1, x, acc)
    else:
        fwd, bwd = _chunked(q, k, v1, x, chunk_size, acc)
    diag = _mm("ld,ld->l", q, k, acc)[:, None] * v1.astype(acc)
    both = fwd + bwd - diag
    if normalize:
        return both[:, :-1], both[:, -1]
    return both, None


# ============================================================================================
# Public API
# ============================================================================================
def _validate(q, k, v, log_decay, form, chunk_size, eps):
    for name, a in (("q", q), ("k", k), ("v", v)):
        if a.ndim != 4:
            raise ValueError(f"{name}: expected (batch, seq, heads, dim), got shape {a.shape}")
        if not jnp.issubdtype(a.dtype, jnp.floating):
            raise ValueError(f"{name}: expected a floating dtype, got {a.dtype}")
    if k.shape != q.shape:
        raise ValueError(f"k: shape {k.shape} must equal q's {q.shape}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v: (batch, seq, heads) {v.shape[:3]} must equal q's {q.shape[:3]}")
    b, n, h, _ = q.shape
    if log_decay is not None:
        if log_decay.shape not in ((h,), (b, n, h)):
            raise ValueError(
                f"log_decay: expected None, ({h},) or ({b}, {n}, {h}), got {log_decay.shape}"
            )
        if not jnp.issubdtype(log_decay.dtype, jnp.floating):
            raise ValueError(f"log_decay: expected a floating dtype, got {log_decay.dtype}")
        try:  # concrete values are checked; traced ones cannot be (documented)
            concrete = np.asarray(log_decay)
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            concrete = None
        if concrete is not None and np.any(concrete > 0):
            raise ValueError(
                "log_decay: values must be <= 0 (log of decays in (0, 1]), got max "
                f"{concrete.max():.3g}"
            )
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected an integer >= 1, got {chunk_size!r}")
    if eps < 0:
        raise ValueError(f"eps: expected >= 0, got {eps}")


def _per_head_decay(log_decay, b, n, h):
    """(B, H, L) log-decays, or None for LIT."""
    if log_decay is None:
        return None
    if log_decay.ndim == 1:
        return jnp.broadcast_to(log_decay[None, :, None], (b, h, n))
    return jnp.swapaxes(log_decay, 1, 2)


def _parallel_batched(q, k, v, log_decay, acc):
    """Parallel form on whole (B, L, H, d) arrays; a LION-D mask is built once per head."""
    if log_decay is None:
        kv = _mm("blhd,blhe->bhde", k, v, acc)
        num = _mm("blhd,bhde->blhe", q, kv.astype(q.dtype), acc)
        den = _mm("blhd,bhd->blh", q, jnp.sum(k.astype(acc), axis=1).astype(q.dtype), acc)
        return num, den
    n = q.shape[1]
    if log_decay.ndim == 1:  # (H,): one Toeplitz mask per head, shared by the batch
        x = jnp.broadcast_to(log_decay.astype(acc)[:, None], (log_decay.shape[0], n))
        mask = jnp.exp(_log_mask(x))[None]  # (1, H, L, L)
    else:
        mask = jnp.exp(_log_mask(jnp.swapaxes(log_decay.astype(acc), 1, 2)))  # (B, H, L, L)
    scores = _mm("blhd,bmhd->bhlm", q, k, acc) * mask
    num = _mm("bhlm,bmhe->blhe", scores.astype(v.dtype), v, acc)
    return num, jnp.swapaxes(jnp.sum(scores, axis=-1), 1, 2)


def _lion_num_den(q, k, v, log_decay, *, form, chunk_size, normalize, acc):
    """Batched (num (B, L, H, dv), den (B, L, H) or None)."""
    if form == "parallel":
        num, den = _parallel_batched(q, k, v, log_decay, acc)
        return num, (den if normalize else None)
    b, n, h, _ = q.shape
    x = _per_head_decay(log_decay, b, n, h)
    qt, kt, vt = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))  # (B, H, L, d)
    fn = lambda qq, kk, vv, xx: _num_den_one(  # noqa: E731
        qq, kk, vv, xx, form=form, chunk_size=chunk_size, normalize=normalize, acc=acc
    )
    x_axis = None if x is None else 0
    num, den = jax.vmap(jax.vmap(fn, in_axes=(0, 0, 0, x_axis)), in_axes=(0, 0, 0, x_axis))(
        qt, kt, vt, x
    )
    num = jnp.swapaxes(num, 1, 2)
    den = None if den is None else jnp.swapaxes(den, 1, 2)
    return num, den


def _finish(num, den, v_dtype, *, normalize, eps, scale):
    if normalize:
        return (num / (den[..., None] + eps)).astype(v_dtype)
    return (num * scale).astype(v_dtype)


def lion_attention(
    q: Float[Array, "batch seq heads dk"],
    k: Float[Array, "batch seq heads dk"],
    v: Float[Array, "batch seq heads dv"],
    log_decay: Float[Array, " heads"] | Float[Array, "batch seq heads"] | None = None,
    *,
    form: Form = "parallel",
    chunk_size: int = 64,
    normalize: bool = True,
    eps: float = 1e-6,
    scale: float | None = None,
) -> Float[Array, "batch seq heads dv"]:
    r"""LION bidirectional linear attention :math:`Y = \mathrm{Scale}((QK^\top) \odot M) V`.

    .. math::

        y_i = \frac{\sum_j M_{ij}\,(q_i \cdot k_j)\, v_j}{\sum_j M_{ij}\,(q_i \cdot k_j) + \epsilon}
        \quad (\text{normalize}), \qquad
        y_i = s \sum_j M_{ij}\,(q_i \cdot k_j)\, v_j \quad (\text{otherwise}).

    All three ``form``\ s compute the same function (to round-off; tested in float64 to 1e-10).
    Mask and normaliser math runs in float32 or wider, whatever the input dtype; matmuls take
    the input dtype with float32 accumulation.

    Args:
      q: queries, already feature-mapped (positive feature maps keep the normaliser > 0).
      k: keys, already feature-mapped.
      v: values.
      log_decay: ``None`` (LION-LIT), ``(heads,)`` (LION-D) or ``(batch, seq, heads)`` (LION-S);
        :math:`\log\lambda \le 0` (checked when concrete, e.g. not under ``jit``).
      form: ``"parallel"`` (masked matmul; linear shortcut for LIT), ``"recurrent"`` (two
        ``lax.scan`` RNNs) or ``"chunked"`` (sub-quadratic chunk-wise scans).
      chunk_size: chunk length for ``"chunked"`` (any positive integer; need not divide seq).
      normalize: divide rows by their sums (vision LION) or not (MLM LION).
      eps: added to the normaliser.
      scale: multiplier when ``normalize=False`` (default :math:`1/\sqrt{d_k}`).

    Returns:
      ``(batch, seq, heads, dv)`` in the dtype of ``v``.

    Raises:
      ValueError: bad ranks, mismatched shapes, positive log-decays, unknown ``form``,
        ``chunk_size < 1``, negative ``eps``.

    Example:
        >>> import functools, jax, jax.numpy as jnp
        >>> q, k, v = jax.random.uniform(jax.random.key(0), (3, 2, 10, 4, 8))
        >>> log_decay = jnp.log(jnp.full((4,), 0.9))  # LION-D
        >>> parallel = jax.jit(lion_attention)
        >>> chunked = jax.jit(functools.partial(lion_attention, form="chunked", chunk_size=3))
        >>> y_par, y_chk = parallel(q, k, v, log_decay), chunked(q, k, v, log_decay)
        >>> bool(jnp.allclose(y_par, y_chk, rtol=1e-5, atol=1e-6))
        True
    """
    _validate(q, k, v, log_decay, form, chunk_size, eps)
    acc = jnp.promote_types(jnp.promote_types(q.dtype, v.dtype), jnp.float32)
    scale = float(q.shape[-1]) ** -0.5 if scale is None else scale
    num, den = _lion_num_den(
        q, k, v, log_decay, form=form, chunk_size=int(chunk_size), normalize=normalize, acc=acc
    )
    return _finish(num, den, v.dtype, normalize=normalize, eps=eps, scale=scale)


# ============================================================================================
# Patch orders ("natural" LION-D♮ / LION-S♮)
# ============================================================================================
def snake_order(height: int, width: int) -> np.ndarray:
    """Row-wise snake over a ``height x width`` grid (raster indices): L→R on even rows, R→L on odd.

    Example:
        >>> snake_order(2, 3).tolist()
        [0, 1, 2, 5, 4, 3]
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid must be at least 1x1, got {height}x{width}")
    grid = np.arange(height * width).reshape(height, width)
    grid[1::2] = grid[1::2, ::-1]
    return grid.reshape(-1)


def column_snake_order(height: int, width: int) -> np.ndarray:
    """Column-wise snake (raster indices): top→bottom on even columns, bottom→top on odd.

    Example:
        >>> column_snake_order(2, 3).tolist()
        [0, 3, 4, 1, 2, 5]
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid must be at least 1x1, got {height}x{width}")
    grid = np.arange(height * width).reshape(height, width).T.copy()
    grid[1::2] = grid[1::2, ::-1]
    return grid.reshape(-1)


def with_cls_order(order: Sequence[int] | np.ndarray) -> np.ndarray:
    """Prepends a class token at index 0 (kept in place) to a patch order over indices 1..N."""
    order = np.asarray(order)
    return np.concatenate([[0], order + 1])


def invert_order(order: Sequence[int] | np.ndarray) -> np.ndarray:
    """The inverse permutation: ``x[order][invert_order(order)] == x``.

    Raises:
      ValueError: if ``order`` is not a permutation of ``0..n-1``.
    """
    order = np.asarray(order)
    if order.ndim != 1 or not np.array_equal(np.sort(order), np.arange(order.size)):
        raise ValueError("order: expected a permutation of 0..n-1")
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    return inv


def lion_attention_multiorder(
    q: Float[Array, "batch seq heads dk"],
    k: Float[Array, "batch seq heads dk"],
    v: Float[Array, "batch seq heads dv"],
    log_decays: Sequence[Float[Array, " heads"] | Float[Array, "batch seq heads"]],
    orders: Sequence[Int[np.ndarray, " seq"]],
    *,
    form: Form = "parallel",
    chunk_size: int = 64,
    normalize: bool = True,
    eps: float = 1e-6,
    scale: float | None = None,
) -> Float[Array, "batch seq heads dv"]:
    r"""LION with the average of masks built along several scan orders (LION-D♮, LION-S♮).

    .. math:: M = \frac{1}{R} \sum_{r=1}^R P_r^\top M_r P_r,

    where :math:`M_r` is the LION mask of the sequence permuted by ``orders[r]`` with decays
    ``log_decays[r]`` (S decays are given per token in the original order and permuted with it).
    Every form works: each order contributes its numerator and normaliser, mapped back to the
    original order, and the sums are divided once (the :math:`1/R` cancels when normalising).
    Use :func:`snake_order` and :func:`column_snake_order` (with :func:`with_cls_order` for a
    class token) for the image patch orders of the paper.
    """
    if len(log_decays) != len(orders) or not orders:
        raise ValueError("log_decays and orders must be non-empty and of equal length")
    _validate(q, k, v, None, form, chunk_size, eps)
    n = q.shape[1]
    acc = jnp.promote_types(jnp.promote_types(q.dtype, v.dtype), jnp.float32)
    scale = float(q.shape[-1]) ** -0.5 if scale is None else scale
    num_total, den_total = 0.0, 0.0
    for log_decay, order in zip(log_decays, orders):
        if isinstance(order, jax.core.Tracer):
            raise ValueError(
                "orders: permutations must be concrete NumPy arrays (static under "
                "jit); close over them instead of passing them as jit arguments"
            )
        order = np.asarray(order)
        if order.shape != (n,):
            raise ValueError(f"orders: each order must have shape ({n},), got {order.shape}")
        inv = invert_order(order)
        ld = log_decay
        if ld is not None and ld.ndim == 3:
            ld = ld[:, order]
        _validate(q, k, v, ld, form, chunk_size, eps)
        num, den = _lion_num_den(
            q[:, order],
            k[:, order],
            v[:, order],
            ld,
            form=form,
            chunk_size=int(chunk_size),
            normalize=normalize,
            acc=acc,
        )
        num_total = num_total + num[:, inv]
        if normalize:
            den_total = den_total + den[:, inv]
    r = len(orders)
    if normalize:
        return _finish(num_total, den_total, v.dtype, normalize=True, eps=eps * r, scale=scale)
    return _finish(num_total / r, None, v.dtype, normalize=False, eps=eps, scale=scale)

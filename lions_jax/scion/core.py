r"""Linear minimization oracles (LMOs) of Scion: pure JAX, Flax ``(in, out)`` layouts.

Scion (Pethick et al., 2025) updates every layer along the *sharp operator* of a norm chosen for
that layer,

.. math:: S(G) = \operatorname*{argmax}_{\|U\| \le 1} \langle G, U\rangle, \qquad
          \mathrm{lmo}(G) = -\rho\, S(G),

so :math:`\|S(G)\| = 1` and :math:`\langle G, S(G)\rangle = \|G\|_*`. Every function here returns
:math:`S(G)` for one array (leading axes may batch stacked layers where stated), with the paper's
width scalings written for Flax layouts: a ``Dense`` kernel is ``(d_in, d_out)``, an ``Embed``
table ``(vocab, d)`` (one-hot input, so ``d_in = vocab``), a ``Conv`` kernel
``(*spatial, c_in, c_out)``.

========================  ==============================================  =====================================
LMO                       :math:`S(G)` (Flax layout)                      norm :math:`\|W\|` (unit ball)
========================  ==============================================  =====================================
``spectral_lmo``          :math:`\sqrt{d_{out}/d_{in}}\; \mathrm{NS}(G)`  :math:`\sqrt{d_{in}/d_{out}}\|W\|_{2}`
``sign_lmo``              :math:`\mathrm{sign}(G)/d_{in}`                 :math:`d_{in} \max_{ij}|W_{ij}|`
``colnorm_lmo``           row :math:`i` (input unit) to RMS 1             :math:`\max_i \mathrm{RMS}(W_{i,:})`
``rownorm_lmo``           column :math:`j` to norm :math:`1/\sqrt{d_{in}}`  :math:`\sqrt{d_{in}}\max_j\|W_{:,j}\|_2`
``bias_rms_lmo``          :math:`b / \mathrm{RMS}(b)`                     :math:`\mathrm{RMS}(b)`
``spectral_conv_lmo``     :math:`\sqrt{c_{out}/c_{in}}/k\cdot\mathrm{NS}`  per-tap RMS→RMS
========================  ==============================================  =====================================

(``NS`` = Newton–Schulz orthogonalisation, an approximation of :math:`UV^\top` for
:math:`G = U\Sigma V^\top`; ``k`` = number of spatial taps.) Normalising divides add ``eps``, so a
zero input gives a zero output, never NaN.

References:
  Pethick, Xie, Erdogan, Antonakopoulos, Silveti-Falls, Cevher, *Training Deep Learning Models
  with Norm-Constrained LMOs*, ICML 2025, arXiv:2502.07529. https://arxiv.org/abs/2502.07529
  Official code (PyTorch): https://github.com/LIONS-EPFL/scion
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Float

from lions_jax._src.typing import AnyArray as Array

__all__ = [
    "NS_COEFFS",
    "ScionDimensionNumbers",
    "bias_rms_lmo",
    "colnorm_lmo",
    "conv_scale",
    "default_ns_dtype",
    "dual_norm",
    "lmo_norm",
    "newton_schulz",
    "rownorm_lmo",
    "sign_lmo",
    "spectral_conv_lmo",
    "spectral_lmo",
    "spectral_scale",
]

# Quintic Newton–Schulz coefficients: the modded-nanogpt set (5 steps) and the per-step
# Polar-Express-like schedule used by Dion / Levanter (also optax's 'dion').
NS_COEFFS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "standard": ((3.4445, -4.7750, 2.0315),),
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
}


class ScionDimensionNumbers(NamedTuple):
    """Which axes of a non-2-D leaf form the matrix's input and output (others are batch axes).

    ``reduction_axis`` (input) and ``output_axis`` may be ints or tuples of ints. A stacked layer
    ``(layers, d_in, d_out)`` is ``ScionDimensionNumbers(1, 2)``; a Flax conv kernel
    ``(kh, kw, c_in, c_out)`` is ``ScionDimensionNumbers((0, 1, 2), 3)``.
    """

    reduction_axis: int | tuple[int, ...] = 0
    output_axis: int | tuple[int, ...] = 1


def _axes(a: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    a = (a,) if isinstance(a, (int, np.integer)) else tuple(a)
    return tuple(int(i) % ndim for i in a)


def _to_matrix(x: jax.Array, dims: ScionDimensionNumbers | None):
    """(batch..., d_in, d_out) view of ``x`` and the function that undoes it."""
    if dims is None:
        if x.ndim < 2:
            raise ValueError(f"expected at least 2 axes (..., d_in, d_out), got shape {x.shape}")
        return x, lambda y: y
    red, out = _axes(dims.reduction_axis, x.ndim), _axes(dims.output_axis, x.ndim)
    if set(red) & set(out) or not red or not out:
        raise ValueError(f"dimension numbers {dims} are invalid for shape {x.shape}")
    batch = tuple(i for i in range(x.ndim) if i not in red + out)
    perm = batch + red + out
    xt = jnp.transpose(x, perm)
    bshape = xt.shape[: len(batch)]
    d_in = int(np.prod([x.shape[i] for i in red]))
    d_out = int(np.prod([x.shape[i] for i in out]))
    mat = xt.reshape(*bshape, d_in, d_out)
    inv = np.argsort(perm)

    def back(y: jax.Array) -> jax.Array:
        return jnp.transpose(y.reshape(xt.shape), inv)

    return mat, back


def default_ns_dtype(dtype: DTypeLike) -> jnp.dtype:
    """Newton–Schulz dtype when none is given: bfloat16 on GPU/TPU (as the reference code), else ``dtype``.

    Half- and single-precision inputs iterate in bfloat16 on accelerators; float64 inputs (and
    everything on CPU, where bfloat16 matmuls are slow or emulated) keep their own dtype.
    """
    dtype = jnp.dtype(dtype)
    if jax.default_backend() in ("gpu", "tpu") and dtype.itemsize <= 4:
        return jnp.dtype(jnp.bfloat16)
    return dtype


def newton_schulz(
    x: Float[Array, "*batch m n"],
    *,
    steps: int = 5,
    coeffs: str | Sequence[Sequence[float]] = "standard",
    dtype: DTypeLike | None = None,
    eps: float = 1e-7,
) -> Float[Array, "*batch m n"]:
    r"""Approximate orthogonalisation :math:`UV^\top` of each trailing matrix by quintic Newton–Schulz.

    .. math:: X_0 = G / (\|G\|_F + \epsilon), \qquad
              X_{t+1} = a_t X_t + (b_t A_t + c_t A_t^2) X_t, \quad A_t = X_t X_t^\top,

    run on the wide orientation (transposed when ``m > n``). The default coefficients
    (3.4445, −4.7750, 2.0315) do not converge to exactly 1 but push singular values into roughly
    [0.7, 1.2] in 5 steps; ``coeffs="dion"`` (5 steps) is tighter.

    Args:
      x: one or a batch of matrices.
      steps: iterations; with a coefficient schedule longer than ``steps`` the last ``steps``
        triples are used, with a shorter one the last triple repeats.
      coeffs: ``"standard"``, ``"dion"`` or a sequence of ``(a, b, c)``.
      dtype: iteration dtype; default :func:`default_ns_dtype` (bfloat16 on GPU/TPU, as in the
        reference code; the input's dtype on CPU).
      eps: added to the Frobenius norm.

    Returns:
      An array of the input's shape and dtype.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    table = NS_COEFFS[coeffs] if isinstance(coeffs, str) else tuple(tuple(c) for c in coeffs)
    if not table or any(len(c) != 3 for c in table):
        raise ValueError(f"coeffs: expected (a, b, c) triples, got {coeffs!r}")
    if len(table) >= steps:
        schedule = table[-steps:]
    else:
        schedule = table + (table[-1],) * (steps - len(table))
    in_dtype = x.dtype
    work = jnp.dtype(dtype) if dtype is not None else default_ns_dtype(in_dtype)
    wide = x.shape[-2] <= x.shape[-1]
    X = x if wide else jnp.swapaxes(x, -1, -2)
    X = X.astype(jnp.promote_types(in_dtype, jnp.float32))
    norm = jnp.sqrt(jnp.sum(X * X, axis=(-2, -1), keepdims=True))
    X = (X / (norm + eps)).astype(work)
    for a, b, c in schedule:
        A = X @ jnp.swapaxes(X, -1, -2)
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    if not wide:
        X = jnp.swapaxes(X, -1, -2)
    return X.astype(in_dtype)


def spectral_scale(
    d_in: int, d_out: int, *, normalized: bool = True, clip_max: bool = False
) -> float:
    r"""Scale of the spectral sharp operator: :math:`\sqrt{d_{out}/d_{in}}` (or :math:`\sqrt{d_{out}}`
    unnormalised), floored at 1 with ``clip_max``."""
    scale = (d_out / d_in) ** 0.5 if normalized else d_out**0.5
    return max(1.0, scale) if clip_max else scale


def conv_scale(shape: tuple[int, ...]) -> float:
    r"""Scale of the conv sharp operator for a ``(*spatial, c_in, c_out)`` kernel: :math:`\sqrt{c_{out}/c_{in}}/k`."""
    return (shape[-1] / shape[-2]) ** 0.5 / int(np.prod(shape[:-2]))


def spectral_lmo(
    g: Float[Array, "*shape"],
    *,
    normalized: bool = True,
    clip_max: bool = False,
    steps: int = 5,
    coeffs: str | Sequence[Sequence[float]] = "standard",
    ns_dtype: DTypeLike | None = None,
    eps: float = 1e-7,
    dimension_numbers: ScionDimensionNumbers | None = None,
) -> Float[Array, "*shape"]:
    r"""Sharp operator of the RMS→RMS operator norm: :math:`\sqrt{d_{out}/d_{in}}\,\mathrm{NS}(G)`.

    For a Flax kernel ``(d_in, d_out)``; leading axes batch stacked layers unless
    ``dimension_numbers`` say otherwise. ``normalized=False`` uses :math:`\sqrt{d_{out}}` (an
    ℓ2→RMS norm, e.g. for an input layer); ``clip_max`` uses :math:`\max(1, \cdot)` (the
    Muon-style variant of the official MLP recipe).
    """
    mat, back = _to_matrix(g, dimension_numbers)
    scale = spectral_scale(mat.shape[-2], mat.shape[-1], normalized=normalized, clip_max=clip_max)
    s = newton_schulz(mat, steps=steps, coeffs=coeffs, dtype=ns_dtype, eps=eps)
    return back(s * jnp.asarray(scale, s.dtype))


def spectral_conv_lmo(
    g: Float[Array, "*spatial c_in c_out"],
    *,
    steps: int = 5,
    coeffs: str | Sequence[Sequence[float]] = "standard",
    ns_dtype: DTypeLike | None = None,
    eps: float = 1e-7,
) -> Float[Array, "*spatial c_in c_out"]:
    r"""Sharp operator for a Flax conv kernel ``(*spatial, c_in, c_out)``.

    The kernel is orthogonalised as one ``(prod(spatial) * c_in, c_out)`` matrix and scaled by
    :math:`\sqrt{c_{out}/c_{in}} / k` with :math:`k` the number of taps (``kh * kw`` for 2-D
    convs): the official ``SpectralConv`` (which uses :math:`k^2` for a square ``k x k`` kernel and
    :math:`k` for 1-D).
    """
    if g.ndim < 3:
        raise ValueError(f"g: expected a conv kernel (*spatial, c_in, c_out), got {g.shape}")
    dims = ScionDimensionNumbers(tuple(range(g.ndim - 1)), g.ndim - 1)
    mat, back = _to_matrix(g, dims)
    s = newton_schulz(mat, steps=steps, coeffs=coeffs, dtype=ns_dtype, eps=eps)
    return back(s * jnp.asarray(conv_scale(g.shape), s.dtype))


def sign_lmo(g: Float[Array, "*shape"], *, normalized: bool = True) -> Float[Array, "*shape"]:
    r""":math:`\mathrm{sign}(G)/d_{in}` (``normalized``, an output head) or :math:`\mathrm{sign}(G)`.

    The sharp operator of :math:`d_{in}\max|W_{ij}|` (resp. the max-norm); ``d_in = shape[-2]``
    (1 for a vector).
    """
    if g.ndim < 1:
        raise ValueError(f"g: expected (..., d_in, d_out) or a vector, got shape {g.shape}")
    s = jnp.sign(g)
    d_in = g.shape[-2] if g.ndim >= 2 else 1
    return s / d_in if normalized else s


def colnorm_lmo(
    g: Float[Array, "*batch d_in d_out"], *, normalized: bool = False, eps: float = 1e-8
) -> Float[Array, "*batch d_in d_out"]:
    r"""Each input unit's weight vector (row :math:`i` of a Flax kernel or ``Embed`` table) to RMS 1.

    .. math:: S(G)_{i,:} = G_{i,:} / (\mathrm{RMS}(G_{i,:}) \cdot s + \epsilon), \quad
              s = d_{in} \text{ if normalized else } 1.

    Unnormalised, this is the official ``ColNorm`` for input/embedding layers (for a ``(V, D)``
    table: every token vector to RMS 1, the official ``transpose=True``).
    """
    if g.ndim < 2:
        raise ValueError(f"g: expected (..., d_in, d_out), got shape {g.shape}")
    rms = jnp.sqrt(
        jnp.mean(
            jnp.square(g.astype(jnp.promote_types(g.dtype, jnp.float32))), axis=-1, keepdims=True
        )
    )
    if normalized:
        rms = rms * g.shape[-2]
    return (g / (rms + eps).astype(g.dtype)).astype(g.dtype)


def rownorm_lmo(
    g: Float[Array, "*batch d_in d_out"], *, normalized: bool = True, eps: float = 1e-8
) -> Float[Array, "*batch d_in d_out"]:
    r"""Each output unit's weight vector (column :math:`j` of a Flax kernel) to ℓ2 norm :math:`1/\sqrt{d_{in}}`.

    .. math:: S(G)_{:,j} = G_{:,j} / (\|G_{:,j}\|_2 \cdot s + \epsilon), \quad
              s = \sqrt{d_{in}} \text{ if normalized else } 1.
    """
    if g.ndim < 2:
        raise ValueError(f"g: expected (..., d_in, d_out), got shape {g.shape}")
    n = jnp.sqrt(
        jnp.sum(
            jnp.square(g.astype(jnp.promote_types(g.dtype, jnp.float32))), axis=-2, keepdims=True
        )
    )
    if normalized:
        n = n * g.shape[-2] ** 0.5
    return (g / (n + eps).astype(g.dtype)).astype(g.dtype)


def bias_rms_lmo(g: Float[Array, "*shape"], *, eps: float = 1e-8) -> Float[Array, "*shape"]:
    r""":math:`b / (\mathrm{RMS}(b) + \epsilon)` with the RMS over axis 0 (biases, norm gains)."""
    if g.ndim == 0:
        return jnp.sign(g)
    rms = jnp.sqrt(
        jnp.mean(
            jnp.square(g.astype(jnp.promote_types(g.dtype, jnp.float32))), axis=0, keepdims=True
        )
    )
    return (g / (rms + eps).astype(g.dtype)).astype(g.dtype)


# ============================================================================================
# Norms and dual norms (for tests, diagnostics and the SCG ball)
# ============================================================================================
def lmo_norm(kind: str, w: jax.Array, *, normalized: bool | None = None) -> jax.Array:
    r"""The norm whose unit ball the LMO ``kind`` optimises over (per trailing matrix).

    ``kind`` in ``spectral`` (exact, via SVD), ``sign``, ``colnorm``, ``rownorm``, ``bias_rms``;
    ``normalized`` defaults to each LMO's own default.
    """
    w = w.astype(jnp.promote_types(w.dtype, jnp.float32))
    if kind == "spectral":
        nz = True if normalized is None else normalized
        d_in, d_out = w.shape[-2], w.shape[-1]
        s = jnp.linalg.svd(w, compute_uv=False)[..., 0]
        return s * ((d_in / d_out) ** 0.5 if nz else d_out**-0.5)
    if kind == "sign":
        nz = True if normalized is None else normalized
        m = jnp.max(jnp.abs(w), axis=(-2, -1))
        return m * w.shape[-2] if nz else m
    if kind == "colnorm":
        nz = False if normalized is None else normalized
        m = jnp.max(jnp.sqrt(jnp.mean(w * w, axis=-1)), axis=-1)
        return m * w.shape[-2] if nz else m
    if kind == "rownorm":
        nz = True if normalized is None else normalized
        m = jnp.max(jnp.sqrt(jnp.sum(w * w, axis=-2)), axis=-1)
        return m * w.shape[-2] ** 0.5 if nz else m
    if kind == "bias_rms":
        return jnp.sqrt(jnp.mean(w * w, axis=0)).max() if w.ndim else jnp.abs(w)
    raise ValueError(f"kind: unknown norm {kind!r}")


def dual_norm(kind: str, g: jax.Array, *, normalized: bool | None = None) -> jax.Array:
    r""":math:`\|G\|_* = \max_{\|U\| \le 1}\langle G, U\rangle` for the norms of :func:`lmo_norm`."""
    g = g.astype(jnp.promote_types(g.dtype, jnp.float32))
    if kind == "spectral":
        nz = True if normalized is None else normalized
        d_in, d_out = g.shape[-2], g.shape[-1]
        nuclear = jnp.sum(jnp.linalg.svd(g, compute_uv=False), axis=-1)
        return nuclear * ((d_out / d_in) ** 0.5 if nz else d_out**0.5)
    if kind == "sign":
        nz = True if normalized is None else normalized
        s = jnp.sum(jnp.abs(g), axis=(-2, -1))
        return s / g.shape[-2] if nz else s
    if kind == "colnorm":
        nz = False if normalized is None else normalized
        s = jnp.sum(jnp.sqrt(jnp.sum(g * g, axis=-1)), axis=-1) * g.shape[-1] ** 0.5
        return s / g.shape[-2] if nz else s
    if kind == "rownorm":
        nz = True if normalized is None else normalized
        s = jnp.sum(jnp.sqrt(jnp.sum(g * g, axis=-2)), axis=-1)
        return s / g.shape[-2] ** 0.5 if nz else s
    if kind == "bias_rms":
        return (
            jnp.sum(jnp.sqrt(jnp.sum(g * g, axis=0)) * g.shape[0] ** 0.5) if g.ndim else jnp.abs(g)
        )
    raise ValueError(f"kind: unknown norm {kind!r}")

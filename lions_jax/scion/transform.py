r"""Scion as optax transforms: ``scale_by_scion``, ``scion`` (SCG) and ``unconstrained_scion`` (uSCG).

With :math:`d_k = (1-\alpha) d_{k-1} + \alpha g_k` (``momentum`` is :math:`\alpha`, "one minus the
usual momentum", as in the official code) and :math:`S` the sharp operator of the layer's norm
(:mod:`lions_jax.scion.core`):

.. math::

    \text{uSCG:}\quad x_{k+1} = x_k - \gamma_k \rho\, S(d_k), \qquad
    \text{SCG:}\quad x_{k+1} = (1 - \gamma_k) x_k - \gamma_k \rho\, S(d_k).

SCG is uSCG plus decoupled weight decay of exactly the learning rate, so iterates started in the
radius-:math:`\rho` ball stay in it. Both are ``chain(partition({group: scale_by_scion(norm, ρ)
[+ add_decayed_weights(1)]}), scale_by_learning_rate(γ))``, with groups chosen by labels
(:func:`default_labels`): any optax schedule, ``optax.inject_hyperparams`` and ``optax.chain``
work as usual.

References:
  Pethick et al., *Training Deep Learning Models with Norm-Constrained LMOs*, ICML 2025,
  arXiv:2502.07529. https://arxiv.org/abs/2502.07529
"""

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lions_jax.scion.core import (
    ScionDimensionNumbers,
    bias_rms_lmo,
    colnorm_lmo,
    conv_scale,
    newton_schulz,
    rownorm_lmo,
    sign_lmo,
    spectral_conv_lmo,
    spectral_lmo,
    spectral_scale,
)

__all__ = [
    "DEFAULT_GROUPS",
    "NormKind",
    "ScionGroup",
    "ScionState",
    "apply_lmo",
    "default_labels",
    "light_accumulator",
    "scale_by_scion",
    "scion",
    "scion_init",
    "unconstrained_scion",
]

NormKind = Literal["auto", "spectral", "spectral_conv", "sign", "colnorm", "rownorm", "bias_rms"]
_KINDS = ("auto", "spectral", "spectral_conv", "sign", "colnorm", "rownorm", "bias_rms")
DimensionNumbersFn = Callable[[tuple[int, ...]], ScionDimensionNumbers | None]


class ScionGroup(NamedTuple):
    """One parameter group: its norm (LMO), radius ρ and options.

    Attributes:
      norm: ``"auto"`` (0/1-D → bias_rms, 2-D → spectral, 3-D → spectral over a leading stacked
        axis, 4-D → spectral_conv), ``"spectral"``, ``"spectral_conv"``, ``"sign"``,
        ``"colnorm"``, ``"rownorm"`` or ``"bias_rms"``.
      radius: ρ, the step length (in the group's norm) per unit learning rate and, for SCG, the
        radius of the ball the weights live in.
      normalized: the LMO's width normalisation (None: the LMO's default; see
        :mod:`lions_jax.scion.core`).
      clip_max: spectral only: scale ``max(1, sqrt(d_out/d_in))`` (Muon-style).
      dimension_numbers: for spectral LMOs on non-2-D leaves: a function of the leaf's shape
        returning :class:`~lions_jax.scion.core.ScionDimensionNumbers` (or None for the default
        rule above). Put leaves that need different rules in different groups.
    """

    norm: NormKind = "auto"
    radius: float = 1.0
    normalized: bool | None = None
    clip_max: bool = False
    dimension_numbers: DimensionNumbersFn | None = None


# The shallow-nanoGPT recipe of the official code (embedding ρ=1, hidden spectral ρ=3, head
# sign/d_in ρ=10), with the embedding on ColNorm (each token vector to RMS 1) and BiasRMS for
# biases and norm gains. Radii are model-dependent hyperparameters: tune them on a small proxy.
DEFAULT_GROUPS: dict[str, ScionGroup] = {
    "embedding": ScionGroup("colnorm", 1.0),
    "hidden": ScionGroup("auto", 3.0),
    "head": ScionGroup("sign", 10.0),
    "bias": ScionGroup("bias_rms", 1.0),
}


class ScionState(NamedTuple):
    """State of :func:`scale_by_scion`: step count and the averaged gradient d (None when light)."""

    count: jax.Array
    mu: Any


def _resolve_kind(kind: str, shape: tuple[int, ...], *, has_dims: bool) -> str:
    """The concrete norm of ``"auto"`` for a leaf of ``shape`` (see :class:`ScionGroup`)."""
    if kind != "auto":
        return kind
    if len(shape) <= 1:
        return "bias_rms"
    if len(shape) >= 4 and not has_dims:
        if len(shape) > 4:
            raise ValueError(f"auto LMO: give dimension_numbers for a {len(shape)}-D leaf {shape}")
        return "spectral_conv"
    return "spectral"


def apply_lmo(
    kind: NormKind,
    g: jax.Array,
    *,
    normalized: bool | None = None,
    clip_max: bool = False,
    dimension_numbers: ScionDimensionNumbers | None = None,
    ns_steps: int | None = None,
    ns_coeffs: str | Sequence[Sequence[float]] = "standard",
    ns_dtype: Any = None,
    ns_eps: float = 1e-7,
) -> jax.Array:
    """The sharp operator S(g) of norm ``kind`` for one leaf (see :class:`ScionGroup`)."""
    ns = dict(
        steps=5 if ns_steps is None else int(ns_steps),
        coeffs=ns_coeffs,
        ns_dtype=ns_dtype,
        eps=ns_eps,
    )
    opt = {} if normalized is None else {"normalized": normalized}
    kind = _resolve_kind(kind, g.shape, has_dims=dimension_numbers is not None)
    if kind == "spectral":
        if g.ndim < 2:
            raise ValueError(f"spectral LMO needs a matrix, got shape {g.shape}")
        return spectral_lmo(g, clip_max=clip_max, dimension_numbers=dimension_numbers, **opt, **ns)
    if kind == "spectral_conv":
        return spectral_conv_lmo(g, **ns)
    if kind == "sign":
        return sign_lmo(g, **opt)
    if kind == "colnorm":
        return colnorm_lmo(g, **opt)
    if kind == "rownorm":
        return rownorm_lmo(g, **opt)
    if kind == "bias_rms":
        return bias_rms_lmo(g)
    raise ValueError(f"norm: expected one of {_KINDS}, got {kind!r}")


def _is_masked(x: Any) -> bool:
    return isinstance(x, optax.MaskedNode)


def scale_by_scion(
    norm: NormKind = "auto",
    radius: float | jax.Array = 1.0,
    *,
    momentum: float | jax.Array = 0.1,
    light: bool = False,
    normalized: bool | None = None,
    clip_max: bool = False,
    dimension_numbers: DimensionNumbersFn | None = None,
    ns_steps: int | None = None,
    ns_coeffs: str | Sequence[Sequence[float]] = "standard",
    ns_dtype: Any = None,
    ns_eps: float = 1e-7,
    mu_dtype: Any = None,
    batch_matrices: bool = True,
) -> optax.GradientTransformation:
    r"""Averages gradients, :math:`d \leftarrow (1-\alpha) d + \alpha g`, and returns :math:`\rho\,S(d)`.

    Chain it with ``optax.scale_by_learning_rate`` (and ``optax.add_decayed_weights(1.0)`` before
    that for SCG); :func:`scion` does this per parameter group.

    Args:
      norm: the LMO (see :class:`ScionGroup`).
      radius: ρ.
      momentum: α in (0, 1]; 1 means no averaging.
      light: memory-lean mode (the official ``ScionLight``): no momentum buffer in the state; the
        incoming "gradient" must already be the carried average. Start your gradient
        accumulation at :func:`light_accumulator` of the previous step's gradient instead of at
        zero, so it holds :math:`(1-\alpha) d + g = d_{EMA}/\alpha`; every LMO is scale
        invariant, so the update equals the non-light one (up to the ε of the normalisations).
      normalized, clip_max, dimension_numbers: LMO options (see :class:`ScionGroup`).
      ns_steps, ns_coeffs, ns_dtype, ns_eps: Newton–Schulz settings of the spectral LMOs
        (``ns_steps=None`` means 5, and stays static under ``optax.inject_hyperparams``;
        ``ns_dtype="bfloat16"`` is the reference implementation's choice on accelerators).
      mu_dtype: dtype of the momentum buffer (default: the gradients').
      batch_matrices: run the spectral LMO of all 2-D leaves of one shape and dtype as one
        batched Newton–Schulz (``jnp.stack`` → one batched matmul chain → split) instead of one
        chain per leaf. Same result; fewer, larger kernels on accelerators.

    Returns:
      A ``GradientTransformation`` with :class:`ScionState`; updates keep each gradient's dtype.
    """
    if norm not in _KINDS:
        raise ValueError(f"norm: expected one of {_KINDS}, got {norm!r}")
    if isinstance(momentum, (int, float)) and not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum: expected alpha in (0, 1], got {momentum}")
    ns_steps = 5 if ns_steps is None else int(ns_steps)
    if ns_steps < 1:
        raise ValueError(f"ns_steps must be >= 1, got {ns_steps}")
    mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

    def init_fn(params):
        count = jnp.zeros([], jnp.int32)
        if light:
            return ScionState(count=count, mu=None)
        mu = jax.tree.map(
            lambda p: p if _is_masked(p) else jnp.zeros_like(p, dtype=mu_dtype),
            params,
            is_leaf=_is_masked,
        )
        return ScionState(count=count, mu=mu)

    def lmo(d, like, stacked=False):
        dims = None if stacked or dimension_numbers is None else dimension_numbers(tuple(d.shape))
        s = apply_lmo(
            norm,
            d,
            normalized=normalized,
            clip_max=clip_max,
            dimension_numbers=dims,
            ns_steps=ns_steps,
            ns_coeffs=ns_coeffs,
            ns_dtype=ns_dtype,
            ns_eps=ns_eps,
        )
        return (jnp.asarray(radius, s.dtype) * s).astype(like.dtype)

    def update_fn(updates, state, params=None):
        del params
        if light:
            d = updates
        else:
            d = jax.tree.map(
                lambda g, m: (
                    g
                    if _is_masked(g)
                    else ((1 - momentum) * m + momentum * g.astype(m.dtype)).astype(m.dtype)
                ),
                updates,
                state.mu,
                is_leaf=_is_masked,
            )
        if batch_matrices:
            out = _batched_lmo(lmo, d, updates, norm, dimension_numbers)
        else:
            out = jax.tree.map(
                lambda dd, g: g if _is_masked(g) else lmo(dd, g), d, updates, is_leaf=_is_masked
            )
        count = optax.safe_increment(state.count)
        return out, ScionState(count=count, mu=None if light else d)

    return optax.GradientTransformation(init_fn, update_fn)


def _batched_lmo(lmo, d, updates, norm, dimension_numbers):
    """``lmo`` leaf-wise, with 2-D spectral leaves of equal shape/dtype stacked into one call."""
    d_leaves, treedef = jax.tree.flatten(d, is_leaf=_is_masked)
    g_leaves = treedef.flatten_up_to(updates)
    out: list[Any] = [None] * len(d_leaves)
    buckets: dict[tuple, list[int]] = {}
    for i, (dd, g) in enumerate(zip(d_leaves, g_leaves)):
        if _is_masked(g):
            out[i] = g
            continue
        spectral_2d = (
            norm in ("auto", "spectral")
            and dd.ndim == 2
            and (dimension_numbers is None or dimension_numbers(tuple(dd.shape)) is None)
        )
        if spectral_2d:
            buckets.setdefault((dd.shape, dd.dtype, g.dtype), []).append(i)
        else:
            out[i] = lmo(dd, g)
    for idx in buckets.values():
        if len(idx) == 1:
            out[idx[0]] = lmo(d_leaves[idx[0]], g_leaves[idx[0]])
            continue
        stacked = lmo(jnp.stack([d_leaves[i] for i in idx]), g_leaves[idx[0]], stacked=True)
        for j, i in enumerate(idx):
            out[i] = stacked[j]
    return treedef.unflatten(out)


def light_accumulator(previous_grads: Any, momentum: float | jax.Array) -> Any:
    r"""Initial gradient-accumulation carry of the memory-lean mode: :math:`(1-\alpha)\,d_{prev}`.

    Add this step's (micro-batch) gradients onto it and pass the sum to ``scion(..., light=True)``.
    At the first step pass zeros (``optax.tree.zeros_like(params)``).
    """
    return jax.tree.map(lambda d: (1 - momentum) * d, previous_grads)


# ============================================================================================
# Labels
# ============================================================================================
EMBEDDING_PATTERNS = ("embed", "wte", "wpe", "tok_emb", "token_emb")
HEAD_PATTERNS = ("lm_head", "head", "classifier", "unembed", "logits")


def default_labels(
    params: Any,
    *,
    overrides: Mapping[str, str] | None = None,
    embedding_patterns: Sequence[str] = EMBEDDING_PATTERNS,
    head_patterns: Sequence[str] = HEAD_PATTERNS,
) -> Any:
    """Labels every leaf of ``params`` (any pytree, ``nnx.State`` included) with a Scion group.

    Rules, first match wins, on the lower-cased ``jax.tree_util.keystr`` of the leaf's path:

    1. ``overrides``: ``{regex: label}`` (e.g. ``{r"lm_head": "embedding"}`` for a tied table);
    2. 0-D and 1-D leaves (biases, norm gains, scalars) → ``"bias"``;
    3. a path containing one of ``head_patterns`` → ``"head"``;
    4. a 2-D leaf whose path contains one of ``embedding_patterns`` → ``"embedding"`` (conv
       patch embeddings stay ``"hidden"``, the official DeiT recipe);
    5. everything else → ``"hidden"``.

    Returns:
      A pytree of strings with the structure of ``params`` (pass it, or this function, as
      ``param_labels`` to :func:`scion`).
    """
    rules = [(re.compile(k), v) for k, v in (overrides or {}).items()]

    def label(path, leaf):
        key = jax.tree_util.keystr(path).lower()
        for rx, lab in rules:
            if rx.search(key):
                return lab
        ndim = np.ndim(leaf)
        if ndim <= 1:
            return "bias"
        if any(p in key for p in head_patterns):
            return "head"
        if ndim == 2 and any(p in key for p in embedding_patterns):
            return "embedding"
        return "hidden"

    return jax.tree_util.tree_map_with_path(label, params)


# ============================================================================================
# Aliases
# ============================================================================================
def _scion(
    learning_rate,
    *,
    unconstrained,
    momentum,
    groups,
    param_labels,
    light,
    ns_steps,
    ns_coeffs,
    ns_dtype,
    mu_dtype,
    batch_matrices,
):
    groups = dict(DEFAULT_GROUPS if groups is None else groups)
    if not groups:
        raise ValueError("groups: at least one group is needed")
    for name, grp in groups.items():
        if not isinstance(grp, ScionGroup):
            raise ValueError(f"groups[{name!r}]: expected a ScionGroup, got {type(grp).__name__}")
    given = default_labels if param_labels is None else param_labels

    def labels(params):
        tree = given(params) if callable(given) else given
        missing = sorted({lab for lab in jax.tree.leaves(tree) if lab not in groups})
        if missing:
            raise ValueError(
                f"param_labels: label(s) {missing} have no group; groups are {sorted(groups)}"
            )
        return tree

    transforms = {}
    for name, grp in groups.items():
        parts = [
            scale_by_scion(
                grp.norm,
                grp.radius,
                momentum=momentum,
                light=light,
                normalized=grp.normalized,
                clip_max=grp.clip_max,
                dimension_numbers=grp.dimension_numbers,
                ns_steps=ns_steps,
                ns_coeffs=ns_coeffs,
                ns_dtype=ns_dtype,
                mu_dtype=mu_dtype,
                batch_matrices=batch_matrices,
            )
        ]
        if not unconstrained:
            parts.append(optax.add_decayed_weights(1.0))
        transforms[name] = optax.chain(*parts)
    return optax.chain(
        optax.partition(transforms, labels), optax.scale_by_learning_rate(learning_rate)
    )


def scion(
    learning_rate: optax.ScalarOrSchedule,
    *,
    momentum: float | jax.Array = 0.1,
    groups: Mapping[str, Any] | None = None,
    param_labels: Any = None,
    light: bool = False,
    ns_steps: int | None = None,
    ns_coeffs: str | Sequence[Sequence[float]] = "standard",
    ns_dtype: Any = None,
    mu_dtype: Any = None,
    batch_matrices: bool = True,
) -> optax.GradientTransformation:
    r"""Scion (constrained, SCG): :math:`x \leftarrow (1-\gamma) x - \gamma \rho_{g} S_{g}(d)` per group g.

    Args:
      learning_rate: γ (a float or an optax schedule), also the decay rate of the weights.
      momentum: α of the gradient average :math:`d \leftarrow (1-\alpha)d + \alpha g`.
      groups: ``{label: ScionGroup(norm, radius, ...)}`` (default :data:`DEFAULT_GROUPS`).
      param_labels: pytree of labels matching the params, or a function of the params returning
        one (default :func:`default_labels`). Every label must be a key of ``groups``.
      light: memory-lean mode (see :func:`scale_by_scion`).
      ns_steps, ns_coeffs, ns_dtype: Newton–Schulz settings.
      mu_dtype: momentum dtype.
      batch_matrices: batch the Newton–Schulz of equal-shaped matrices (see
        :func:`scale_by_scion`).

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> params = {"embed": {"embedding": jnp.ones((10, 4))},
        ...           "dense": {"kernel": jnp.eye(4), "bias": jnp.zeros(4)},
        ...           "head": {"kernel": jnp.ones((4, 10))}}
        >>> opt = scion(0.01)
        >>> state = opt.init(params)
        >>> grads = jax.tree.map(jnp.ones_like, params)
        >>> updates, state = opt.update(grads, state, params)
        >>> params = optax.apply_updates(params, updates)
    """
    return _scion(
        learning_rate,
        unconstrained=False,
        momentum=momentum,
        groups=groups,
        param_labels=param_labels,
        light=light,
        ns_steps=ns_steps,
        ns_coeffs=ns_coeffs,
        ns_dtype=ns_dtype,
        mu_dtype=mu_dtype,
        batch_matrices=batch_matrices,
    )


def unconstrained_scion(
    learning_rate: optax.ScalarOrSchedule,
    *,
    momentum: float | jax.Array = 0.1,
    groups: Mapping[str, Any] | None = None,
    param_labels: Any = None,
    light: bool = False,
    ns_steps: int | None = None,
    ns_coeffs: str | Sequence[Sequence[float]] = "standard",
    ns_dtype: Any = None,
    mu_dtype: Any = None,
    batch_matrices: bool = True,
) -> optax.GradientTransformation:
    r"""Unconstrained Scion (uSCG): :math:`x \leftarrow x - \gamma \rho_{g} S_{g}(d)` per group g.

    With ``momentum=1`` and the sign LMO this is signSGD; with the spectral LMO it is Muon without
    Nesterov momentum. Arguments as in :func:`scion`.
    """
    return _scion(
        learning_rate,
        unconstrained=True,
        momentum=momentum,
        groups=groups,
        param_labels=param_labels,
        light=light,
        ns_steps=ns_steps,
        ns_coeffs=ns_coeffs,
        ns_dtype=ns_dtype,
        mu_dtype=mu_dtype,
        batch_matrices=batch_matrices,
    )


# ============================================================================================
# Initialisation on the boundary of each ball
# ============================================================================================
def _orthogonal(key, shape, dtype):
    """Haar-random semi-orthogonal matrices: the polar factor of a Gaussian matrix.

    Computed by Newton–Schulz to convergence (16 quintic steps lift small singular values, then
    8 cubic steps X <- 1.5 X - 0.5 X X^T X converge to 1) rather than by a LAPACK QR: under
    ``vmap`` on XLA:CPU, concurrent LAPACK calls can deadlock in a multithreaded OpenBLAS.
    """
    m, n = shape[-2], shape[-1]
    g = jax.random.normal(key, (*shape[:-2], min(m, n), max(m, n)), jnp.float32)
    x = newton_schulz(g, steps=16, dtype=jnp.float32)
    for _ in range(8):
        x = 1.5 * x - 0.5 * (x @ jnp.swapaxes(x, -1, -2)) @ x
    x = x if m <= n else jnp.swapaxes(x, -1, -2)
    return x.astype(dtype)


def scion_init(
    key: jax.Array,
    params: Any,
    *,
    groups: Mapping[str, Any] | None = None,
    param_labels: Any = None,
) -> Any:
    """New parameters on the boundary of each group's ball, times its radius (official ``init``).

    Spectral: orthogonal × √(d_out/d_in) (per stacked layer; per tap for convs, scaled like the
    conv LMO); sign: ±1/d_in; colnorm: Gaussian rows at RMS 1; rownorm: Gaussian columns at norm
    1/√d_in; each then multiplied by the group's radius. ``bias_rms`` leaves (biases, norm gains)
    keep the values given: the official code zeroes biases, which Flax already does, and zeroed
    norm gains would switch a layer off.
    """
    groups = dict(DEFAULT_GROUPS if groups is None else groups)
    labels = (
        default_labels(params)
        if param_labels is None
        else (param_labels(params) if callable(param_labels) else param_labels)
    )
    leaves, treedef = jax.tree.flatten(params)
    label_leaves = treedef.flatten_up_to(labels)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, p, lab in zip(keys, leaves, label_leaves):
        grp = groups[lab]
        kind = _resolve_kind(grp.norm, p.shape, has_dims=False)
        if kind == "bias_rms":
            out.append(p)  # biases and norm gains keep their own initialisation
            continue
        if kind == "spectral":
            nz = True if grp.normalized is None else grp.normalized
            scale = spectral_scale(p.shape[-2], p.shape[-1], normalized=nz, clip_max=grp.clip_max)
            w = _orthogonal(k, p.shape, p.dtype) * scale
        elif kind == "spectral_conv":
            w = _orthogonal(k, p.shape, p.dtype) * conv_scale(p.shape)
        elif kind == "sign":
            nz = True if grp.normalized is None else grp.normalized
            w = jax.random.rademacher(k, p.shape, p.dtype) / (p.shape[-2] if nz else 1)
        elif kind == "colnorm":
            w = colnorm_lmo(
                jax.random.normal(k, p.shape, p.dtype),
                **({} if grp.normalized is None else {"normalized": grp.normalized}),
            )
        else:  # rownorm
            w = rownorm_lmo(
                jax.random.normal(k, p.shape, p.dtype),
                **({} if grp.normalized is None else {"normalized": grp.normalized}),
            )
        out.append((w * grp.radius).astype(p.dtype))
    return treedef.unflatten(out)

r"""SPD's features: top-k surprisals of the first r generated positions (Candogan, Wu, Abad
Rocamora, Chrysos, Cevher, *Single-Pass Detection of Jailbreaking Input in Large Language Models*,
arXiv 2502.15435).

At each of the first :math:`r` output positions :math:`i` of a greedy decode, the model returns a
vector of log-probabilities :math:`\ell_i` — the whole vocabulary's log-softmax for an open model,
or the few ``top_logprobs`` an API returns. SPD re-normalises it with a softmax over the entries it
has, sorts, and keeps the :math:`k` largest probabilities as surprisals:

.. math::
   h_{i,j} = -\log \operatorname{softmax}(\ell_i)_{(j)}, \qquad i = 1..r,\; j = 1..k,

(:math:`(j)`: the j-th largest). With the full vocabulary the softmax of a log-softmax is the
identity, so :math:`h` is the sorted top-k :math:`-\log p`; with an API's top-5 it re-normalises
over those five (the paper's partial-logit variant: nothing else changes). Any per-row constant
shift of :math:`\ell_i` (raw logits instead of log-probs) gives the same features.

**Short outputs.** A decode that stops before :math:`r` tokens has no distribution at the later
positions. The official notebook pads them with zeros, which the softmax turns into a uniform
distribution — a silent, fake feature. Here the caller passes the number of generated positions
(``lengths``); missing positions get the value ``fill`` and ``valid = False``, and
:func:`feature_vector` appends the validity mask so a classifier sees the length explicitly.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["SPDFeatures", "feature_vector", "features_from_generation", "surprisal_features"]


class SPDFeatures(NamedTuple):
    """Attributes:
    values: ``(..., r, k)`` surprisals, ascending along ``k``; ``fill`` where not ``valid``.
    valid: ``(..., r)`` whether the position was generated.
    """

    values: jax.Array
    valid: jax.Array


def _check_int(name: str, value: object, upper: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if value > upper:
        raise ValueError(f"{name}: expected <= {upper} ({what}), got {value}")


def surprisal_features(
    logprobs: ArrayLike,
    *,
    r: int,
    k: int,
    lengths: ArrayLike | None = None,
    fill: float = 0.0,
) -> SPDFeatures:
    """SPD's ``(r, k)`` surprisal features.

    Args:
      logprobs: ``(..., T, V)`` log-probabilities (or logits) per output position, ``T >= r``;
        ``V`` is the vocabulary, or the number of candidates an API returned (``V >= k``).
        Entries at ``-inf`` (candidates an API did not return) are allowed.
      r: output positions used (the first ``r``).
      k: candidates kept per position.
      lengths: ``(...,)`` generated positions per sequence; positions ``>= lengths`` are
        invalid. None: all ``T`` positions are generated.
      fill: the value of invalid positions.
    """
    lp = jnp.asarray(logprobs)
    if lp.ndim < 2 or not jnp.issubdtype(lp.dtype, jnp.floating):
        raise ValueError(
            f"logprobs: expected a float array (..., positions, candidates), got {lp.dtype}{lp.shape}"
        )
    _check_int("r", r, lp.shape[-2], f"logprobs has {lp.shape[-2]} positions")
    _check_int("k", k, lp.shape[-1], f"logprobs has {lp.shape[-1]} candidates")
    h = -jax.nn.log_softmax(lp[..., :r, :], axis=-1)
    top = -jax.lax.top_k(-h, k)[0]  # the k smallest surprisals = the k largest probabilities
    positions = jnp.arange(r)
    if lengths is None:
        valid = jnp.ones((*lp.shape[:-2], r), bool)
    else:
        n = jnp.asarray(lengths)
        if n.shape != lp.shape[:-2] or not jnp.issubdtype(n.dtype, jnp.integer):
            raise ValueError(
                f"lengths: expected integers of shape {lp.shape[:-2]}, got {n.dtype}{n.shape}"
            )
        valid = positions < n[..., None]
    return SPDFeatures(jnp.where(valid[..., None], top, fill), valid)


def feature_vector(features: SPDFeatures) -> jax.Array:
    """``(..., r·k + r)``: the surprisals flattened row by row, then the validity mask (0/1)."""
    values, valid = features
    flat = values.reshape(*values.shape[:-2], -1)
    return jnp.concatenate([flat, valid.astype(flat.dtype)], axis=-1)


def features_from_generation(output: Any, *, r: int, k: int, fill: float = 0.0) -> SPDFeatures:
    """SPD features of a greedy decode from :func:`lions_jax.models.generate` (a
    ``TransformerLM`` with its KV cache) or :func:`lions_jax.models.generate_uncached` (any
    ``apply_fn``), called with ``return_logprobs=True`` (and ``eos_id`` to mark short outputs):
    positions after a row's end-of-sequence token are invalid."""
    if getattr(output, "logprobs", None) is None:
        raise ValueError("output: expected a GenerationOutput with logprobs (return_logprobs=True)")
    return surprisal_features(output.logprobs, r=r, k=k, lengths=output.lengths, fill=fill)

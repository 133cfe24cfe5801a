"""Unlearning objectives as pure functions of per-token log-probabilities.

Every loss here is *minimised*. Inputs are what any JAX language model gives: ``logp`` (batch, T)
holds ``log π_θ(y_t | x, y_<t)`` of the target tokens and ``mask`` (batch, T) marks the answer
tokens that count (the ``output`` of a LUME row; prompt and padding positions are 0). Reference
log-probs (from the frozen target model ``π_ref``) are inputs too, never a model: the losses are
model-agnostic and differentiate only through the arguments computed from ``θ``.

With ``ℓ(θ; x, y) = -log π_θ(y | x) = -Σ_t mask_t · logp_t`` (summed over answer tokens, as in
TOFU and the NPO paper) and F/R the forget/retain batches:

==========  ===========================================================================
``ga``      ``-E_F ℓ``                                          gradient ascent
``gd``      ``-E_F ℓ + λ E_R ℓ``                                 gradient difference
``kl``      ``-E_F ℓ + λ E_R Σ_t KL(π_ref(·|x, y_<t) ‖ π_θ(·|x, y_<t))``
``npo``     ``(2/β) E_F log(1 + (π_θ(y|x)/π_ref(y|x))^β)``       NPO (Zhang et al. 2024)
``npo_gd``  ``npo + λ E_R ℓ``
``simnpo``  ``-(2/β) E_F log σ(-(β/|y|) log π_θ(y|x) - γ) + λ E_R ℓ``  SimNPO
==========  ===========================================================================

NPO is ``-(2/β) E log σ(-β log(π_θ/π_ref))``, written with ``softplus`` for stability. At
``π_θ = π_ref`` it equals ``(2/β) log 2`` per example, and its gradient equals the GA gradient:
``∇ L_NPO = E_F[W_θ ∇ log π_θ(y|x)]`` with ``W_θ = 2 π_θ^β / (π_θ^β + π_ref^β)`` = 1 there
(NPO paper, Zhang, Lin, Bai, Mei 2024, arXiv 2404.05868, §4). As ``β → 0`` NPO tends to GA.

SimNPO (Fan, Liu, Lin, Jia, Zhang, Mei, Liu 2024, arXiv 2410.07163) drops the reference model
and normalises by answer length: ``-(2/β) E_F log σ(-(β/|y|) log π_θ(y|x) - γ)``. It is the
"stronger than the LUME paper's four" method of this package (with a retain NLL term, as in
its paper): NPO's reference ratio makes the per-example weight ``W_θ`` vanish once an example is
forgotten *relative to π_ref*, which for long memorised answers (LUME's stories) happens while
the absolute likelihood is still high; SimNPO's length-normalised, reference-free margin keeps
pushing until the per-token likelihood itself is low.
"""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "LOSSES",
    "ga_loss",
    "gd_loss",
    "kl_divergence",
    "kl_loss",
    "nll",
    "npo_gd_loss",
    "npo_loss",
    "sequence_logprob",
    "simnpo_loss",
]

#: Names of the unlearning objectives (``UnlearnConfig.algorithm``).
LOSSES: tuple[str, ...] = ("ga", "gd", "kl", "npo", "npo_gd", "simnpo")


def _check(name: str, logp: jax.Array, mask: jax.Array) -> None:
    if logp.ndim != 2:
        raise ValueError(
            f"{name}: expected per-token log-probs of shape (batch, T), got {logp.shape}"
        )
    if mask.shape != logp.shape:
        raise ValueError(
            f"{name} mask: expected the shape of {name} {logp.shape}, got {mask.shape}"
        )


def _check_positive(name: str, value: ArrayLike) -> None:
    """Validates a concrete hyperparameter (traced ones, e.g. a swept β, are the caller's)."""
    if isinstance(value, int | float) and not value > 0:
        raise ValueError(f"{name}: expected > 0, got {value}")


def sequence_logprob(logp: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``log π(y|x) = Σ_t mask_t · logp_t`` per row, shape (batch,)."""
    logp, mask = jnp.asarray(logp), jnp.asarray(mask)
    _check("logp", logp, mask)
    return jnp.sum(jnp.where(mask, logp, 0.0), axis=-1)


def nll(logp: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``E ℓ``: the mean over rows of the summed answer NLL (the retain / fine-tuning loss)."""
    return -jnp.mean(sequence_logprob(logp, mask))


def ga_loss(forget_logp: ArrayLike, forget_mask: ArrayLike) -> jax.Array:
    """Gradient ascent: ``-E_F ℓ`` (minimising it raises the forget NLL)."""
    return -nll(forget_logp, forget_mask)


def gd_loss(
    forget_logp: ArrayLike,
    forget_mask: ArrayLike,
    retain_logp: ArrayLike,
    retain_mask: ArrayLike,
    lam: ArrayLike = 1.0,
) -> jax.Array:
    """Gradient difference: ``-E_F ℓ + λ E_R ℓ`` (λ = 1 as in TOFU)."""
    return ga_loss(forget_logp, forget_mask) + lam * nll(retain_logp, retain_mask)


def kl_divergence(ref_logits: ArrayLike, logits: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``E_R Σ_t KL(π_ref(·|·) ‖ π_θ(·|·))`` over the masked positions.

    Args:
      ref_logits, logits: (batch, T, vocab) next-token logits of π_ref and π_θ at the positions of
        ``mask``'s columns (any normalisation: both are log-softmaxed here, in at least float32).
      mask: (batch, T) positions that count.
    """
    ref_logits, logits, mask = jnp.asarray(ref_logits), jnp.asarray(logits), jnp.asarray(mask)
    if logits.shape != ref_logits.shape or logits.ndim != 3:
        raise ValueError(
            f"logits: expected (batch, T, vocab) like ref_logits {ref_logits.shape}, got {logits.shape}"
        )
    if mask.shape != logits.shape[:2]:
        raise ValueError(f"mask: expected shape {logits.shape[:2]}, got {mask.shape}")
    dtype = jnp.promote_types(logits.dtype, jnp.float32)  # at least float32
    ref = jax.nn.log_softmax(ref_logits.astype(dtype), axis=-1)
    cur = jax.nn.log_softmax(logits.astype(dtype), axis=-1)
    kl = jnp.sum(jnp.exp(ref) * (ref - cur), axis=-1)
    return jnp.mean(jnp.sum(jnp.where(mask, kl, 0.0), axis=-1))


def kl_loss(
    forget_logp: ArrayLike,
    forget_mask: ArrayLike,
    retain_ref_logits: ArrayLike,
    retain_logits: ArrayLike,
    retain_mask: ArrayLike,
    lam: ArrayLike = 1.0,
) -> jax.Array:
    """KL-regularised GA: ``-E_F ℓ + λ E_R Σ_t KL(π_ref ‖ π_θ)`` (λ = 1 in TOFU / LUME)."""
    return ga_loss(forget_logp, forget_mask) + lam * kl_divergence(
        retain_ref_logits, retain_logits, retain_mask
    )


def npo_loss(
    forget_logp: ArrayLike,
    forget_ref_logp: ArrayLike,
    forget_mask: ArrayLike,
    beta: ArrayLike = 0.1,
) -> jax.Array:
    """NPO: ``-(2/β) E_F log σ(-β (log π_θ(y|x) - log π_ref(y|x)))``.

    ``(2/β) log 2`` at ``π_θ = π_ref``, where its gradient equals :func:`ga_loss`'s.

    >>> import jax.numpy as jnp
    >>> lp = jnp.log(jnp.array([[0.5, 0.25]])); m = jnp.ones((1, 2), bool)
    >>> float(npo_loss(lp, lp, m, beta=0.1)) == float(2 / 0.1 * jnp.log(2.0))
    True
    """
    _check_positive("beta", beta)
    ratio = sequence_logprob(forget_logp, forget_mask) - sequence_logprob(
        forget_ref_logp, forget_mask
    )
    return (2.0 / beta) * jnp.mean(jax.nn.softplus(beta * ratio))


def npo_gd_loss(
    forget_logp: ArrayLike,
    forget_ref_logp: ArrayLike,
    forget_mask: ArrayLike,
    retain_logp: ArrayLike,
    retain_mask: ArrayLike,
    beta: ArrayLike = 0.1,
    lam: ArrayLike = 1.0,
) -> jax.Array:
    """NPO with the gradient-difference retain term: ``npo + λ E_R ℓ``."""
    return npo_loss(forget_logp, forget_ref_logp, forget_mask, beta) + lam * nll(
        retain_logp, retain_mask
    )


def simnpo_loss(
    forget_logp: ArrayLike,
    forget_mask: ArrayLike,
    retain_logp: ArrayLike,
    retain_mask: ArrayLike,
    beta: ArrayLike = 2.5,
    gamma: ArrayLike = 0.0,
    lam: ArrayLike = 1.0,
) -> jax.Array:
    """SimNPO + retain NLL: ``-(2/β) E_F log σ(-(β/|y|) log π_θ(y|x) - γ) + λ E_R ℓ``.

    ``|y|`` is the number of answer tokens. The SimNPO paper tunes β, γ and λ per benchmark; the
    defaults here (β = 2.5, γ = 0, λ = 1, the retain weight of the other methods) are this
    package's choice, not a value quoted from the paper.
    """
    _check_positive("beta", beta)
    forget_mask = jnp.asarray(forget_mask)
    length = jnp.maximum(jnp.sum(forget_mask, axis=-1), 1).astype(jnp.float32)
    margin = beta * sequence_logprob(forget_logp, forget_mask) / length + gamma
    forget = (2.0 / beta) * jnp.mean(jax.nn.softplus(margin))
    return forget + lam * nll(retain_logp, retain_mask)

"""2:4 sparsity via a proximal operator (Kübler et al., arXiv 2501.18015).

* :mod:`~lions_jax.sparse24.core` — the exact prox of the 2:4 regulariser (:func:`prox_24`),
  N:M masks (:func:`nm_mask`, :func:`is_nm_sparse`);
* :mod:`~lions_jax.sparse24.layer` — one layer: :func:`prune_layer` with the matrix prox pruner,
  SparseGPT, Wanda and magnitude, masked refinement (GD/CG) and the exact masked least squares;
* :mod:`~lions_jax.sparse24.pipeline` — sequential pruning of a whole NNX model
  (:func:`prune_model`) with calibration inputs propagated through the already-pruned layers.

Groups of 4 run along the input axis: axis 0 of a Flax ``(d_in, d_out)`` kernel. JAX has no 2:4
sparse matmul path on the jax versions tested (see the benchmark): the sparsity here is a mask
and accuracy feature, not a speedup.
"""

from lions_jax.sparse24.core import group_objective, is_nm_sparse, nm_mask, prox_24
from lions_jax.sparse24.layer import (
    METHODS,
    ProxSchedule,
    PruneInfo,
    hessian,
    lipschitz,
    magnitude_scores,
    masked_cg,
    masked_gd,
    masked_lstsq,
    prox_prune,
    prune_layer,
    reconstruction_error,
    sparsegpt_prune,
    wanda_scores,
)

__all__ = [
    "METHODS",
    "ProxSchedule",
    "PruneInfo",
    "group_objective",
    "hessian",
    "is_nm_sparse",
    "lipschitz",
    "magnitude_scores",
    "masked_cg",
    "masked_gd",
    "masked_lstsq",
    "nm_mask",
    "prox_24",
    "prox_prune",
    "prune_layer",
    "reconstruction_error",
    "sparsegpt_prune",
    "wanda_scores",
]

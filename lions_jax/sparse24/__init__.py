"""2:4 sparsity via a proximal operator (arXiv 2501.18015): prox, N:M masks.

Work in progress (issue 5): the pruners (``prune_layer``), the model pipeline, experiment and
benchmark are still to come.
"""

from lions_jax.sparse24.core import group_objective, is_nm_sparse, nm_mask, prox_24

__all__ = ["group_objective", "is_nm_sparse", "nm_mask", "prox_24"]

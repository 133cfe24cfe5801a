"""Scion: LMO-based optimizers uSCG / SCG as optax transforms (arXiv 2502.07529).

Official code: https://github.com/LIONS-EPFL/scion
"""

from lions_jax.scion.core import (
    NS_COEFFS,
    ScionDimensionNumbers,
    bias_rms_lmo,
    colnorm_lmo,
    conv_scale,
    default_ns_dtype,
    dual_norm,
    lmo_norm,
    newton_schulz,
    rownorm_lmo,
    sign_lmo,
    spectral_conv_lmo,
    spectral_lmo,
    spectral_scale,
)
from lions_jax.scion.transform import (
    DEFAULT_GROUPS,
    ScionGroup,
    ScionState,
    apply_lmo,
    default_labels,
    light_accumulator,
    scale_by_scion,
    scion,
    scion_init,
    unconstrained_scion,
)

__all__ = [
    "DEFAULT_GROUPS",
    "NS_COEFFS",
    "ScionDimensionNumbers",
    "ScionGroup",
    "ScionState",
    "apply_lmo",
    "bias_rms_lmo",
    "colnorm_lmo",
    "conv_scale",
    "default_labels",
    "default_ns_dtype",
    "dual_norm",
    "light_accumulator",
    "lmo_norm",
    "newton_schulz",
    "rownorm_lmo",
    "scale_by_scion",
    "scion",
    "scion_init",
    "sign_lmo",
    "spectral_conv_lmo",
    "spectral_lmo",
    "spectral_scale",
    "unconstrained_scion",
]

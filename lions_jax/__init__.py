"""lions_jax: JAX-native, functional implementations of methods from EPFL's LIONS lab."""

__version__ = "0.1.0"

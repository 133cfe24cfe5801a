"""Private utilities shared by every lions_jax subpackage (not part of the public API)."""

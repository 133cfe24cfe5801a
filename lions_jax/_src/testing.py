"""Test utilities: fp64 contexts, explicit-tolerance comparisons, compilation counters.

These are used by the test suite and are safe to use from downstream projects' tests.
"""

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.monitoring
import numpy as np

__all__ = [
    "CompileCounter",
    "assert_no_recompile",
    "assert_rel_close",
    "assert_trees_all_close",
    "count_compilations",
    "enable_x64",
    "raises_invalid",
    "rel_error",
]

# Event recorded once per lowering of a jaxpr to an XLA module, i.e. once per (re)compilation,
# whether or not the persistent compilation cache then skips the backend compile.
_LOWERING_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"


@contextlib.contextmanager
def enable_x64(enabled: bool = True) -> Iterator[None]:
    """Context in which JAX creates float64/int64 arrays by default (for fp64 reference checks)."""
    with jax.enable_x64(enabled):
        yield


def rel_error(actual: Any, expected: Any) -> float:
    r"""Relative error in the Frobenius norm, :math:`\|a - e\| / \|e\|` (absolute error if ``e == 0``).

    Computed in float64 on the host, so it does not itself lose precision.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"shape mismatch: actual {a.shape} vs expected {e.shape}")
    num = float(np.linalg.norm((a - e).ravel()))
    den = float(np.linalg.norm(e.ravel()))
    return num / den if den > 0 else num


def assert_rel_close(actual: Any, expected: Any, *, rtol: float, err_msg: str = "") -> None:
    """Asserts ``rel_error(leaf_a, leaf_e) <= rtol`` for every leaf of two pytrees of the same structure.

    Use this for comparing numerical forms of the same computation (e.g. fp64 equivalence at
    ``rtol=1e-10``); ``rtol`` is mandatory so every test states its tolerance.
    """
    la, ta = jax.tree.flatten(actual)
    le, te = jax.tree.flatten(expected)
    if ta != te:
        raise AssertionError(f"tree structures differ: {ta} vs {te}")
    for i, (a, e) in enumerate(zip(la, le)):
        err = rel_error(a, e)
        if not err <= rtol:  # also catches NaN
            raise AssertionError(f"leaf {i}: relative error {err:.3e} > rtol {rtol:.1e}. {err_msg}")


def assert_trees_all_close(actual: Any, expected: Any, *, rtol: float, atol: float) -> None:
    """Element-wise ``np.testing.assert_allclose`` over two pytrees, with explicit tolerances."""
    la, ta = jax.tree.flatten(actual)
    le, te = jax.tree.flatten(expected)
    if ta != te:
        raise AssertionError(f"tree structures differ: {ta} vs {te}")
    for i, (a, e) in enumerate(zip(la, le)):
        a, e = _to_numpy(a), _to_numpy(e)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"leaf {i}")


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    x = np.asarray(x)
    if x.dtype.kind == "V" or str(x.dtype) == "bfloat16":
        x = x.astype(np.float32)
    return x


@contextlib.contextmanager
def raises_invalid(match: str) -> Iterator[None]:
    """Expects bad input to be rejected: a ``ValueError`` matching ``match``, or a jaxtyping
    ``TypeCheckError`` when the runtime annotation check (enabled in the test suite) fires first.
    """
    import re

    from jaxtyping import TypeCheckError

    try:
        yield
    except TypeCheckError:
        return
    except ValueError as e:
        if not re.search(match, str(e)):
            raise AssertionError(f"ValueError {str(e)!r} does not match {match!r}") from e
        return
    raise AssertionError(f"expected a ValueError matching {match!r}; nothing was raised")


@dataclasses.dataclass
class CompileCounter:
    """Number of jaxpr lowerings (compilations) seen inside :func:`count_compilations`."""

    count: int = 0


@contextlib.contextmanager
def count_compilations() -> Iterator[CompileCounter]:
    """Counts every compilation that happens inside the ``with`` block.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> f = jax.jit(lambda x: 2 * x)
        >>> x = jnp.ones(3)
        >>> _ = f(x)
        >>> with count_compilations() as c:
        ...     _ = f(x)
        >>> c.count
        0
    """
    counter = CompileCounter()

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        del duration, kwargs
        if event == _LOWERING_EVENT:
            counter.count += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def assert_no_recompile(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Calls ``fn(*args, **kwargs)`` twice and asserts the second call compiles nothing.

    Catches the classic causes of silent recompilation: weak-typed or dtype-changing state, Python
    scalars that should be arrays, and pytrees whose structure changes between calls. To check that
    a *returned* state can be fed back without recompiling, pass a closure that does that.

    Returns:
      The output of the second call.
    """
    out = fn(*args, **kwargs)
    jax.block_until_ready(out)
    with count_compilations() as counter:
        out = fn(*args, **kwargs)
        jax.block_until_ready(out)
    if counter.count:
        raise AssertionError(f"second call compiled {counter.count} computation(s); expected 0")
    return out

"""Networks as ``(init, apply)`` pairs on plain parameter pytrees, and the tanh-Gaussian policy.

A :class:`Network` is brax's ``FeedForwardNetwork`` contract: ``init(key) -> params`` and
``apply(params, *inputs) -> outputs``, so an ensemble is ``jax.vmap(init)(keys)`` and
``jax.vmap(apply)`` over the stacked parameters (sbx's ``VectorCritic`` pattern, without a
module system). :func:`mlp` builds the layers exactly like :class:`lions_jax.models.MLP`
(``nnx.Linear``: kernels ``(in, out)`` with LeCun-normal init, zero biases), as a list of
``{"kernel", "bias"}`` dicts.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

__all__ = [
    "LOG_STD_MAX",
    "LOG_STD_MIN",
    "Network",
    "SACNetworks",
    "make_sac_networks",
    "mlp",
    "tanh_gaussian_log_prob",
    "tanh_gaussian_sample",
]

# The log-std clamp of the SOAR/SpinningUp SAC actor.
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class Network(NamedTuple):
    """``init(key) -> params`` and ``apply(params, *inputs) -> outputs`` (pure)."""

    init: Callable[[Any], Any]
    apply: Callable[..., jax.Array]


def mlp(
    in_size: int,
    hidden: Sequence[int],
    out_size: int,
    *,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
) -> Network:
    """A fully connected network; ``apply(params, x)`` maps ``(*batch, in_size) -> (*batch, out)``."""
    widths = [int(in_size), *(int(h) for h in hidden), int(out_size)]
    if any(w < 1 for w in widths):
        raise ValueError(f"mlp: widths must be positive, got {widths}")
    kernel_init = nnx.initializers.lecun_normal()

    def init(key: Any) -> list[dict[str, jax.Array]]:
        keys = jax.random.split(key, len(widths) - 1)
        return [
            {"kernel": kernel_init(k, (a, b), jnp.float32), "bias": jnp.zeros((b,), jnp.float32)}
            for k, a, b in zip(keys, widths[:-1], widths[1:])
        ]

    def apply(params: Any, x: ArrayLike) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape[-1] != widths[0]:
            raise ValueError(f"mlp: expected inputs with last axis {widths[0]}, got {x.shape}")
        for layer in params[:-1]:
            x = activation(x @ layer["kernel"] + layer["bias"])
        return x @ params[-1]["kernel"] + params[-1]["bias"]

    return Network(init, apply)


class SACNetworks(NamedTuple):
    """``actor.apply(p, obs) -> (mean, log_std)``; ``critic.apply(p, obs, action) -> q``."""

    actor: Network
    critic: Network
    obs_size: int
    action_size: int


def make_sac_networks(
    obs_size: int,
    action_size: int,
    *,
    hidden: Sequence[int] = (256, 256),
    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
) -> SACNetworks:
    """Actor (mean and clamped log-std of a Gaussian before ``tanh``) and one Q-network."""
    actor_mlp = mlp(obs_size, hidden, 2 * action_size, activation=activation)
    critic_mlp = mlp(obs_size + action_size, hidden, 1, activation=activation)

    def actor_apply(params: Any, obs: ArrayLike) -> tuple[jax.Array, jax.Array]:
        mean, log_std = jnp.split(actor_mlp.apply(params, jnp.asarray(obs)), 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def critic_apply(params: Any, obs: ArrayLike, action: ArrayLike) -> jax.Array:
        return critic_mlp.apply(params, jnp.concatenate([obs, action], axis=-1))[..., 0]

    return SACNetworks(
        actor=Network(actor_mlp.init, actor_apply),
        critic=Network(critic_mlp.init, critic_apply),
        obs_size=int(obs_size),
        action_size=int(action_size),
    )


def tanh_gaussian_log_prob(mean: ArrayLike, log_std: ArrayLike, u: ArrayLike) -> jax.Array:
    r"""Log-density of :math:`a = \tanh(u)`, :math:`u \sim \mathcal N(\mu, \sigma^2)`, summed over the last axis.

    Uses :math:`\log(1 - \tanh^2 u) = 2(\log 2 - u - \operatorname{softplus}(-2u))`, exact and
    finite for large :math:`|u|`.
    """
    z = (u - mean) * jnp.exp(-log_std)
    gauss = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(gauss - log_det, axis=-1)


def tanh_gaussian_sample(
    key: Any, mean: ArrayLike, log_std: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """A reparameterised sample ``tanh(mean + std * eps)`` and its log-probability."""
    mean, log_std = jnp.asarray(mean), jnp.asarray(log_std)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(u), tanh_gaussian_log_prob(mean, log_std, u)

r"""Soft actor-critic with an ensemble of L critic pairs, as pure functions.

Critic parameters are stacked on leading axes ``[L, 2]`` (one init key per network). Member
``l`` has its own minibatch (the buffer samples ``(L, B)`` indices) and the plain SAC target on
its *own* pair-min,

.. math::
   y_l = s\,r + \gamma\,d\,\big[\min_j \bar Q_{l,j}(s', a') - \alpha \log\pi(a'|s')\big],
   \quad a' \sim \pi(\cdot|s'),

with reward scale :math:`s` and :math:`d = 1 - \text{terminal}` (a time-limit truncation still
bootstraps). Member loss: :math:`\sum_j \operatorname{mean}_B (Q_{l,j}(s,a) - y_l)^2 - \lambda
\operatorname{mean}_B Q_{l,j}(s,a)` (the SOAR code's critic loss; :math:`\lambda` is its
OPT-AIL optimism term, 0 by default). The members' losses are summed: since each depends only on
its own parameters, one gradient gives every member exactly its own gradient, and one Adam over
the stacked tree *is* an independent Adam per member (Adam is elementwise; the step count is
shared). The actor minimises :math:`\operatorname{mean}_B[\alpha \log\pi(a|s) -
\operatorname{agg}_l q_l(s,a)]` with :math:`q_l = \min_j Q_{l,j}` and a pluggable aggregation
``agg`` over members (default :func:`mean_value`; SOAR uses :func:`optimistic_value`). The actor
uses member 0's minibatch, so with L = 1 an update is exactly standard SAC (critic step, then
actor step on the updated critics, then the temperature step, then Polyak averaging with rate
:math:`\tau`). The temperature is fixed or learned by :math:`-\log\alpha\,(\log\pi + \bar H)`
(Haarnoja et al. 2018b), with target entropy :math:`\bar H = -|A|` by default.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from lions_jax.rl.networks import SACNetworks, tanh_gaussian_sample

__all__ = [
    "SAC",
    "SACState",
    "actor_loss",
    "alpha_loss",
    "critic_loss",
    "ensemble_q",
    "make_sac",
    "mean_value",
    "optimistic_value",
]

Aggregate = Callable[[jax.Array], jax.Array]
Prior = Callable[[jax.Array, jax.Array], jax.Array]


def mean_value(q: ArrayLike) -> jax.Array:
    """Mean over the leading member axis: the default aggregation of pair-mins ``q[L, ...]``."""
    return jnp.mean(q, axis=0)


def optimistic_value(
    q: ArrayLike, beta: Any, sigma: Any, *, ddof: int = 1, sign: float = 1.0
) -> jax.Array:
    r""":math:`\operatorname{mean}_l q_l + \text{sign}\cdot\beta\cdot\operatorname{clip}(\operatorname{std}_l q_l, 0, \sigma)`.

    The SOAR actor's value (reward form, ``sign=+1``; the cost form is ``sign=-1``). ``ddof=1``
    is the unbiased std of the SOAR code, ``ddof=0`` the population std (1/L) of its tabular
    notebook. With a single member (or ``L <= ddof``) the std is defined as 0, so L = 1 gives
    plain SAC. ``beta`` and ``sigma`` may be traced (vmap over a grid). Where all members agree
    the std's gradient is taken as 0 (``jnp.std`` would give NaN).
    """
    q = jnp.asarray(q)
    if q.ndim < 1:
        raise ValueError(f"q: expected a leading member axis, got shape {q.shape}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof}")
    mean = jnp.mean(q, axis=0)
    if q.shape[0] - ddof <= 0:
        return mean
    var = jnp.sum((q - mean) ** 2, axis=0) / (q.shape[0] - ddof)
    # sqrt has an infinite derivative at 0: members that agree exactly (e.g. L copies of one
    # critic) would give NaN gradients. Use the subgradient 0 there instead.
    positive = var > 0
    std = jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)
    return mean + sign * beta * jnp.clip(std, 0.0, sigma)


def ensemble_q(networks: SACNetworks, critic_params: Any, obs: ArrayLike, action: ArrayLike):
    """Q-values of every network of one member ``[2, ...]`` (or any stacked leading axes).

    ``critic_params`` has leading axes ``lead`` (e.g. ``[2]`` or ``[L, 2]``); ``obs``/``action``
    are broadcast over them. Returns ``q`` shaped ``(*lead, *batch)``.
    """
    ref = jax.tree.leaves(jax.eval_shape(networks.critic.init, jax.random.key(0)))[0]
    leaf = jax.tree.leaves(critic_params)[0]
    lead = leaf.shape[: leaf.ndim - len(ref.shape)]
    apply = networks.critic.apply
    for _ in lead:
        apply = jax.vmap(apply, in_axes=(0, None, None))
    return apply(critic_params, obs, action)


def critic_loss(
    key: Any,
    critic_params: Any,
    target_params: Any,
    actor_params: Any,
    batch: dict[str, Any],
    *,
    networks: SACNetworks,
    alpha: Any,
    gamma: Any,
    reward_scale: Any = 1.0,
    opt_lambda: Any = 0.0,
    prior: Prior | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss of one member (a pair, params with leading axis 2) on its own minibatch ``[B]``.

    ``batch`` holds ``obs``, ``action``, ``reward``, ``next_obs`` and ``discount`` (1 - terminal).
    With a ``prior`` the entropy bonus becomes the KL penalty: ``log pi`` is replaced by
    ``log pi - prior(obs, action)``.
    """
    mean, log_std = networks.actor.apply(actor_params, batch["next_obs"])
    next_action, next_log_prob = tanh_gaussian_sample(key, mean, log_std)
    if prior is not None:
        next_log_prob = next_log_prob - prior(batch["next_obs"], next_action)
    next_q = jnp.min(ensemble_q(networks, target_params, batch["next_obs"], next_action), axis=0)
    target = reward_scale * batch["reward"] + gamma * batch["discount"] * (
        next_q - alpha * next_log_prob
    )
    target = jax.lax.stop_gradient(target)
    q = ensemble_q(networks, critic_params, batch["obs"], batch["action"])  # [2, B]
    loss = jnp.sum(jnp.mean((q - target) ** 2, axis=-1)) - opt_lambda * jnp.sum(
        jnp.mean(q, axis=-1)
    )
    return loss, {"q": jnp.mean(q), "target": jnp.mean(target)}


def actor_loss(
    key: Any,
    actor_params: Any,
    critic_params: Any,
    obs: ArrayLike,
    *,
    networks: SACNetworks,
    alpha: Any,
    aggregate: Aggregate = mean_value,
    prior: Prior | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``mean_B[alpha log pi(a|s) - aggregate_l min_j Q_lj(s, a)]`` with ``a ~ pi`` reparameterised.

    ``critic_params`` has leading axes ``[L, 2]``; all members score the same ``obs[B]``. With a
    ``prior``, ``alpha log pi`` becomes ``alpha (log pi - prior(obs, a))`` (KL to the prior).
    """
    mean, log_std = networks.actor.apply(actor_params, obs)
    action, log_prob = tanh_gaussian_sample(key, mean, log_std)
    q = ensemble_q(networks, critic_params, obs, action)  # [L, 2, B]
    pair_min = jnp.min(q, axis=1)  # [L, B]
    value = aggregate(pair_min)
    penalty = log_prob if prior is None else log_prob - prior(obs, action)
    loss = jnp.mean(alpha * penalty - value)
    member_std = jnp.std(pair_min, axis=0) if pair_min.shape[0] > 1 else jnp.zeros_like(value)
    return loss, {
        "log_prob": log_prob,
        "entropy": -jnp.mean(log_prob),
        "q_member_std": jnp.mean(member_std),
    }


def alpha_loss(log_alpha: ArrayLike, log_prob: ArrayLike, target_entropy: Any) -> jax.Array:
    r"""Temperature loss :math:`-\log\alpha\cdot\operatorname{mean}(\log\pi + \bar H)` (log-probs held fixed)."""
    return -log_alpha * jnp.mean(jax.lax.stop_gradient(log_prob) + target_entropy)


class SACState(NamedTuple):
    """Learner state: parameters, target critics, temperature and optimizer states."""

    actor_params: Any
    critic_params: Any  # leading axes [L, 2]
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt_state: Any
    critic_opt_state: Any
    alpha_opt_state: Any
    steps: jax.Array


class SAC(NamedTuple):
    """``init(key) -> SACState``; ``update(key, state, batch) -> (state, metrics)``; ``act``.

    ``update`` takes a batch with leading axes ``[L, B]`` (:func:`~lions_jax.rl.buffer_sample`
    with ``shape=(L, B)``). ``act(key, actor_params, obs, deterministic)`` returns actions in
    ``[-1, 1]`` for any batch of observations.
    """

    init: Callable[[Any], SACState]
    update: Callable[[Any, SACState, dict[str, jax.Array]], tuple[SACState, dict[str, Any]]]
    act: Callable[..., jax.Array]
    networks: SACNetworks
    n_members: int


def make_sac(
    networks: SACNetworks,
    *,
    n_members: int = 1,
    actor_lr: Any = 3e-4,
    critic_lr: Any = 3e-4,
    alpha_lr: Any = 3e-4,
    gamma: Any = 0.99,
    tau: Any = 0.005,
    init_alpha: float = 1.0,
    learn_alpha: bool = True,
    target_entropy: float | None = None,
    reward_scale: Any = 1.0,
    opt_lambda: Any = 0.0,
    aggregate: Aggregate = mean_value,
    prior: Prior | None = None,
) -> SAC:
    """The SAC learner with ``n_members`` critic pairs (see the module docstring).

    Args:
      networks: from :func:`~lions_jax.rl.make_sac_networks`.
      n_members: L, the number of critic pairs.
      actor_lr, critic_lr, alpha_lr: Adam learning rates.
      gamma: discount.
      tau: Polyak rate, ``target <- (1 - tau) target + tau online``.
      init_alpha: initial (or, with ``learn_alpha=False``, fixed) temperature.
      learn_alpha: learn the temperature towards ``target_entropy``.
      target_entropy: default ``-action_size``.
      reward_scale: rewards are multiplied by this in the target.
      opt_lambda: the SOAR code's ``-lambda * mean Q`` critic term (1e-3 there; 0 = plain SAC).
      aggregate: ``q[L, B] -> value[B]`` over members' pair-mins for the actor objective.
      prior: optional ``prior(obs, action) -> log q(a|s)``: the entropy bonus becomes a KL
        penalty to this policy, in the critic target and the actor loss (CSIL's KL-to-BC
        regulariser). The temperature loss is unchanged; use a fixed ``alpha`` with a prior.
    """
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    if not init_alpha > 0:
        raise ValueError(f"init_alpha must be > 0, got {init_alpha}")
    if target_entropy is None:
        target_entropy = -float(networks.action_size)
    actor_opt = optax.adam(actor_lr)
    critic_opt = optax.adam(critic_lr)
    alpha_opt = optax.adam(alpha_lr)

    def init(key: Any) -> SACState:
        k_actor, k_critic = jax.random.split(key)
        actor_params = networks.actor.init(k_actor)
        keys = jax.random.split(k_critic, (n_members, 2))
        critic_params = jax.vmap(jax.vmap(networks.critic.init))(keys)
        log_alpha = jnp.log(jnp.asarray(init_alpha, jnp.float32))
        return SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            log_alpha=log_alpha,
            actor_opt_state=actor_opt.init(actor_params),
            critic_opt_state=critic_opt.init(critic_params),
            alpha_opt_state=alpha_opt.init(log_alpha),
            steps=jnp.zeros((), jnp.int32),
        )

    def update(key: Any, state: SACState, batch: dict[str, Any]) -> tuple[SACState, dict[str, Any]]:
        lead = batch["obs"].shape[:2]
        if batch["obs"].ndim != 3 or lead[0] != n_members:
            raise ValueError(
                f"batch: expected leaves with leading axes (n_members={n_members}, batch), "
                f"got obs of shape {batch['obs'].shape}"
            )
        k_critic, k_actor = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)

        def total_critic_loss(critic_params: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
            member = jax.vmap(
                lambda k, p, tp, b: critic_loss(
                    k,
                    p,
                    tp,
                    state.actor_params,
                    b,
                    networks=networks,
                    alpha=alpha,
                    gamma=gamma,
                    reward_scale=reward_scale,
                    opt_lambda=opt_lambda,
                    prior=prior,
                )
            )
            losses, aux = member(
                jax.random.split(k_critic, n_members),
                critic_params,
                state.target_critic_params,
                batch,
            )
            return jnp.sum(losses), jax.tree.map(jnp.mean, aux)

        (c_loss, c_aux), c_grads = jax.value_and_grad(total_critic_loss, has_aux=True)(
            state.critic_params
        )
        c_updates, critic_opt_state = critic_opt.update(
            c_grads, state.critic_opt_state, state.critic_params
        )
        critic_params = optax.apply_updates(state.critic_params, c_updates)

        def actor_objective(actor_params: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
            return actor_loss(
                k_actor,
                actor_params,
                critic_params,
                batch["obs"][0],
                networks=networks,
                alpha=alpha,
                aggregate=aggregate,
                prior=prior,
            )

        (a_loss, a_aux), a_grads = jax.value_and_grad(actor_objective, has_aux=True)(
            state.actor_params
        )
        a_updates, actor_opt_state = actor_opt.update(
            a_grads, state.actor_opt_state, state.actor_params
        )
        actor_params = optax.apply_updates(state.actor_params, a_updates)

        if learn_alpha:
            t_loss, t_grad = jax.value_and_grad(alpha_loss)(
                state.log_alpha, a_aux["log_prob"], target_entropy
            )
            t_update, alpha_opt_state = alpha_opt.update(t_grad, state.alpha_opt_state)
            log_alpha = optax.apply_updates(state.log_alpha, t_update)
        else:
            t_loss = jnp.zeros(())
            log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt_state

        target = optax.incremental_update(critic_params, state.target_critic_params, tau)
        new_state = SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=target,
            log_alpha=log_alpha,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            alpha_opt_state=alpha_opt_state,
            steps=state.steps + 1,
        )
        metrics = {
            "critic_loss": c_loss / n_members,
            "actor_loss": a_loss,
            "alpha_loss": t_loss,
            "alpha": alpha,
            "entropy": a_aux["entropy"],
            "q": c_aux["q"],
            "q_member_std": a_aux["q_member_std"],
        }
        return new_state, metrics

    def act(key: Any, actor_params: Any, obs: ArrayLike, deterministic: bool = False):
        mean, log_std = networks.actor.apply(actor_params, obs)
        if deterministic:
            return jnp.tanh(mean)
        return tanh_gaussian_sample(key, mean, log_std)[0]

    return SAC(init=init, update=update, act=act, networks=networks, n_members=int(n_members))

r"""Deep IL-SOAR: a primal–dual imitation learner on brax, with or without the optimistic actor.

The outer loop of the SOAR code (Alg. 1 / Alg. 6 of arXiv 2502.19859, spec §2.5), one pure
function of a key. Per outer iteration:

1. **policy player** — ``sac_steps_per_itr`` environment steps of SAC (:mod:`lions_jax.rl`)
   whose every minibatch is relabelled at sample time with the *current* learned reward. SAC,
   its replay buffer and optimizer states persist across iterations. The critics are ``L``
   pairs with the plain SAC target on their own pair-min; the actor maximises
   :math:`\operatorname{mean}_l q_l + \beta\operatorname{clip}(\operatorname{std}_l q_l, 0, \sigma)`
   of the members' pair-mins (:func:`lions_jax.rl.optimistic_value`). ``L = 1`` is the base
   method; ``L = 4, β = 0`` the **ensemble-only** ablation; ``L = 4, β = 1`` SOAR.
2. **reward rollouts** — ``reward_rollouts`` fresh episodes of the stochastic actor (not for
   CSIL, whose reward is fixed). Their environment steps **are counted**: the ``samples``
   metric is every environment step taken (SAC's plus these), unlike the paper's x-axis
   (``env_steps`` is SAC's alone).
3. **cost/reward player** — one step of the base method's reward update:

   * ``mlirl`` / ``mlirl_sa`` (ML-IRL, Zeng et al. 2022): :func:`mlirl_loss`,
     :math:`T\,(\mathbb E_{\text{agent}} r_\theta - \mathbb E_{\text{expert}} r_\theta)` with a
     state-only :math:`r_\theta(s)` or a state-action :math:`r_\theta(s, a)`; Adam with coupled
     L2 weight decay (PyTorch's ``Adam(weight_decay=...)``).
   * ``firl_rkl`` (f-IRL reverse KL, Ni et al. 2020): a discriminator (ResNet-style tanh MLP) is
     trained by logistic regression, expert vs agent states, for ``disc_iters`` steps; its logit
     estimates :math:`\log\rho_E/\rho_\theta(s)`. The state-only reward then takes one step on the
     sample covariance :func:`firl_rkl_loss` between :math:`h(\tau) = -\sum_t
     \log\rho_E/\rho_\theta(s_t)` and :math:`R_\theta(\tau) = \sum_t r_\theta(s_t)` over the agent
     trajectories plus as many resampled expert trajectories (the official code's choice).
   * ``csil`` (coherent soft imitation, Watson et al. 2023): a tanh-Gaussian behaviour-cloning
     policy :math:`q` (the actor's architecture, ``bc_steps`` of maximum likelihood before
     training) defines the fixed reward :math:`\alpha_r(\log q(a|s) - \log p(a))`,
     :math:`p` uniform on :math:`[-1, 1]^{|A|}` (:func:`csil_reward`). This is the SOAR code's
     simplified CSIL. The official CSIL's actor initialised at BC (``csil_actor_init``) and
     KL-to-BC regulariser instead of the entropy bonus (``csil_kl_prior``) are options, off by
     default; the reward is not fine-tuned (as in the SOAR code).

Learned rewards are clipped to ``±reward_clip`` (the SOAR code's ±10 output clamp).

**Terminations** (``absorbing=True``, our default; the SOAR code uses ``False``): the learned
rewards of ML-IRL and f-IRL also score the *absorbing state* that follows a termination (an
extra input flag, DAC-style): reward updates average over the whole horizon ``T`` with the
post-termination steps as absorbing steps (:func:`absorbing_view`), and a terminal transition
bootstraps from the absorbing value :math:`r_\theta(\text{abs})/(1-\gamma)`
(:func:`absorbing_bootstrap`). With the SOAR code's "terminal value 0" a reward that is negative
on the agent's states makes falling over optimal (the termination bias of Kostrikov et al.).
Measured on brax inverted_pendulum (ML-IRL(SA), L = 1, 16k SAC steps, 500 per iteration, reward
lr 1e-3, 3 seeds): with ``absorbing=False`` the learned reward drifts negative and every seed
learns to fall at once (final return 3.0–3.8); with ``absorbing=True`` 1000 / 345 / 196.
CSIL's fixed reward keeps terminal value 0.

Rewards see raw observations; the SAC networks see normalised ones when
``normalize_observations`` is set (not allowed with the CSIL options, which put the BC policy
in the actor's place).

``β`` and ``σ`` are traced: ``make_train(cfg, expert)(key, beta, sigma)`` (and the
``{"key", "beta", "sigma"}`` runs of :func:`make_chunks`) vmap over seeds *and* a grid of
bonuses in one compiled program, which is how the experiment tunes σ and runs the
ensemble-only arm beside SOAR.

Defaults are the SOAR code's (spec §2.6–2.7), except ``absorbing``: L = 4, β = 1, σ = 10, batch 100, lr 1e-3,
α = 0.2 fixed, τ = 0.005, 256×256 networks, 1 000 random steps, the always-on
:math:`\lambda = 10^{-3}` OPT-AIL critic term, 5 000 SAC steps and 10 reward rollouts per
iteration, reward MLP 64×64 with lr 1e-4 and weight decay 1e-3, discriminator 3 blocks of width
128 with lr 3e-4, 1 200 steps of batch 800, CSIL :math:`\alpha_r = 0.1`.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from lions_jax._src import runner
from lions_jax.rl import envs as rl_envs
from lions_jax.rl import expert as rl_expert
from lions_jax.rl import networks as rl_nets
from lions_jax.rl import normalization as rl_norm
from lions_jax.rl import train as rl_train

__all__ = [
    "METHODS",
    "CostState",
    "DeepSoarConfig",
    "DeepState",
    "absorbing_bootstrap",
    "absorbing_view",
    "bc_loss",
    "csil_reward",
    "discriminator_loss",
    "firl_rkl_loss",
    "make_chunks",
    "make_discriminator",
    "make_reward_net",
    "make_train",
    "masked_mean",
    "mlirl_loss",
]

Method = Literal["mlirl", "mlirl_sa", "firl_rkl", "csil"]
METHODS: tuple[str, ...] = ("mlirl", "mlirl_sa", "firl_rkl", "csil")
_ACTION_EPS = 1e-3  # actions are clipped to [-1 + eps, 1 - eps] before tanh-Gaussian densities


# ---- reward models ------------------------------------------------------------------------------
def make_reward_net(
    obs_size: int,
    action_size: int,
    *,
    hidden: tuple[int, ...] = (64, 64),
    state_action: bool = False,
    clip: float = 10.0,
) -> rl_nets.Network:
    """``apply(params, obs, action, next_obs) -> r`` in ``[-clip, clip]``: an MLP on ``s`` or ``(s, a)``."""
    net = rl_nets.mlp(obs_size + (action_size if state_action else 0), hidden, 1)

    def apply(params: Any, obs: ArrayLike, action: ArrayLike, next_obs: Any) -> jax.Array:
        del next_obs
        x = jnp.concatenate([obs, action], axis=-1) if state_action else jnp.asarray(obs)
        return jnp.clip(net.apply(params, x)[..., 0], -clip, clip)

    return rl_nets.Network(net.init, apply)


def make_discriminator(in_size: int, *, width: int = 128, blocks: int = 3) -> rl_nets.Network:
    """f-IRL's ResNet-style discriminator: ``apply(params, s) -> logit`` (``log ρ_E/ρ_θ`` estimate).

    ``h = tanh(W_in s)``; ``blocks`` residual blocks ``h <- h + tanh(W_2 tanh(W_1 h))``; a linear
    head.
    """
    if width < 1 or blocks < 0:
        raise ValueError(f"width must be >= 1 and blocks >= 0, got {width}, {blocks}")
    first = rl_nets.mlp(in_size, (), width)
    block = rl_nets.mlp(width, (width,), width, activation=jnp.tanh)
    head = rl_nets.mlp(width, (), 1)

    def init(key: Any) -> dict[str, Any]:
        k_in, k_blocks, k_out = jax.random.split(key, 3)
        return {
            "in": first.init(k_in),
            "blocks": jax.vmap(block.init)(jax.random.split(k_blocks, blocks)),
            "out": head.init(k_out),
        }

    def apply(params: Any, s: ArrayLike) -> jax.Array:
        h = jnp.tanh(first.apply(params["in"], s))

        def body(h: jax.Array, p: Any) -> tuple[jax.Array, None]:
            return h + jnp.tanh(block.apply(p, h)), None

        h, _ = jax.lax.scan(body, h, params["blocks"])
        return head.apply(params["out"], h)[..., 0]

    return rl_nets.Network(init, apply)


# ---- the reward players' losses (pure) ----------------------------------------------------------
def masked_mean(x: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``sum(mask * x) / max(sum(mask), 1)`` over all axes."""
    mask = jnp.asarray(mask, jnp.float32)
    return jnp.sum(mask * x) / jnp.maximum(jnp.sum(mask), 1.0)


def mlirl_loss(
    reward_params: Any,
    reward_apply: Callable[..., jax.Array],
    agent: dict[str, Any],
    expert: dict[str, Any],
    horizon: float,
) -> jax.Array:
    r"""ML-IRL's reward loss :math:`T\,(\mathbb E_{\text{agent}}[r_\theta] - \mathbb E_{\text{expert}}[r_\theta])`.

    ``agent`` and ``expert`` hold ``obs``, ``action``, ``next_obs`` and ``mask`` with any
    matching leading axes (e.g. ``[N, T]``); expectations are means over the unmasked steps.
    Descending it raises the reward on expert data and lowers it on the agent's.
    """

    def mean_reward(d: dict[str, Any]) -> jax.Array:
        return masked_mean(
            reward_apply(reward_params, d["obs"], d["action"], d["next_obs"]), d["mask"]
        )

    return horizon * (mean_reward(agent) - mean_reward(expert))


def discriminator_loss(
    disc_params: Any,
    disc_apply: Callable[..., jax.Array],
    expert_obs: ArrayLike,
    agent_obs: ArrayLike,
) -> jax.Array:
    """Logistic loss of expert (label 1) vs agent (label 0) states; the optimum's logit is ``log ρ_E/ρ_θ``."""
    return jnp.mean(jax.nn.softplus(-disc_apply(disc_params, expert_obs))) + jnp.mean(
        jax.nn.softplus(disc_apply(disc_params, agent_obs))
    )


def firl_rkl_loss(
    reward_params: Any,
    reward_apply: Callable[..., jax.Array],
    log_ratio: ArrayLike,
    trajectories: dict[str, Any],
    horizon: float,
) -> jax.Array:
    r"""f-IRL (reverse KL) reward loss: the sample covariance of :math:`h(\tau)` and :math:`R_\theta(\tau)`, over :math:`T`.

    ``trajectories`` hold ``obs``/``action``/``next_obs``/``mask`` shaped ``[N, T, ...]``;
    ``log_ratio[N, T]`` is the discriminator's :math:`\log\rho_E/\rho_\theta(s_t)` (held fixed).
    With :math:`h = -\sum_t m_t \log\rho_E/\rho_\theta(s_t)` and :math:`R = \sum_t m_t
    r_\theta(s_t)`: :math:`(\overline{hR} - \bar h \bar R)/T`, whose gradient is f-IRL's
    :math:`\frac1T\operatorname{cov}(h, \nabla R)`.
    """
    mask = jnp.asarray(trajectories["mask"], jnp.float32)
    h = -jnp.sum(mask * jax.lax.stop_gradient(jnp.asarray(log_ratio)), axis=-1)
    r = reward_apply(
        reward_params, trajectories["obs"], trajectories["action"], trajectories["next_obs"]
    )
    big_r = jnp.sum(mask * r, axis=-1)
    return (jnp.mean(h * big_r) - jnp.mean(h) * jnp.mean(big_r)) / horizon


def _policy_log_prob(networks: Any, params: Any, obs: ArrayLike, action: ArrayLike) -> jax.Array:
    mean, log_std = networks.actor.apply(params, obs)
    a = jnp.clip(jnp.asarray(action), -1.0 + _ACTION_EPS, 1.0 - _ACTION_EPS)
    return rl_nets.tanh_gaussian_log_prob(mean, log_std, jnp.arctanh(a))


def bc_loss(actor_params: Any, networks: Any, obs: ArrayLike, action: ArrayLike, mask: ArrayLike):
    """Negative log-likelihood of expert actions under the tanh-Gaussian actor (masked mean)."""
    return -masked_mean(_policy_log_prob(networks, actor_params, obs, action), mask)


def csil_reward(
    bc_params: Any, networks: Any, obs: ArrayLike, action: ArrayLike, alpha: Any
) -> jax.Array:
    r"""CSIL's coherent reward :math:`\alpha(\log q(a|s) - \log p(a))`, :math:`p = U([-1, 1]^{|A|})`."""
    log_uniform = -networks.action_size * jnp.log(2.0)
    return alpha * (_policy_log_prob(networks, bc_params, obs, action) - log_uniform)


# ---- config and state ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class DeepSoarConfig(rl_train.SACConfig):
    """Deep SOAR on one environment: :class:`~lions_jax.rl.SACConfig` (SOAR's defaults) plus the IL loop.

    ``total_steps`` and ``eval_every`` count SAC's environment steps (the reward rollouts come on
    top and are reported in the ``samples`` metric); ``eval_every`` must be a multiple of
    ``sac_steps_per_itr``.

    Attributes:
      method: one of :data:`METHODS`.
      num_demos: expert episodes used (the first ones of the set).
      sac_steps_per_itr: SAC environment steps per outer iteration.
      reward_rollouts: fresh episodes per reward update (ignored by ``csil``).
      reward_hidden, reward_lr, reward_weight_decay, reward_clip: the learned reward.
      disc_width, disc_blocks, disc_lr, disc_iters, disc_batch: f-IRL's discriminator
        (``disc_batch`` states per step, half expert, half agent).
      firl_expert_trajectories: add resampled expert trajectories to f-IRL's covariance.
      absorbing: learned rewards (ML-IRL, f-IRL) also score the absorbing state that follows a
        termination, as in DAC (Kostrikov et al. 2019); ``False`` is the SOAR code's "terminal
        value 0", under which a reward that happens to be negative makes falling optimal.
      csil_alpha: :math:`\\alpha_r` of the CSIL reward.
      bc_steps, bc_batch, bc_lr: behaviour cloning before training (``csil``).
      csil_actor_init: start the actor at the BC policy.
      csil_kl_prior: replace the entropy bonus by a KL penalty to the BC policy.
    """

    method: Method = "mlirl_sa"
    n_members: int = 4
    beta: float = 1.0
    sigma: float = 10.0
    total_steps: int = 1_000_000
    eval_every: int = 5_000
    batch_size: int = 100
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    init_alpha: float = 0.2
    learn_alpha: bool = False
    opt_lambda: float = 1e-3
    num_demos: int = 16
    sac_steps_per_itr: int = 5_000
    reward_rollouts: int = 10
    reward_hidden: tuple[int, ...] = (64, 64)
    reward_lr: float = 1e-4
    reward_weight_decay: float = 1e-3
    reward_clip: float = 10.0
    disc_width: int = 128
    disc_blocks: int = 3
    disc_lr: float = 3e-4
    disc_iters: int = 1_200
    disc_batch: int = 800
    firl_expert_trajectories: bool = True
    absorbing: bool = True
    csil_alpha: float = 0.1
    bc_steps: int = 2_000
    bc_batch: int = 256
    bc_lr: float = 1e-3
    csil_actor_init: bool = False
    csil_kl_prior: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in "num_demos sac_steps_per_itr reward_rollouts disc_iters bc_batch".split():
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.disc_batch < 2 or self.bc_steps < 0:
            raise ValueError(
                f"disc_batch must be >= 2 and bc_steps >= 0, got {self.disc_batch}, {self.bc_steps}"
            )
        if self.sac_steps_per_itr % self.num_envs:
            raise ValueError(
                f"sac_steps_per_itr ({self.sac_steps_per_itr}) must be a multiple of "
                f"num_envs ({self.num_envs})"
            )
        if self.eval_every % self.sac_steps_per_itr:
            raise ValueError(
                f"eval_every ({self.eval_every}) must be a multiple of "
                f"sac_steps_per_itr ({self.sac_steps_per_itr})"
            )
        if self.absorbing and self.gamma >= 1.0:
            raise ValueError("absorbing=True needs gamma < 1 (the absorbing value is r/(1-gamma))")
        if self.reward_clip <= 0:
            raise ValueError(f"reward_clip must be > 0, got {self.reward_clip}")
        if (self.csil_actor_init or self.csil_kl_prior) and self.normalize_observations:
            raise ValueError(
                "csil_actor_init/csil_kl_prior need normalize_observations=False "
                "(the BC policy reads raw observations)"
            )

    @property
    def itrs_per_chunk(self) -> int:
        return self.eval_every // self.sac_steps_per_itr

    @property
    def uses_rollouts(self) -> bool:
        return self.method != "csil"


class CostState(NamedTuple):
    """The reward player: reward (or, for CSIL, BC-policy) parameters, optimizer, discriminator."""

    reward_params: Any
    reward_opt_state: Any
    disc_params: Any
    disc_opt_state: Any


class DeepState(NamedTuple):
    """A deep SOAR run: the SAC run, the reward player, the bonus, and every env step taken."""

    train: rl_train.TrainState
    cost: CostState
    beta: jax.Array
    sigma: jax.Array
    samples: jax.Array


def _check_expert(expert: Any, obs_size: int, action_size: int, cfg: DeepSoarConfig) -> dict:
    needed = ("obs", "action", "next_obs", "mask")
    if not isinstance(expert, dict) or any(k not in expert for k in needed):
        raise ValueError(f"expert: expected a dict with keys {needed} (see lions_jax.rl.expert)")
    n = np.shape(expert["obs"])[0]
    if n < cfg.num_demos:
        raise ValueError(f"expert: {n} episodes, fewer than num_demos={cfg.num_demos}")
    horizon = math.ceil(cfg.episode_length / cfg.action_repeat)
    shapes = {
        "obs": (n, horizon, obs_size),
        "action": (n, horizon, action_size),
        "next_obs": (n, horizon, obs_size),
        "mask": (n, horizon),
    }
    for k, shape in shapes.items():
        if tuple(np.shape(expert[k])) != shape:
            raise ValueError(
                f"expert[{k!r}]: expected shape {shape} (episodes, episode_length/action_repeat, "
                f"...), got {tuple(np.shape(expert[k]))}"
            )
    return {k: jnp.asarray(np.asarray(expert[k])[: cfg.num_demos], jnp.float32) for k in needed}


def absorbing_view(data: dict[str, Any]) -> dict[str, jax.Array]:
    """``[N, T]`` episodes with every step after a termination made an absorbing step.

    Observations get a last feature, the absorbing flag ``1 - mask``; observations and actions of
    absorbing steps are zeroed; the mask becomes all ones, so expectations run over the whole
    horizon ``T`` (the finite-horizon occupancy ML-IRL and f-IRL match).
    """
    m = jnp.asarray(data["mask"], jnp.float32)[..., None]
    obs = jnp.concatenate([data["obs"] * m, 1.0 - m], axis=-1)
    return {
        "obs": obs,
        "action": data["action"] * m,
        "next_obs": obs,
        "mask": jnp.ones_like(m[..., 0]),
    }


def absorbing_bootstrap(reward: ArrayLike, discount: ArrayLike, absorbing_reward: Any, gamma: Any):
    r"""Reward of a transition whose terminal successor is the absorbing state.

    :math:`r + (1 - d)\,\gamma\,r_{\text{abs}}/(1 - \gamma)`: with the SAC target
    :math:`y = r + \gamma d\,V(s')`, a terminal transition (:math:`d = 0`) then bootstraps from
    the absorbing state's value :math:`r_{\text{abs}}/(1-\gamma)` instead of 0.
    """
    return reward + (1.0 - jnp.asarray(discount)) * gamma * absorbing_reward / (1.0 - gamma)


def _sample_valid(key: Any, data: dict[str, Any], n: int) -> dict[str, jax.Array]:
    """``n`` steps drawn uniformly (with replacement) among the unmasked steps of ``[N, T]`` data."""
    mask = data["mask"].reshape(-1)
    idx = jax.random.choice(key, mask.shape[0], (n,), p=mask / jnp.sum(mask))
    return {k: v.reshape(mask.shape[0], *v.shape[2:])[idx] for k, v in data.items()}


# ---- the run ------------------------------------------------------------------------------------
def make_chunks(
    cfg: DeepSoarConfig, expert: dict[str, Any], env: Any | None = None
) -> tuple[Callable[[Any], DeepState], Callable[[DeepState], tuple[DeepState, dict]]]:
    """``(init_fn, chunk_fn)`` of a deep SOAR run (for :func:`lions_jax._src.runner.run_chunked`).

    ``init_fn(run)`` takes a key, or a dict ``{"key", "beta", "sigma"}`` (scalars; vmap a grid).
    A chunk is ``cfg.itrs_per_chunk`` outer iterations followed by a deterministic evaluation on
    the true reward. ``expert`` holds ``obs``/``action``/``next_obs``/``mask`` of shape
    ``[N, T, ...]`` with ``N >= cfg.num_demos``, ``T = ceil(episode_length / action_repeat)``
    (:func:`lions_jax.rl.load_demonstrations`'s ``"stochastic"`` set).
    """
    env = rl_envs.make_env(cfg.env, backend=cfg.backend) if env is None else env
    obs_size, action_size = int(env.observation_size), int(env.action_size)
    demos = _check_expert(expert, obs_size, action_size, cfg)
    horizon = float(demos["mask"].shape[1])
    ep_env = rl_envs.EpisodeEnv(
        env,
        episode_length=cfg.episode_length,
        action_repeat=cfg.action_repeat,
        reset_mode=cfg.reset_mode,
    )
    networks = rl_nets.make_sac_networks(obs_size, action_size, hidden=cfg.hidden)
    method = cfg.method
    use_absorbing = cfg.absorbing and method != "csil"
    view = absorbing_view if use_absorbing else (lambda d: d)
    demos_view = view(demos)
    in_size = obs_size + int(use_absorbing)
    reward_net = make_reward_net(
        in_size,
        action_size,
        hidden=cfg.reward_hidden,
        state_action=method == "mlirl_sa",
        clip=cfg.reward_clip,
    )
    disc = make_discriminator(in_size, width=cfg.disc_width, blocks=cfg.disc_blocks)
    reward_opt = optax.chain(
        optax.add_decayed_weights(cfg.reward_weight_decay), optax.adam(cfg.reward_lr)
    )
    disc_opt = optax.adam(cfg.disc_lr)
    bc_opt = optax.adam(cfg.bc_lr)

    def live(obs: Any) -> Any:  # a live (non-absorbing) state as the reward network sees it
        obs = jnp.asarray(obs)
        if not use_absorbing:
            return obs
        return jnp.concatenate([obs, jnp.zeros((*obs.shape[:-1], 1), obs.dtype)], axis=-1)

    def reward_fn(params: Any, obs: Any, action: Any, next_obs: Any) -> jax.Array:
        if method == "csil":
            r = csil_reward(params, networks, obs, action, cfg.csil_alpha)
            return jnp.clip(r, -cfg.reward_clip, cfg.reward_clip)
        return reward_net.apply(params, live(obs), action, None)

    def relabel_fn(sample: dict[str, Any], params: Any) -> dict[str, Any]:
        r = reward_fn(params, sample["obs"], sample["action"], sample["next_obs"])
        if use_absorbing:  # a terminal transition bootstraps from the absorbing state's value
            flag = jnp.zeros((obs_size + 1,)).at[-1].set(1.0)
            r_abs = reward_net.apply(params, flag, jnp.zeros((action_size,)), None)
            r = absorbing_bootstrap(r, sample["discount"], r_abs, cfg.gamma)
        return {**sample, "reward": r}

    def mean_reward(params: Any, data: dict[str, Any]) -> jax.Array:
        if method == "csil":
            r = reward_fn(params, data["obs"], data["action"], data["next_obs"])
            return masked_mean(r, data["mask"])
        d = view(data)
        return masked_mean(reward_net.apply(params, d["obs"], d["action"], None), d["mask"])

    def norm(ts: rl_train.TrainState, obs: Any) -> Any:
        return rl_norm.normalize(ts.obs_stats, obs) if cfg.normalize_observations else obs

    def agent_for(state_or_none: DeepState | None, beta: Any, sigma: Any) -> Any:
        prior = None
        if method == "csil" and cfg.csil_kl_prior and state_or_none is not None:
            bc = state_or_none.cost.reward_params
            prior = lambda o, a: _policy_log_prob(networks, bc, o, a)  # noqa: E731
        return rl_train.make_agent(cfg, obs_size, action_size, beta=beta, sigma=sigma, prior=prior)

    def behaviour_cloning(key: Any, params: Any) -> Any:
        def step(carry: tuple[Any, Any], k: Any) -> tuple[tuple[Any, Any], jax.Array]:
            p, opt_state = carry
            b = _sample_valid(k, demos, cfg.bc_batch)
            loss, g = jax.value_and_grad(bc_loss)(p, networks, b["obs"], b["action"], b["mask"])
            updates, opt_state = bc_opt.update(g, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), loss

        (params, _), _ = jax.lax.scan(
            step, (params, bc_opt.init(params)), jax.random.split(key, cfg.bc_steps)
        )
        return params

    def init_fn(run: Any) -> DeepState:
        if isinstance(run, dict):
            key, beta, sigma = run["key"], run.get("beta", cfg.beta), run.get("sigma", cfg.sigma)
        else:
            key, beta, sigma = run, cfg.beta, cfg.sigma
        k_train, k_reward, k_disc = jax.random.split(key, 3)
        train_init, _ = rl_train.make_iteration(cfg, ep_env, agent_for(None, cfg.beta, cfg.sigma))
        ts = train_init(k_train)
        if method == "csil":
            bc = behaviour_cloning(k_reward, networks.actor.init(k_reward))
            cost = CostState(bc, (), (), ())
            if cfg.csil_actor_init:
                sac = ts.sac
                actor_opt_state = jax.tree.map(jnp.zeros_like, sac.actor_opt_state)
                ts = ts._replace(sac=sac._replace(actor_params=bc, actor_opt_state=actor_opt_state))
        else:
            reward_params = reward_net.init(k_reward)
            disc_params = disc.init(k_disc) if method == "firl_rkl" else ()
            cost = CostState(
                reward_params,
                reward_opt.init(reward_params),
                disc_params,
                disc_opt.init(disc_params) if method == "firl_rkl" else (),
            )
        return DeepState(
            train=ts,
            cost=cost,
            beta=jnp.asarray(beta, jnp.float32),
            sigma=jnp.asarray(sigma, jnp.float32),
            samples=jnp.zeros((), jnp.int32),
        )

    def cost_update(key: Any, cost: CostState, rollouts: dict[str, Any]):
        """One step of the reward player on fresh agent rollouts ``[R, T, ...]``."""
        agent = view({k: rollouts[k] for k in ("obs", "action", "next_obs", "mask")})
        zero = jnp.zeros((), jnp.float32)
        disc_params, disc_opt_state, disc_loss = cost.disc_params, cost.disc_opt_state, zero
        if method == "firl_rkl":
            k_disc, k_expert = jax.random.split(key)
            half = cfg.disc_batch // 2

            def disc_step(carry: tuple[Any, Any], k: Any) -> tuple[tuple[Any, Any], jax.Array]:
                p, s = carry
                k_e, k_a = jax.random.split(k)
                e = _sample_valid(k_e, demos_view, half)["obs"]
                a = _sample_valid(k_a, agent, half)["obs"]
                loss, g = jax.value_and_grad(discriminator_loss)(p, disc.apply, e, a)
                updates, s = disc_opt.update(g, s, p)
                return (optax.apply_updates(p, updates), s), loss

            (disc_params, disc_opt_state), losses = jax.lax.scan(
                disc_step,
                (cost.disc_params, cost.disc_opt_state),
                jax.random.split(k_disc, cfg.disc_iters),
            )
            disc_loss = losses[-1]
            trajectories = agent
            if cfg.firl_expert_trajectories:
                idx = jax.random.randint(
                    k_expert, (cfg.reward_rollouts,), 0, demos["mask"].shape[0]
                )
                trajectories = jax.tree.map(
                    lambda x, y: jnp.concatenate([x, y[idx]]), agent, demos_view
                )
            log_ratio = disc.apply(disc_params, trajectories["obs"])

            def loss_fn(p: Any) -> jax.Array:
                return firl_rkl_loss(p, reward_net.apply, log_ratio, trajectories, horizon)
        else:

            def loss_fn(p: Any) -> jax.Array:
                return mlirl_loss(p, reward_net.apply, agent, demos_view, horizon)

        loss, g = jax.value_and_grad(loss_fn)(cost.reward_params)
        updates, reward_opt_state = reward_opt.update(g, cost.reward_opt_state, cost.reward_params)
        reward_params = optax.apply_updates(cost.reward_params, updates)
        new = CostState(reward_params, reward_opt_state, disc_params, disc_opt_state)
        return new, {"cost_loss": loss, "disc_loss": disc_loss}

    def chunk_fn(state: DeepState) -> tuple[DeepState, dict[str, jax.Array]]:
        agent = agent_for(state, state.beta, state.sigma)
        _, iteration = rl_train.make_iteration(cfg, ep_env, agent, relabel_fn=relabel_fn)
        iters = cfg.sac_steps_per_itr // cfg.num_envs
        zero = jnp.zeros((), jnp.float32)

        def outer(s: DeepState, _: Any) -> tuple[DeepState, dict[str, jax.Array]]:
            params = s.cost.reward_params
            ts, m = jax.lax.scan(lambda t, _: iteration(t, params), s.train, None, length=iters)
            key, k_roll, k_cost = jax.random.split(ts.key, 3)
            ts = ts._replace(key=key)
            sac_m = {
                name: jnp.sum(m[name]) / jnp.maximum(jnp.sum(m["updated"]), 1.0)
                for name in ("critic_loss", "actor_loss", "entropy", "q", "q_member_std")
            }
            if cfg.uses_rollouts:
                actor = ts.sac.actor_params
                rollouts = rl_expert.collect_demonstrations(
                    k_roll,
                    env,
                    lambda k, o: agent.act(k, actor, norm(ts, o)),
                    num_episodes=cfg.reward_rollouts,
                    episode_length=cfg.episode_length,
                    action_repeat=cfg.action_repeat,
                )
                cost, cm = cost_update(k_cost, s.cost, rollouts)
                rollout_steps = jnp.sum(rollouts["lengths"]).astype(jnp.int32)
                agent_reward = mean_reward(params, rollouts)
                rollout_return = jnp.mean(rollouts["returns"])
            else:
                cost, cm = s.cost, {"cost_loss": zero, "disc_loss": zero}
                rollout_steps = jnp.zeros((), jnp.int32)
                agent_reward, rollout_return = zero, zero
            expert_reward = mean_reward(params, demos)
            samples = s.samples + iters * cfg.num_envs + rollout_steps
            metrics = {
                **sac_m,
                **cm,
                "reward_expert": expert_reward,
                "reward_agent": agent_reward,
                "rollout_return": rollout_return,
                "episodes": jnp.sum(m["episodes"]),
                "return_sum": jnp.sum(m["return_sum"]),
            }
            return DeepState(ts, cost, s.beta, s.sigma, samples), metrics

        state, m = jax.lax.scan(outer, state, None, length=cfg.itrs_per_chunk)
        key, k_eval = jax.random.split(state.train.key)
        state = state._replace(train=state.train._replace(key=key))
        actor = state.train.sac.actor_params
        ev = rl_train.evaluate(
            k_eval,
            env,
            lambda o: agent.act(None, actor, norm(state.train, o), deterministic=True),
            num_episodes=cfg.num_eval_envs,
            episode_length=cfg.episode_length,
            action_repeat=cfg.action_repeat,
        )
        episodes = jnp.sum(m.pop("episodes"))
        metrics = {
            "env_steps": state.train.env_steps,
            "samples": state.samples,
            "eval_return": jnp.mean(ev["return"]),
            "eval_return_std": jnp.std(ev["return"]),
            "train_return": jnp.sum(m.pop("return_sum")) / jnp.maximum(episodes, 1),
            **{k: v[-1] for k, v in m.items()},
        }
        return state, metrics

    return init_fn, chunk_fn


def make_train(
    cfg: DeepSoarConfig, expert: dict[str, Any], env: Any | None = None
) -> Callable[..., tuple[DeepState, dict[str, jax.Array]]]:
    """``train(key, beta=None, sigma=None) -> (final_state, metrics)``: a whole run in one ``lax.scan``.

    ``beta``/``sigma`` default to the config's and may be traced, so
    ``jax.jit(jax.vmap(train))(keys, betas, sigmas)`` runs seeds and bonus grids in one program.
    ``metrics`` has one row per chunk (``cfg.num_chunks``): ``env_steps`` (SAC's),
    ``samples`` (every environment step, reward rollouts included), ``eval_return``,
    the reward player's ``cost_loss``/``disc_loss``, the learned reward's means on expert and
    agent data, and SAC's losses and member disagreement ``q_member_std``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from lions_jax.rl import PointMass
        >>> cfg = DeepSoarConfig(env="point_mass", method="mlirl_sa", episode_length=10,
        ...     total_steps=40, eval_every=20, sac_steps_per_itr=10, learning_starts=10,
        ...     reward_rollouts=2, num_demos=2, batch_size=8, hidden=(8,), num_eval_envs=2)
        >>> expert = {k: jnp.zeros((2, 10) + s) for k, s in
        ...           [("obs", (1,)), ("action", (1,)), ("next_obs", (1,)), ("mask", ())]}
        >>> train = make_train(cfg, expert, PointMass())
        >>> _, m = jax.eval_shape(jax.vmap(train), jax.random.split(jax.random.key(0), 3),
        ...                       jnp.array([0.0, 1.0, 1.0]), jnp.array([1.0, 1.0, 10.0]))
        >>> m["eval_return"].shape  # (runs, chunks)
        (3, 2)
    """
    init_fn, chunk_fn = make_chunks(cfg, expert, env)
    scan = runner.scan_chunks(init_fn, chunk_fn, cfg.num_chunks)

    def train(key: Any, beta: Any = None, sigma: Any = None) -> tuple[DeepState, dict]:
        run = {"key": key}
        if beta is not None:
            run["beta"] = beta
        if sigma is not None:
            run["sigma"] = sigma
        return scan(run)

    return train

r"""Tabular SOAR: primal–dual imitation learning with an ensemble of estimated transition models.

Discounted MDP with finite :math:`S \times A`, **unknown** transitions and unknown cost; expert
data are :math:`(s, a)` samples from the expert's normalised occupancy :math:`d^{\pi_E}`. The game
is :math:`\min_\pi \max_{c \in [0, C_{\max}]^{S\times A}} \langle c, d^\pi - d^{\pi_E}\rangle`.
Iteration :math:`k` (arXiv 2502.19859, Alg. 2–4, as reconstructed in the spec from the authors'
notebook ``SOAR_tabular.ipynb``):

1. **Data.** Each of the L members draws its own trajectory of :math:`\pi_k` from the initial
   distribution, stopping with probability :math:`1 - \gamma` after every step (so visits are
   unbiased for :math:`d^{\pi_k}`), and adds its transitions to its own counts
   :math:`n_l(s, a, s')`; :math:`\hat P_l(\cdot|s,a) = n_l(s,a,\cdot)/n_l(s,a)`, uniform where
   unvisited.
2. **Cost player** (projected online gradient step on the gap):
   :math:`c_{k+1} = \Pi_{[0, C_{\max}]}(c_k - \eta_c(\hat d_E - \hat d_{\pi_k}))`, with
   :math:`\hat d_{\pi_k}` the normalised visit counts of this iteration's L trajectories.
   ``state_only_cost=True`` is the notebook's variant (state occupancies broadcast over actions).
3. **Optimistic Q** (cost form: lower is optimistic), one backup per iteration with V carried:
   ``rule="std"``: :math:`\tilde Q = \operatorname{clip}(c_{k+1} + \gamma[\operatorname{mean}_l
   \hat P_l V - \beta \operatorname{std}_l \hat P_l V], 0, C_{\max}/(1-\gamma))`;
   ``rule="min"``: :math:`c_{k+1} + \gamma \min_l \hat P_l V` (unclipped, the most optimistic);
   ``rule="ucb"``: one model from the pooled counts of all members,
   :math:`\operatorname{clip}(c_{k+1} + \gamma \hat P V - \gamma\, b / \sqrt{n(s,a) + 1}, \dots)`.
   Then :math:`V(s) = \sum_a \pi_k(a|s) \tilde Q(s, a)`.
4. **Policy player** (mirror descent / soft policy iteration):
   :math:`\pi_{k+1}(a|s) \propto \pi_k(a|s) \exp(-\eta \tilde Q(s, a))`.

With L = 1 the std is 0: the non-optimistic primal–dual baseline. ``beta = 0`` with L > 1 is the
*ensemble-only* ablation (more data per iteration and averaged models, no bonus), which on the
notebook MDP explains the gain (spec §2.4). The ensemble size is a traced value up to a static
``max_members``, so ``jax.vmap`` runs seeds, L and β in one program. Evaluation is exact:
occupancies and values by linear solves on the true model.
"""

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "SoarState",
    "TabularMDP",
    "chain_mdp",
    "gridworld_mdp",
    "make_tabular_soar",
    "needle_mdp",
    "occupancy",
    "optimal_policy",
    "optimistic_q",
    "policy_value",
    "project_cost",
    "sample_trajectory_counts",
]


class TabularMDP(NamedTuple):
    """``P[s, a, s']`` transitions, ``r[s, a]`` true reward (for evaluation), ``gamma``, ``init[s]``."""

    P: jax.Array
    r: jax.Array
    gamma: float
    init: jax.Array

    @property
    def num_states(self) -> int:
        return int(self.P.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.P.shape[1])


def _check_mdp(mdp: TabularMDP) -> None:
    S, A = mdp.P.shape[:2]
    if mdp.P.shape != (S, A, S) or mdp.r.shape != (S, A) or mdp.init.shape != (S,):
        raise ValueError(
            f"mdp: expected P (S, A, S), r (S, A), init (S,); got {mdp.P.shape}, "
            f"{mdp.r.shape}, {mdp.init.shape}"
        )
    if not 0.0 < float(mdp.gamma) < 1.0:
        raise ValueError(f"mdp.gamma must lie in (0, 1), got {mdp.gamma}")


def _check_policy(mdp: TabularMDP, pi: jax.Array, name: str = "pi") -> None:
    if pi.shape != (mdp.num_states, mdp.num_actions):
        raise ValueError(
            f"{name}: expected shape (S, A) = ({mdp.num_states}, {mdp.num_actions}), got {pi.shape}"
        )


# ---- exact evaluation -------------------------------------------------------------------------
def _policy_transition(mdp: TabularMDP, pi: jax.Array) -> jax.Array:
    _check_policy(mdp, pi)
    return jnp.einsum("sa,sat->st", pi, mdp.P)


def policy_value(mdp: TabularMDP, pi: ArrayLike, reward: ArrayLike | None = None) -> jax.Array:
    r""":math:`V^\pi = (I - \gamma P_\pi)^{-1} r_\pi` for ``reward[s, a]`` (default ``mdp.r``)."""
    pi = jnp.asarray(pi)
    reward = mdp.r if reward is None else jnp.asarray(reward)
    P_pi = _policy_transition(mdp, pi)
    r_pi = jnp.sum(pi * reward, axis=1)
    return jnp.linalg.solve(jnp.eye(mdp.num_states, dtype=P_pi.dtype) - mdp.gamma * P_pi, r_pi)


def occupancy(mdp: TabularMDP, pi: ArrayLike) -> jax.Array:
    r"""Normalised discounted occupancy :math:`d^\pi(s, a) = (1-\gamma)\sum_t \gamma^t \Pr(s_t = s, a_t = a)`."""
    pi = jnp.asarray(pi)
    P_pi = _policy_transition(mdp, pi)
    eye = jnp.eye(mdp.num_states, dtype=P_pi.dtype)
    d_s = (1.0 - mdp.gamma) * jnp.linalg.solve((eye - mdp.gamma * P_pi).T, mdp.init)
    return d_s[:, None] * pi


def optimal_policy(mdp: TabularMDP, *, iters: int = 2000) -> jax.Array:
    """A deterministic optimal policy for ``mdp.r`` by value iteration (one-hot ``[S, A]``)."""

    def body(v: jax.Array, _: Any) -> tuple[jax.Array, None]:
        q = mdp.r + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, v)
        return jnp.max(q, axis=1), None

    v, _ = jax.lax.scan(body, jnp.zeros(mdp.num_states, mdp.r.dtype), None, length=iters)
    q = mdp.r + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, v)
    return jax.nn.one_hot(jnp.argmax(q, axis=1), mdp.num_actions, dtype=mdp.r.dtype)


# ---- environments -----------------------------------------------------------------------------
def needle_mdp(num_actions: int = 20, gamma: float = 0.99, gap: float = 1e-4) -> TabularMDP:
    """The authors' notebook MDP: 2 states, reward 1 in state 0; only action 0 stays there.

    From state 0 every action leaves to state 1 with probability ``(1-gamma)/gamma`` except
    action 0, which leaves with probability ``gap``; state 1 returns with ``(1-gamma)/gamma``.
    The expert plays action 0: a needle in a haystack of ``num_actions`` actions.
    """
    leave = (1.0 - gamma) / gamma
    p_leave = jnp.full((num_actions,), leave).at[0].set(gap)
    P = jnp.zeros((2, num_actions, 2))
    P = P.at[0, :, 1].set(p_leave).at[0, :, 0].set(1.0 - p_leave)
    P = P.at[1, :, 0].set(leave).at[1, :, 1].set(1.0 - leave)
    r = jnp.zeros((2, num_actions)).at[0].set(1.0)
    return TabularMDP(P, r, gamma, jnp.array([1.0, 0.0]))


def chain_mdp(num_states: int = 6, gamma: float = 0.95) -> TabularMDP:
    """RiverSwim: action 0 swims left (always succeeds), action 1 right against the current.

    Right: move right w.p. 0.35, stay w.p. 0.6, drift left w.p. 0.05 (at the ends: stay w.p. 0.6
    and 0.4 at the left end; at the right end stay w.p. 0.6 and drift left w.p. 0.4). Reward 0.005
    for swimming left in state 0, 1 for swimming right in the last state; start in state 0 or 1.
    """
    n = num_states
    if n < 3:
        raise ValueError(f"num_states must be >= 3, got {n}")
    P = jnp.zeros((n, 2, n))
    idx = jnp.arange(n)
    P = P.at[idx, 0, jnp.maximum(idx - 1, 0)].set(1.0)
    for s in range(n):
        if s == 0:
            P = P.at[0, 1, 0].set(0.4).at[0, 1, 1].set(0.6)
        elif s == n - 1:
            P = P.at[s, 1, s].set(0.6).at[s, 1, s - 1].set(0.4)
        else:
            P = P.at[s, 1, s + 1].set(0.35).at[s, 1, s].set(0.6).at[s, 1, s - 1].set(0.05)
    r = jnp.zeros((n, 2)).at[0, 0].set(0.005).at[n - 1, 1].set(1.0)
    init = jnp.zeros(n).at[0].set(0.5).at[1].set(0.5)
    return TabularMDP(P, r, gamma, init)


def gridworld_mdp(size: int = 5, gamma: float = 0.95, slip: float = 0.1) -> TabularMDP:
    """A sparse ``size``×``size`` grid: start top-left, reward 1 only in the bottom-right corner.

    Actions up/down/left/right move one cell (walls keep you in place); with probability ``slip``
    a uniformly random action is executed instead. The goal cell is not absorbing: staying there
    keeps earning reward.
    """
    n = size * size
    moves = jnp.array([[-1, 0], [1, 0], [0, -1], [0, 1]])
    rows, cols = jnp.divmod(jnp.arange(n), size)
    nxt = []
    for dr, dc in moves.tolist():
        r2 = jnp.clip(rows + dr, 0, size - 1)
        c2 = jnp.clip(cols + dc, 0, size - 1)
        nxt.append(r2 * size + c2)
    nxt = jnp.stack(nxt, axis=1)  # [S, 4]
    det = jax.nn.one_hot(nxt, n)  # [S, 4, S]
    P = (1.0 - slip) * det + slip * jnp.mean(det, axis=1, keepdims=True)
    r = jnp.zeros((n, 4)).at[n - 1].set(1.0)
    return TabularMDP(P, r, gamma, jnp.zeros(n).at[0].set(1.0))


# ---- the algorithm's pieces ---------------------------------------------------------------------
def project_cost(c: ArrayLike, c_max: Any) -> jax.Array:
    """Euclidean projection onto the box ``[0, c_max]`` (elementwise clip)."""
    return jnp.clip(jnp.asarray(c), 0.0, c_max)


def sample_trajectory_counts(
    key: Any, mdp: TabularMDP, pi: ArrayLike, *, max_len: int
) -> tuple[jax.Array, jax.Array]:
    """Counts ``n[s, a, s']`` of one trajectory of ``pi`` and its number of transitions.

    The trajectory starts from ``mdp.init`` and stops with probability ``1 - gamma`` after each
    step, capped at ``max_len`` steps (the cap is hit with probability ``gamma**max_len``).
    """
    pi = jnp.asarray(pi)
    _check_policy(mdp, pi)
    S, A = pi.shape
    k0, key = jax.random.split(key)
    s0 = jax.random.choice(k0, S, p=mdp.init)

    def step(carry: Any, k: Any) -> tuple[Any, jax.Array]:
        s, alive = carry
        k_a, k_s, k_stop = jax.random.split(k, 3)
        a = jax.random.choice(k_a, A, p=pi[s])
        s2 = jax.random.choice(k_s, S, p=mdp.P[s, a])
        idx = (s * A + a) * S + s2
        alive_next = alive & (jax.random.uniform(k_stop) < mdp.gamma)
        return (s2, alive_next), jnp.where(alive, idx, S * A * S)  # out of range: dropped

    _, idx = jax.lax.scan(step, (s0, jnp.bool_(True)), jax.random.split(key, max_len))
    counts = jnp.zeros(S * A * S, jnp.float32).at[idx].add(1.0, mode="drop")
    return counts.reshape(S, A, S), jnp.sum(idx < S * A * S)


def _models(counts: jax.Array) -> jax.Array:
    """``P̂[l, s, a, s']`` from counts ``[l, s, a, s']`` (uniform rows where unvisited)."""
    n_sa = jnp.sum(counts, axis=-1, keepdims=True)
    S = counts.shape[-1]
    return jnp.where(n_sa > 0, counts / jnp.maximum(n_sa, 1.0), 1.0 / S)


def optimistic_q(
    cost: ArrayLike,
    models: ArrayLike,
    v: ArrayLike,
    *,
    gamma: Any,
    beta: Any,
    c_max: Any,
    member_mask: ArrayLike | None = None,
    rule: Literal["std", "min"] = "std",
    ddof: int = 0,
) -> jax.Array:
    r"""The optimistic backup of Alg. 4 (cost form) from member models ``[L, S, A, S]``.

    ``member_mask[L]`` selects the active members (default all). ``rule="std"``: clip to
    ``[0, c_max/(1-gamma)]`` of ``cost + gamma (mean - beta std)`` of :math:`\hat P_l V` over
    active members (``ddof`` 0: population std, the notebook's; std := 0 for one member);
    ``rule="min"``: ``cost + gamma min_l`` (unclipped).
    """
    models, v, cost = jnp.asarray(models), jnp.asarray(v), jnp.asarray(cost)
    if models.ndim != 4 or models.shape[1:] != (*cost.shape, v.shape[0]) or cost.ndim != 2:
        raise ValueError(
            "models, cost, v: expected shapes (L, S, A, S), (S, A), (S,); got "
            f"{models.shape}, {cost.shape}, {v.shape}"
        )
    L = models.shape[0]
    mask = jnp.ones(L, bool) if member_mask is None else jnp.asarray(member_mask, bool)
    if mask.shape != (L,):
        raise ValueError(f"member_mask: expected shape ({L},), got {mask.shape}")
    pv = jnp.einsum("lsat,t->lsa", models, v)  # [L, S, A]
    if rule == "min":
        return cost + gamma * jnp.min(jnp.where(mask[:, None, None], pv, jnp.inf), axis=0)
    if rule != "std":
        raise ValueError(f"rule must be 'std' or 'min', got {rule!r}")
    m = mask[:, None, None].astype(pv.dtype)
    n = jnp.sum(m, axis=0)
    mean = jnp.sum(m * pv, axis=0) / n
    var = jnp.sum(m * (pv - mean) ** 2, axis=0) / jnp.maximum(n - ddof, 1.0)
    std = jnp.where(n - ddof > 0, jnp.sqrt(var), 0.0)
    return jnp.clip(cost + gamma * (mean - beta * std), 0.0, c_max / (1.0 - gamma))


class SoarState(NamedTuple):
    """Carried state: per-member counts ``[L_max, S, A, S]``, cost, policy logits, V, key, samples."""

    counts: jax.Array
    cost: jax.Array
    logits: jax.Array
    v: jax.Array
    key: jax.Array
    samples: jax.Array


def make_tabular_soar(
    mdp: TabularMDP,
    *,
    num_iters: int = 100,
    max_members: int = 10,
    num_expert: int = 100,
    rule: Literal["std", "min", "ucb"] = "std",
    eta: float = 4.0,
    eta_c: float = 0.9,
    c_max: float = 1.0,
    c0: float = 0.5,
    ucb_coef: float = 10.0,
    ddof: int = 0,
    state_only_cost: bool = False,
    max_len: int | None = None,
    expert_policy: ArrayLike | None = None,
):
    r"""``run(key, n_members, beta) -> (final SoarState, metrics)``: K iterations in one ``lax.scan``.

    ``n_members`` (1 ≤ L ≤ ``max_members``) and ``beta`` may be traced, so
    ``jax.vmap(run)(keys, Ls, betas)`` sweeps seeds, ensemble sizes and bonuses in one program.
    The expert is ``expert_policy`` (default: :func:`optimal_policy` of ``mdp.r``); its
    ``num_expert`` state–action samples are drawn once per run from :math:`d^{\pi_E}`.

    Metrics per iteration (leading axis ``num_iters``): ``value`` (true-reward :math:`V^{\pi_k}`
    averaged over states, the notebook's metric), ``return`` (:math:`\langle \text{init},
    V^{\pi_k}\rangle`), ``gap`` (:math:`J(\pi_E) - J(\pi_k)`), ``samples`` (transitions consumed so
    far by all active members), ``expert_prob`` (probability of the expert's action, averaged
    over the expert's occupancy :math:`\sum_{s,a} d^{\pi_E}(s,a)\,\pi_k(a|s)`) and
    ``mixture_gap`` (the gap of the uniform mixture of :math:`\pi_1..\pi_k`).
    """
    _check_mdp(mdp)
    if rule not in ("std", "min", "ucb"):
        raise ValueError(f"rule must be 'std', 'min' or 'ucb', got {rule!r}")
    if num_iters < 1 or max_members < 1 or num_expert < 1:
        raise ValueError("num_iters, max_members and num_expert must be >= 1")
    S, A = mdp.num_states, mdp.num_actions
    gamma = float(mdp.gamma)
    # the cap truncates a trajectory with probability gamma**max_len = exp(-8) ~ 3e-4
    max_len = int(max_len or min(4000, int(8.0 / (1.0 - gamma))))
    pi_e = optimal_policy(mdp) if expert_policy is None else jnp.asarray(expert_policy)
    _check_policy(mdp, pi_e, "expert_policy")
    d_e = occupancy(mdp, pi_e)
    j_e = jnp.dot(mdp.init, policy_value(mdp, pi_e))

    def run(key: Any, n_members: Any, beta: Any) -> tuple[SoarState, dict[str, jax.Array]]:
        mask = jnp.arange(max_members) < n_members
        k_exp, key = jax.random.split(key)
        sa = jax.random.choice(k_exp, S * A, (num_expert,), p=d_e.reshape(-1))
        d_e_hat = jnp.zeros(S * A).at[sa].add(1.0 / num_expert).reshape(S, A)
        if state_only_cost:
            d_e_hat = jnp.broadcast_to(jnp.sum(d_e_hat, 1, keepdims=True), (S, A))
        init = SoarState(
            counts=jnp.zeros((max_members, S, A, S), jnp.float32),
            cost=jnp.full((S, A), c0, jnp.float32),
            logits=jnp.zeros((S, A), jnp.float32),
            v=jnp.zeros(S, jnp.float32),
            key=key,
            samples=jnp.zeros((), jnp.float32),
        )

        def iteration(st: SoarState, _: Any) -> tuple[SoarState, dict[str, jax.Array]]:
            key, k_traj = jax.random.split(st.key)
            pi = jax.nn.softmax(st.logits, axis=1)
            new, lengths = jax.vmap(
                lambda k: sample_trajectory_counts(k, mdp, pi, max_len=max_len)
            )(jax.random.split(k_traj, max_members))
            new = new * mask[:, None, None, None]
            counts = st.counts + new
            samples = st.samples + jnp.sum(jnp.where(mask, lengths, 0))
            # cost player: gap between expert and this iteration's learner visits
            visits = jnp.sum(new, axis=(0, 3))
            d_pi_hat = visits / jnp.maximum(jnp.sum(visits), 1.0)
            if state_only_cost:
                d_pi_hat = jnp.broadcast_to(jnp.sum(d_pi_hat, 1, keepdims=True), (S, A))
            cost = project_cost(st.cost - eta_c * (d_e_hat - d_pi_hat), c_max)
            # optimistic critic on the members' models
            if rule == "ucb":
                pooled = jnp.sum(counts, axis=0)
                p_hat = _models(pooled[None])[0]
                bonus = ucb_coef / jnp.sqrt(jnp.sum(pooled, axis=-1) + 1.0)
                q = jnp.clip(
                    cost + gamma * (jnp.einsum("sat,t->sa", p_hat, st.v) - bonus),
                    0.0,
                    c_max / (1.0 - gamma),
                )
            else:
                q = optimistic_q(
                    cost,
                    _models(counts),
                    st.v,
                    gamma=gamma,
                    beta=beta,
                    c_max=c_max,
                    member_mask=mask,
                    rule=rule,
                    ddof=ddof,
                )
            v = jnp.sum(pi * q, axis=1)
            logits = st.logits - eta * q
            logits = logits - jnp.max(logits, axis=1, keepdims=True)
            # exact evaluation of pi_k on the true model
            v_true = policy_value(mdp, pi)
            metrics = {
                "value": jnp.mean(v_true),
                "return": jnp.dot(mdp.init, v_true),
                "gap": j_e - jnp.dot(mdp.init, v_true),
                "samples": samples,
                "expert_prob": jnp.sum(d_e * pi),
            }
            return SoarState(counts, cost, logits, v, key, samples), metrics

        final, metrics = jax.lax.scan(iteration, init, None, length=num_iters)
        # the uniform mixture of pi_1..pi_k (the output of the paper's algorithm): its
        # occupancy is the average occupancy, so its gap is the running mean of the gaps
        metrics["mixture_gap"] = jnp.cumsum(metrics["gap"]) / jnp.arange(1, num_iters + 1)
        return final, metrics

    return run

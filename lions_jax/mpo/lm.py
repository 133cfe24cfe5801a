r"""A toy multi-turn conversation game for MPO / OMPO with a small learned LM.

The paper's LLM setting (practical Algorithms 2 and 4) in miniature, entirely in JAX so that a
whole run — supervised pre-training of the base policy, the preference-optimisation iterations
and the evaluation — is one ``make_train(cfg) -> train(key)`` program and seeds ``vmap``.

**Conversation.** ``H`` turns of six tokens ``[Q, u, v, A, style, digit]``: the prompt asks for
``(u + v) mod 10``; the answer is a *style* token (one of three) and a digit. The first prompt's
``u, v`` are random; afterwards ``u`` is the player's own previous answer digit (a running sum)
and ``v`` is fresh (the transition :math:`x_{h+1} \sim f(\cdot \mid s_h, a_h)`).

**Judge.** A programmatic, **non-transitive** per-turn preference between two answers, each in
its own context (the players roll out independently, as in the paper):

.. math::
   r(a, a') = \tfrac12 + \tfrac{w_q}{2}(c - c') + \tfrac{1 - w_q}{2}\, C_{\sigma\sigma'},

with :math:`c \in \{0, 1\}` the correctness of the digit and :math:`C` the rock-paper-scissors
matrix over styles (0 ≻ 1 ≻ 2 ≻ 0; a non-style token loses to every style). It is constant-sum,
:math:`r(a, a') + r(a', a) = 1`, in :math:`[0, 1]`, and not Bradley–Terry. The per-turn Nash
answer is *correct, with a uniform style*; the base policy is not (it is pre-trained on answers
that are correct with probability ``sft_accuracy`` with styles drawn from ``style_prior``).

**Methods** (each iteration samples from the current policy :math:`\pi^t`, then fits
:math:`\pi^{t+1}` from :math:`\pi^t` with ``inner_steps`` Adam steps):

* ``"mpo"`` — one trajectory per prompt, ``K`` answers branched at every turn, :math:`\hat Q` the
  answer's winning rate against the ``K`` answers at the same state (the paper's experiments use
  the immediate preference), trained on the best and worst of the ``K`` (the paper's choice;
  ``train_on="all"`` uses all) with :func:`~lions_jax.mpo.losses.mpo_loss` (target
  :math:`\beta(\hat Q - \tfrac12)`);
* ``"ompo"`` — the same with :func:`~lions_jax.mpo.losses.ompo_loss`, target
  :math:`\beta(2\hat Q^{t,t} - \hat Q^{t,t-1} - \tau)`, :math:`\hat Q^{t,t-1}` against ``K``
  answers of the previous policy at the same state; the first iteration is MPO's. With
  :math:`\tau = \tfrac12` (our default: the tie value of one step) removing the optimism gives
  MPO's loss exactly; the paper's chat runs used :math:`\tau = 0`;
* ``"sppo"`` — SPPO at the trajectory level (the whole conversation is one action; ``K``
  independent conversations per prompt; winning rate = the sum over turns of the per-turn
  preferences, so β means what it means for MPO): :func:`~lions_jax.mpo.losses.sppo_loss`-style
  regression of the conversation's log-ratio on :math:`\beta(\hat P - \tfrac H2)`;
* ``"dpo"`` — iterative DPO: best vs worst of the ``K`` conversations by winning rate,
  :math:`-\log\sigma(\beta_{\rm DPO}[\Delta_w - \Delta_l])` with :math:`\Delta = \log\pi_\theta /
  \pi^t` of the conversation;
* ``"step_dpo"`` — Step-DPO: the same DPO loss on the best vs worst of the ``K`` answers branched
  at each turn.

**Metrics** after every iteration, at the states the policy itself visits (``num_eval_prompts``
conversations): the per-state **exploitability** against the best response over the finite
candidate set of 3 styles × 10 digits, :math:`\max_a \mathbb E_{a' \sim \pi} r(a, a') - \tfrac12`,
computed exactly from the model's probabilities; the **win rate against the base policy** (the
two roll out independently from the same first prompt; per turn the exact expected preference
given both states); accuracy; the style distribution and its entropy (the Nash's is uniform,
:math:`\log 3`).
"""

import dataclasses
import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.models import LMConfig, TransformerLM
from lions_jax.mpo.losses import mpo_loss, ompo_loss, winning_rate_q

__all__ = [
    "LM_METHODS",
    "STYLE_MATRIX",
    "LMGameConfig",
    "LMGameOutput",
    "answer_distribution",
    "expected_preference",
    "judge",
    "make_sft",
    "make_train",
    "sample_sft_batch",
    "state_exploitability",
]

LM_METHODS = ("mpo", "ompo", "sppo", "dpo", "step_dpo")

NUM_DIGITS = 10
NUM_STYLES = 3
STYLE0 = 10  # style tokens 10, 11, 12
Q_TOKEN = 13
A_TOKEN = 14
VOCAB_SIZE = 15
TURN = 6  # [Q, u, v, A, style, digit]
_STYLE_POS, _DIGIT_POS = 4, 5

# Rock-paper-scissors over styles 0 ≻ 1 ≻ 2 ≻ 0; index 3 (any non-style token) loses to all.
STYLE_MATRIX = jnp.array(
    [[0, 1, -1, 1], [-1, 0, 1, 1], [1, -1, 0, 1], [-1, -1, -1, 0]], dtype=jnp.float32
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LMGameConfig:
    """One preference-optimisation run of the toy conversation game.

    Attributes:
      method: one of :data:`LM_METHODS`.
      horizon: turns per conversation (H).
      num_addends: each prompt adds ``v`` drawn from ``0 .. num_addends - 1`` (10: any digit);
        small values make the arithmetic quick to learn for a tiny LM.
      num_samples: K answers (or conversations) per state (or prompt).
      num_prompts: prompts per iteration.
      num_iterations: preference-optimisation iterations T.
      beta: the MPO / OMPO / SPPO regression step size β.
      dpo_beta: DPO's inverse temperature.
      tau: OMPO's offset τ.
      train_on: ``"best_worst"`` of the K (the paper) or ``"all"`` K (MPO, OMPO, SPPO).
      inner_steps, learning_rate: Adam steps (full batch) and step size per iteration.
      quality_weight: the judge's weight w_q on correctness (the rest is the cyclic style part).
      style_prior: the base policy's style distribution in its pre-training data.
      sft_accuracy: the fraction of correct answers in the pre-training data.
      sft_steps, sft_batch, sft_learning_rate: pre-training of the base policy.
      d_model, num_layers, num_heads: the LM (:class:`~lions_jax.models.TransformerLM`).
      num_eval_prompts: conversations per evaluation.
    """

    method: Literal["mpo", "ompo", "sppo", "dpo", "step_dpo"] = "mpo"
    horizon: int = 3
    num_addends: int = 3
    num_samples: int = 5
    num_prompts: int = 64
    num_iterations: int = 8
    beta: float = 4.0
    dpo_beta: float = 1.0
    tau: float = 0.5
    train_on: Literal["best_worst", "all"] = "best_worst"
    inner_steps: int = 20
    learning_rate: float = 1e-3
    quality_weight: float = 0.4
    style_prior: tuple[float, ...] = (0.6, 0.3, 0.1)
    sft_accuracy: float = 0.6
    sft_steps: int = 400
    sft_batch: int = 128
    sft_learning_rate: float = 3e-3
    d_model: int = 32
    num_layers: int = 1
    num_heads: int = 2
    num_eval_prompts: int = 128

    def __post_init__(self) -> None:
        if self.method not in LM_METHODS:
            raise ValueError(f"method: expected one of {LM_METHODS}, got {self.method!r}")
        if self.train_on not in ("best_worst", "all"):
            raise ValueError(f"train_on: expected 'best_worst' or 'all', got {self.train_on!r}")
        for name in (
            "horizon", "num_prompts", "num_iterations", "inner_steps", "sft_steps", "sft_batch",
            "d_model", "num_layers", "num_heads", "num_eval_prompts",
        ):  # fmt: skip
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if not isinstance(self.num_addends, int) or not 1 <= self.num_addends <= NUM_DIGITS:
            raise ValueError(f"num_addends: expected an int in [1, 10], got {self.num_addends!r}")
        if not isinstance(self.num_samples, int) or self.num_samples < 2:
            raise ValueError(f"num_samples: expected an int >= 2, got {self.num_samples!r}")
        for name in ("beta", "dpo_beta", "learning_rate", "sft_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if not 0 <= self.quality_weight <= 1:
            raise ValueError(f"quality_weight: expected in [0, 1], got {self.quality_weight}")
        if not 0 <= self.sft_accuracy <= 1:
            raise ValueError(f"sft_accuracy: expected in [0, 1], got {self.sft_accuracy}")
        prior = tuple(self.style_prior)
        if len(prior) != NUM_STYLES or min(prior) < 0 or not math.isclose(sum(prior), 1.0):
            raise ValueError(
                f"style_prior: expected {NUM_STYLES} non-negative probabilities summing to 1, "
                f"got {self.style_prior}"
            )

    @property
    def seq_len(self) -> int:
        return TURN * self.horizon

    def lm_config(self) -> LMConfig:
        return LMConfig(
            vocab_size=VOCAB_SIZE,
            d_model=self.d_model,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            max_len=self.seq_len,
        )


class LMGameOutput(NamedTuple):
    """Per evaluation ``t = 0 .. T`` (``t = 0`` is the base policy), at the policy's own states.

    Attributes:
      exploitability: mean per-state exploitability over the 30-answer candidate set.
      win_rate: expected per-turn preference of the policy over the base policy.
      accuracy: mean probability of a correct digit.
      style_entropy: mean entropy (nats) of the style distribution (uniform: log 3).
      style_probs: ``(T + 1, 4)`` mean probability of each style and of a non-style token.
    """

    exploitability: jax.Array
    win_rate: jax.Array
    accuracy: jax.Array
    style_entropy: jax.Array
    style_probs: jax.Array


# ----------------------------------------------------------------------------- judge
def judge(
    style: ArrayLike,
    correct: ArrayLike,
    style_op: ArrayLike,
    correct_op: ArrayLike,
    quality_weight: ArrayLike,
) -> jax.Array:
    """``r(a, a')`` for answers given by style index (0–2, 3 = none) and correctness."""
    c = jnp.asarray(correct, jnp.float32) - jnp.asarray(correct_op, jnp.float32)
    cyc = STYLE_MATRIX[jnp.asarray(style), jnp.asarray(style_op)]
    return 0.5 + quality_weight / 2 * c + (1 - quality_weight) / 2 * cyc


def expected_preference(
    p_style: ArrayLike,
    p_correct: ArrayLike,
    p_style_op: ArrayLike,
    p_correct_op: ArrayLike,
    quality_weight: ArrayLike,
) -> jax.Array:
    """``E r(a, a')`` for independent answers: style distributions ``(..., 4)`` and
    probabilities of a correct digit ``(...)`` (the judge is additive in the two parts)."""
    cyc = jnp.einsum("...i,ij,...j->...", p_style, STYLE_MATRIX, p_style_op)
    return 0.5 + quality_weight / 2 * (p_correct - p_correct_op) + (1 - quality_weight) / 2 * cyc


def state_exploitability(
    p_style: ArrayLike, p_correct: ArrayLike, quality_weight: ArrayLike
) -> jax.Array:
    """``max_a E_{a' ~ π} r(a, a') − 1/2`` at one state, over the 3 styles × 10 digits: the best
    response answers correctly in the style that beats ``p_style`` most (0 iff ``π`` is the
    Nash answer: correct with probability 1 and uniform over the three styles)."""
    cyc = jnp.einsum("ij,...j->...i", STYLE_MATRIX[:NUM_STYLES], jnp.asarray(p_style))
    w = quality_weight
    return w / 2 * (1 - jnp.asarray(p_correct)) + (1 - w) / 2 * cyc.max(-1)


# ----------------------------------------------------------------------------- tokens
# Turn indices may be traced (the turn loops are ``lax.scan``s, so one copy of the model is
# compiled per loop, not per turn); writes past the end of the conversation are dropped.
def _turn_prompt(tokens: jax.Array, turn: Any, u: jax.Array, v: jax.Array) -> jax.Array:
    base = TURN * turn
    for offset, value in ((0, Q_TOKEN), (1, u), (2, v), (3, A_TOKEN)):
        tokens = tokens.at[..., base + offset].set(value, mode="drop")
    return tokens


def _answer_fields(tokens: jax.Array, turn: Any) -> tuple[jax.Array, jax.Array]:
    """(style index 0–3, correct) of the answer at ``turn``."""
    base = TURN * turn
    s = tokens[..., base + _STYLE_POS] - STYLE0
    style = jnp.where((s >= 0) & (s < NUM_STYLES), s, NUM_STYLES)
    target = (tokens[..., base + 1] + tokens[..., base + 2]) % NUM_DIGITS
    return style, tokens[..., base + _DIGIT_POS] == target


def _next_u(tokens: jax.Array, turn: Any) -> jax.Array:
    d = tokens[..., TURN * turn + _DIGIT_POS]
    return jnp.where(d < NUM_DIGITS, d, 0)


def sample_sft_batch(
    key: ArrayLike,
    batch: int,
    horizon: int,
    style_prior: Any,
    accuracy: ArrayLike,
    num_addends: int = NUM_DIGITS,
) -> jax.Array:
    """Pre-training conversations ``(batch, 6 H)``: styles from ``style_prior``, digits correct
    with probability ``accuracy`` (else a uniformly random wrong digit)."""
    keys = jax.random.split(key, 4 * horizon)
    tokens = jnp.zeros((batch, TURN * horizon), jnp.int32)
    u = jax.random.randint(keys[0], (batch,), 0, NUM_DIGITS)
    logits = jnp.log(jnp.asarray(style_prior, jnp.float32))
    for h in range(horizon):
        kv, ks, kc, kw = keys[4 * h : 4 * h + 4]
        v = jax.random.randint(kv, (batch,), 0, num_addends)
        tokens = _turn_prompt(tokens, h, u, v)
        style = jax.random.categorical(ks, logits, shape=(batch,))
        target = (u + v) % NUM_DIGITS
        wrong = (target + jax.random.randint(kw, (batch,), 1, NUM_DIGITS)) % NUM_DIGITS
        digit = jnp.where(jax.random.uniform(kc, (batch,)) < accuracy, target, wrong)
        tokens = tokens.at[:, TURN * h + _STYLE_POS].set(STYLE0 + style)
        tokens = tokens.at[:, TURN * h + _DIGIT_POS].set(digit)
        u = digit
    return tokens


def _answer_mask(seq_len: int, turns: jax.Array | None) -> jax.Array:
    """``(..., seq_len - 1)`` target mask of the answer tokens of ``turns`` (all turns if None)."""
    pos = jnp.arange(1, seq_len) % TURN
    is_answer = (pos == _STYLE_POS) | (pos == _DIGIT_POS)
    if turns is None:
        return is_answer
    turn_of = jnp.arange(1, seq_len) // TURN
    return is_answer & (turn_of == jnp.asarray(turns)[..., None])


# ----------------------------------------------------------------------------- model calls
def _logits(graphdef: Any, params: Any, tokens: jax.Array) -> jax.Array:
    flat = tokens.reshape(-1, tokens.shape[-1])
    return nnx.merge(graphdef, params)(flat).reshape(*tokens.shape, -1)


def _answer_logprob(graphdef: Any, params: Any, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """Sum of log-probs of the masked target tokens, per sequence."""
    logp = jax.nn.log_softmax(_logits(graphdef, params, tokens)[..., :-1, :], axis=-1)
    tok = jnp.take_along_axis(logp, tokens[..., 1:, None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(mask, tok, 0.0), axis=-1)


def _sample_answer(
    key: jax.Array, graphdef: Any, params: Any, tokens: jax.Array, turn: Any
) -> tuple[jax.Array, jax.Array]:
    """Fill the answer of ``turn`` (style then digit) by sampling; returns (tokens, log-prob)."""
    logp_total = jnp.zeros(tokens.shape[:-1], jnp.float32)
    for offset, k in zip((_STYLE_POS, _DIGIT_POS), jax.random.split(key), strict=True):
        pos = TURN * turn + offset
        logits = jnp.take(_logits(graphdef, params, tokens), pos - 1, axis=-2)
        logp = jax.nn.log_softmax(logits, axis=-1)
        tok = jax.random.categorical(k, logp).astype(jnp.int32)
        logp_total += jnp.take_along_axis(logp, tok[..., None], axis=-1)[..., 0]
        tokens = tokens.at[..., pos].set(tok)
    return tokens, logp_total


def _first_prompts(key: jax.Array, n: int, num_addends: int) -> jax.Array:
    ku, kv = jax.random.split(key)
    u = jax.random.randint(ku, (n,), 0, NUM_DIGITS)
    return jnp.stack([u, jax.random.randint(kv, (n,), 0, num_addends)], -1)


def _rollout(
    key: jax.Array,
    graphdef: Any,
    params: Any,
    first_uv: jax.Array,
    horizon: int,
    num_addends: int,
) -> tuple[jax.Array, jax.Array]:
    """Conversations ``(..., 6 H)`` from first prompts ``(..., 2)``; returns (tokens, log-prob of
    all answers)."""
    batch = first_uv.shape[:-1]
    tokens = jnp.zeros((*batch, TURN * horizon), jnp.int32)
    tokens = _turn_prompt(tokens, 0, first_uv[..., 0], first_uv[..., 1])

    def turn(carry: Any, xs: Any) -> tuple[Any, None]:
        tokens, logp = carry
        k, h = xs
        ka, kv = jax.random.split(k)
        tokens, lp = _sample_answer(ka, graphdef, params, tokens, h)
        v = jax.random.randint(kv, batch, 0, num_addends)
        return (_turn_prompt(tokens, h + 1, _next_u(tokens, h), v), logp + lp), None

    init = (tokens, jnp.zeros(batch, jnp.float32))
    xs = (jax.random.split(key, horizon), jnp.arange(horizon))
    return jax.lax.scan(turn, init, xs)[0]


def answer_distribution(
    graphdef: Any, params: Any, tokens: jax.Array, turn: Any
) -> tuple[jax.Array, jax.Array]:
    """Exact answer statistics at the state of ``turn`` (its prompt filled in ``tokens``):
    ``p_style (..., 4)`` (three styles and any other token) and ``p_correct (...)``."""
    pos = TURN * turn + _STYLE_POS
    variants = jnp.stack(
        [tokens.at[..., pos].set(STYLE0 + s) for s in range(NUM_STYLES)], axis=-2
    )  # (..., 3, L)
    probs = jax.nn.softmax(_logits(graphdef, params, variants), axis=-1)
    p_tok = jnp.take(probs[..., 0, :, :], pos - 1, axis=-2)
    p_valid = p_tok[..., STYLE0 : STYLE0 + NUM_STYLES]
    p_style = jnp.concatenate([p_valid, 1 - p_valid.sum(-1, keepdims=True)], axis=-1)
    target = (tokens[..., TURN * turn + 1] + tokens[..., TURN * turn + 2]) % NUM_DIGITS
    p_digit = jnp.take(probs, pos, axis=-2)  # (..., 3, V): the digit given each style
    p_corr_given = jnp.take_along_axis(p_digit, target[..., None, None], axis=-1)[..., 0]
    return p_style, jnp.sum(p_valid * p_corr_given, axis=-1)


# ----------------------------------------------------------------------------- data per method
class _Batch(NamedTuple):
    """Training rows; with DPO pairs, rows ``[0, B/2)`` are the chosen, ``[B/2, B)`` the rejected."""

    tokens: jax.Array  # (B, L)
    mask: jax.Array  # (B, L - 1): the answer tokens scored
    logp_old: jax.Array  # (B,)
    q: jax.Array  # (B,) Q̂^{t,t} (step level) or the winning rate summed over turns
    q_prev: jax.Array  # (B,) Q̂^{t,t-1} (OMPO)


def _select(q: jax.Array, best_worst: bool) -> jax.Array:
    """Indices along the last axis of the K samples to train on."""
    if not best_worst:
        return jnp.broadcast_to(jnp.arange(q.shape[-1]), q.shape)
    return jnp.stack([jnp.argmax(q, -1), jnp.argmin(q, -1)], axis=-1)


def _step_data(
    key: jax.Array,
    cfg: LMGameConfig,
    graphdef: Any,
    params: Any,
    prev_params: Any,
    first_uv: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One trajectory per prompt with K answers branched at each turn.

    Returns tokens ``(N, H, K, L)``, turn ``(N, H, K)``, logp_old, Q̂^{t,t} and Q̂^{t,t-1}
    ``(N, H, K)``."""
    n, k_num, horizon = first_uv.shape[0], cfg.num_samples, cfg.horizon
    trunk = jnp.zeros((n, cfg.seq_len), jnp.int32)
    trunk = _turn_prompt(trunk, 0, first_uv[:, 0], first_uv[:, 1])

    def win_rates(style: jax.Array, corr: jax.Array, s_op: jax.Array, c_op: jax.Array) -> Any:
        pair = judge(style[:, :, None], corr[:, :, None], s_op[:, None], c_op[:, None],
                     cfg.quality_weight)  # fmt: skip
        return jax.vmap(winning_rate_q)(pair)

    def turn(trunk: jax.Array, xs: Any) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        kh, h = xs
        ka, kp, kv = jax.random.split(kh, 3)
        branches = jnp.broadcast_to(trunk[:, None], (n, k_num, cfg.seq_len))
        branches, lp = _sample_answer(ka, graphdef, params, branches, h)
        style, corr = _answer_fields(branches, h)
        q = win_rates(style, corr, style, corr)
        if cfg.method == "ompo":
            prev, _ = _sample_answer(kp, graphdef, prev_params, branches, h)
            q_prev = win_rates(style, corr, *_answer_fields(prev, h))
        else:
            q_prev = q
        v = jax.random.randint(kv, (n,), 0, cfg.num_addends)
        trunk = _turn_prompt(branches[:, 0], h + 1, _next_u(branches[:, 0], h), v)
        return trunk, (branches, lp, q, q_prev)

    xs = (jax.random.split(key, horizon), jnp.arange(horizon))
    _, outs = jax.lax.scan(turn, trunk, xs)
    tok, lp, q, q_prev = (jnp.moveaxis(o, 0, 1) for o in outs)
    turns = jnp.broadcast_to(jnp.arange(horizon)[None, :, None], (n, horizon, k_num))
    return tok, turns, lp, q, q_prev


def _make_batch(
    key: jax.Array, cfg: LMGameConfig, graphdef: Any, params: Any, prev_params: Any, t: jax.Array
) -> _Batch:
    kp, kd = jax.random.split(key)
    first_uv = _first_prompts(kp, cfg.num_prompts, cfg.num_addends)
    seq_len, horizon = cfg.seq_len, cfg.horizon
    best_worst = cfg.train_on == "best_worst" or cfg.method in ("dpo", "step_dpo")
    if cfg.method in ("mpo", "ompo", "step_dpo"):
        tokens, turn, lp, q, qp = _step_data(kd, cfg, graphdef, params, prev_params, first_uv)
        qp = jnp.where(t == 0, q, qp)  # OMPO's first step is MPO's
        idx = _select(q, best_worst)  # (N, H, k)
        take = lambda x: jnp.take_along_axis(x, idx, axis=-1)  # noqa: E731
        tok = jnp.take_along_axis(tokens, idx[..., None], axis=2)
        fields = (tok, _answer_mask(seq_len, take(turn)), take(lp), take(q), take(qp))
    else:  # trajectory level: K independent conversations per prompt
        uv = jnp.broadcast_to(first_uv[:, None], (cfg.num_prompts, cfg.num_samples, 2))
        tokens, lp = _rollout(kd, graphdef, params, uv, horizon, cfg.num_addends)
        style, corr = jax.vmap(_answer_fields, (None, 0), 1)(tokens, jnp.arange(horizon))
        pair = judge(
            style[..., :, None],
            corr[..., :, None],
            style[..., None, :],
            corr[..., None, :],
            cfg.quality_weight,
        )  # fmt: skip  (N, H, K, K)
        q = jax.vmap(winning_rate_q)(pair)  # (N, K): winning rate summed over the turns
        idx = _select(q, best_worst)  # (N, k)
        take = lambda x: jnp.take_along_axis(x, idx, axis=-1)  # noqa: E731
        tok = jnp.take_along_axis(tokens, idx[..., None], axis=1)
        mask = jnp.broadcast_to(_answer_mask(seq_len, None), (*idx.shape, seq_len - 1))
        fields = (tok, mask, take(lp), take(q), take(q))
    if best_worst:  # the selection axis first: chosen rows, then rejected (DPO pairs)
        fields = tuple(jnp.moveaxis(f, idx.ndim - 1, 0) for f in fields)
    tok, mask, lp, q, qp = fields
    return _Batch(
        tok.reshape(-1, seq_len), mask.reshape(-1, seq_len - 1), lp.reshape(-1),
        q.reshape(-1), qp.reshape(-1),
    )  # fmt: skip


def _loss(cfg: LMGameConfig, graphdef: Any, params: Any, batch: _Batch, t: jax.Array) -> jax.Array:
    logp_new = _answer_logprob(graphdef, params, batch.tokens, batch.mask)
    if cfg.method in ("dpo", "step_dpo"):
        chosen, rejected = jnp.split(logp_new - batch.logp_old, 2)
        return -jnp.mean(jax.nn.log_sigmoid(cfg.dpo_beta * (chosen - rejected)))
    if cfg.method == "ompo":
        tau = jnp.where(t == 0, 0.5, cfg.tau)  # t = 0: MPO's target β(Q̂ − 1/2)
        per = ompo_loss(logp_new, batch.logp_old, batch.q, batch.q_prev, cfg.beta, tau)
    else:  # one remaining step per answer (MPO), or the whole conversation (SPPO)
        steps = cfg.horizon if cfg.method == "sppo" else 1
        per = mpo_loss(logp_new, batch.logp_old, batch.q, 0, steps, cfg.beta)
    return jnp.mean(per)


def _fit(loss_fn: Any, params: Any, steps: int, learning_rate: float) -> Any:
    """``steps`` full-batch Adam steps on ``loss_fn(params)`` (fresh optimiser state)."""
    opt = optax.adam(learning_rate)

    def step(carry: Any, _: Any) -> tuple[Any, jax.Array]:
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, losses


def _evaluate(
    key: jax.Array, cfg: LMGameConfig, graphdef: Any, params: Any, base_params: Any
) -> tuple[jax.Array, ...]:
    """(exploitability, win rate vs base, accuracy, style entropy, style probs)."""
    kp, kr = jax.random.split(key)
    first_uv = _first_prompts(kp, cfg.num_eval_prompts, cfg.num_addends)
    # the policy and the base policy in one batched program: a stacked leading axis of 2
    both = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, base_params)

    def stats(params: Any, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        tok, _ = _rollout(k, graphdef, params, first_uv, cfg.horizon, cfg.num_addends)
        dist = jax.vmap(answer_distribution, (None, None, None, 0), 1)
        return dist(graphdef, params, tok, jnp.arange(cfg.horizon))  # (N, H, 4), (N, H)

    p_style, p_corr = jax.vmap(stats)(both, jax.random.split(kr))
    w = cfg.quality_weight
    win = expected_preference(p_style[0], p_corr[0], p_style[1], p_corr[1], w).mean()
    p_style, p_corr = p_style[0], p_corr[0]
    p3 = p_style[..., :NUM_STYLES] / p_style[..., :NUM_STYLES].sum(-1, keepdims=True)
    entropy = -jnp.sum(p3 * jnp.log(jnp.maximum(p3, 1e-30)), -1)
    return (
        state_exploitability(p_style, p_corr, w).mean(),
        win,
        p_corr.mean(),
        entropy.mean(),
        p_style.mean((0, 1)),
    )


def make_sft(cfg: LMGameConfig) -> Any:
    """``(graphdef, sft)`` with ``sft(key) -> params``: the base policy, trained on :func:`sample_sft_batch` data."""
    graphdef = nnx.graphdef(
        nnx.eval_shape(lambda: TransformerLM(cfg.lm_config(), rngs=nnx.Rngs(0)))
    )
    mask = _answer_mask(cfg.seq_len, None)

    def sft(key: ArrayLike) -> Any:
        k_init, k_data = jax.random.split(key)
        params = nnx.state(TransformerLM(cfg.lm_config(), rngs=nnx.Rngs(k_init)))
        opt = optax.adam(cfg.sft_learning_rate)

        def step(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            p, s = carry
            batch = sample_sft_batch(k, cfg.sft_batch, cfg.horizon, cfg.style_prior,
                                     cfg.sft_accuracy, cfg.num_addends)  # fmt: skip

            def loss_fn(p: Any) -> jax.Array:
                return -jnp.sum(_answer_logprob(graphdef, p, batch, mask)) / (
                    batch.shape[0] * mask.sum()
                )

            loss, g = jax.value_and_grad(loss_fn)(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        keys = jax.random.split(k_data, cfg.sft_steps)
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), keys)
        return params

    return graphdef, sft


def make_train(cfg: LMGameConfig) -> Any:
    """``train(key, base=None) -> LMGameOutput``: ``num_iterations`` of ``cfg.method`` from the
    base policy ``base`` (parameters from :func:`make_sft`'s ``sft``; pre-trained from ``key``
    when None). ``jax.vmap`` over keys (and bases) runs seeds; passing the bases lets several
    methods share them."""
    graphdef, sft = make_sft(cfg)

    def train(key: ArrayLike, base: Any = None) -> LMGameOutput:
        k_sft, k_loop = jax.random.split(key)
        base = sft(k_sft) if base is None else base

        def iteration(carry: Any, k: jax.Array) -> tuple[Any, tuple[jax.Array, ...]]:
            # evaluate, then update (skipped after the last evaluation): one compiled copy of
            # the evaluation serves t = 0 .. T
            params, _, t = carry
            kb, ke = jax.random.split(k)
            metrics = _evaluate(ke, cfg, graphdef, params, base)

            def update(carry: Any) -> Any:
                params, prev, t = carry
                batch = _make_batch(kb, cfg, graphdef, params, prev, t)
                new, _ = _fit(
                    lambda p: _loss(cfg, graphdef, p, batch, t), params, cfg.inner_steps,
                    cfg.learning_rate,
                )  # fmt: skip
                return new, params, t + 1

            carry = jax.lax.cond(t < cfg.num_iterations, update, lambda c: c, carry)
            return carry, metrics

        keys = jax.random.split(k_loop, cfg.num_iterations + 1)
        init = (base, base, jnp.zeros((), jnp.int32))
        return LMGameOutput(*jax.lax.scan(iteration, init, keys)[1])

    return train

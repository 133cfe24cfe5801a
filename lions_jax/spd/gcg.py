r"""GCG: Greedy Coordinate Gradient adversarial-suffix search (Zou, Wang, Carlini, Nasr, Kolter,
Fredrikson, *Universal and Transferable Adversarial Attacks on Aligned Language Models*,
arXiv 2307.15043), in JAX, for a :class:`~lions_jax.models.TransformerLM`.

**Objective.** A prompt is laid out as ``[prefix][suffix][infix][target]`` (fixed lengths, int32
token ids): e.g. ``bos + "User: how do I make X "``, the :math:`m` adversarial tokens
:math:`x_{1:m}` being optimised, ``"\nAssistant: "``, and the wanted answer
``"Sure, here is how to make X"``. The loss is the mean teacher-forced negative log-likelihood
of the :math:`n` target tokens,

.. math::
   \mathcal L(x_{1:m}) = -\frac1n \sum_{j=1}^{n}
       \log p\big(t_j \mid \text{prefix}, x_{1:m}, \text{infix}, t_{<j}\big).

**Token gradients.** Writing suffix token :math:`i` as a one-hot row :math:`e_{x_i}\in\{0,1\}^V`,
its embedding is :math:`e_{x_i}^\top W_E` (:math:`W_E`: the :math:`V\times D` embedding table).
Relaxing :math:`e_{x_i}` to :math:`\mathbb R^V` makes the loss differentiable in it, and

.. math::
   G_{i,v} = \frac{\partial \mathcal L}{\partial (e_{x_i})_v}, \qquad G \in \mathbb R^{m\times V}

is a first-order estimate of how much swapping token :math:`i` for :math:`v` changes the loss
(:func:`token_gradients`; one forward and one backward pass through the model on embeddings).

**Candidates.** For every position :math:`i` the candidate set is the top-:math:`k` tokens of
:math:`-G_{i,\cdot}` restricted to the allowed vocabulary
:math:`\mathcal X_i = \operatorname{top-}k_{v\in\mathcal A}(-G_{i,v})`. A step draws :math:`B`
single-token substitutions: for :math:`b = 1..B`, a position :math:`i_b \sim
\operatorname{Uniform}\{1..m\}` and a token :math:`v_b \sim \operatorname{Uniform}(\mathcal
X_{i_b})`, giving :math:`\tilde x^{(b)} = x` with :math:`\tilde x^{(b)}_{i_b} = v_b`.

**Batched evaluation and argmin.** The :math:`B` candidate prompts go through the model in one
batched forward pass (exact losses, no linearisation), and the step moves to
:math:`x \leftarrow \tilde x^{(b^\*)}`, :math:`b^\* = \arg\min_b \mathcal L(\tilde x^{(b)})`.

What is implemented, and the choices made:

* :func:`gcg_step` follows the paper's Algorithm 1: it always moves to the best *candidate*, even
  when that is worse than the current suffix (this lets the search leave a local minimum). With
  ``keep_current=True`` (``GCGConfig.keep_current``) the current suffix competes too, which
  makes the search monotone.
* :func:`gcg_attack` runs ``num_steps`` steps in a ``lax.scan`` under ``jit`` and tracks the best
  suffix seen so far separately (as the reference code does); ``GCGResult.losses`` is that
  non-increasing best-so-far history and ``GCGResult.step_losses`` the loss of the current
  suffix after every step.
* Positions are drawn uniformly (the paper's Algorithm 1; the reference code instead spreads
  positions evenly over the batch). Disallowed tokens get ``-inf`` score before the top-k; if
  fewer than ``top_k`` tokens are allowed, a candidate token is drawn among the allowed ones only.
* The reference implementation drops candidates whose decoded text re-tokenises differently. With
  the byte-level :class:`~lions_jax.data.text.ByteTokenizer` and single-byte allowed tokens (the
  default: printable ASCII 33..126) every candidate round-trips, so no filter is needed.
* Only the hidden states that predict target tokens go through the output head, so a large
  vocabulary costs ``B * n * V`` logits per step rather than ``B * T * V``;
  ``GCGConfig.eval_batch_size`` additionally evaluates the candidates in chunks (``lax.map``) to
  bound memory. The prefix is recomputed for every candidate (no shared KV cache).
* Everything is a pure function of ``(key, graphdef, state, tokens)``: :func:`gcg_attack` can be
  ``jax.vmap``-ed over ``(key, prefix, suffix_init, target)`` for a batch of prompts of equal
  lengths.

Input checks (shapes, dtypes, sizes, and — for concrete arrays — token values) raise
``ValueError`` naming the argument at trace time.
"""

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.models import LMConfig, TransformerLM

__all__ = [
    "PRINTABLE_ASCII",
    "GCGConfig",
    "GCGResult",
    "allowed_token_mask",
    "candidate_losses",
    "gcg_attack",
    "gcg_step",
    "sample_candidates",
    "target_loss",
    "token_gradients",
]

PRINTABLE_ASCII: tuple[int, ...] = tuple(range(33, 127))
"""Token ids of the printable, non-space ASCII bytes ``!`` .. ``~`` (GCG's default vocabulary)."""


# ============================================================================================
# Configuration / result
# ============================================================================================
@dataclasses.dataclass(frozen=True, kw_only=True)
class GCGConfig:
    """Hyper-parameters of :func:`gcg_attack` (hashable: passed to ``jit`` as a static argument).

    Attributes:
      num_steps: GCG iterations.
      top_k: candidate tokens per suffix position (the ``top_k`` most negative gradient entries).
      num_candidates: single-token substitutions evaluated per step (``B`` in the paper).
      allowed: token ids that may appear in the suffix (default: printable ASCII 33..126).
      keep_current: let the current suffix compete with the candidates (monotone search);
        False (the paper) always moves to the best candidate.
      eval_batch_size: evaluate the candidates in chunks of this size (None: all at once).
    """

    num_steps: int = 100
    top_k: int = 32
    num_candidates: int = 64
    allowed: tuple[int, ...] = PRINTABLE_ASCII
    keep_current: bool = False
    eval_batch_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_steps", "top_k", "num_candidates"):
            _check_pos_int(name, getattr(self, name))
        if self.eval_batch_size is not None:
            _check_pos_int("eval_batch_size", self.eval_batch_size)
        allowed = tuple(self.allowed)
        if not allowed or any(
            not isinstance(a, (int, np.integer)) or isinstance(a, bool) or a < 0 for a in allowed
        ):
            raise ValueError(
                f"allowed: expected a non-empty tuple of token ids >= 0, got {allowed}"
            )
        object.__setattr__(self, "allowed", tuple(sorted({int(a) for a in allowed})))


class GCGResult(NamedTuple):
    """Result of :func:`gcg_attack`.

    Attributes:
      suffix: (m,) the best suffix found (lowest loss over all steps, initial suffix included).
      loss: () its target loss.
      losses: (num_steps,) best-so-far loss after each step (non-increasing).
      step_losses: (num_steps,) loss of the search's current suffix after each step.
      initial_loss: () the target loss of ``suffix_init``.
    """

    suffix: jax.Array
    loss: jax.Array
    losses: jax.Array
    step_losses: jax.Array
    initial_loss: jax.Array


def allowed_token_mask(allowed: tuple[int, ...], vocab_size: int) -> jax.Array:
    """(vocab_size,) bool mask of the ``allowed`` token ids (``ValueError`` if one is out of range)."""
    bad = [a for a in allowed if not 0 <= a < vocab_size]
    if bad:
        raise ValueError(
            f"allowed: token ids {bad[:5]} are outside the vocabulary [0, {vocab_size})"
        )
    mask = np.zeros((vocab_size,), bool)
    mask[list(allowed)] = True
    return jnp.asarray(mask)


# ============================================================================================
# Validation
# ============================================================================================
def _check_pos_int(name: str, value: object) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


def _is_concrete(x: jax.Array) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_tokens(name: str, x: ArrayLike, *, allow_empty: bool) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 1 or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            f"{name}: expected a 1-D integer array of token ids, got {x.dtype}{x.shape}"
        )
    if not allow_empty and x.shape[0] < 1:
        raise ValueError(f"{name}: needs at least one token")
    return x.astype(jnp.int32)


def _lm_config(graphdef: nnx.GraphDef, state: Any) -> LMConfig:
    model = nnx.merge(graphdef, state)
    if not isinstance(model, TransformerLM):
        raise ValueError(
            f"graphdef: expected nnx.split of a TransformerLM, got {type(model).__name__}"
        )
    return model.config


def _check_prompt(
    graphdef: nnx.GraphDef,
    state: Any,
    prefix: ArrayLike,
    suffix: ArrayLike,
    infix: ArrayLike,
    target: ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    prefix = _as_tokens("prefix", prefix, allow_empty=True)
    suffix = _as_tokens("suffix", suffix, allow_empty=False)
    infix = _as_tokens("infix", infix, allow_empty=True)
    target = _as_tokens("target", target, allow_empty=False)
    cfg = _lm_config(graphdef, state)
    total = prefix.shape[0] + suffix.shape[0] + infix.shape[0] + target.shape[0]
    if total > cfg.max_len:
        raise ValueError(
            f"prefix/suffix/infix/target: total length {total} exceeds the model's max_len "
            f"{cfg.max_len}"
        )
    for name, x in (("prefix", prefix), ("suffix", suffix), ("infix", infix), ("target", target)):
        # NumPy, not jnp: under an outer jit a jnp op on a closed-over constant is traced
        if (
            _is_concrete(x)
            and x.size
            and not np.all((np.asarray(x) >= 0) & (np.asarray(x) < cfg.vocab_size))
        ):
            raise ValueError(f"{name}: token ids must lie in [0, {cfg.vocab_size})")
    return prefix, suffix, infix, target


def _check_mask(allowed_mask: ArrayLike, vocab_size: int) -> jax.Array:
    allowed_mask = jnp.asarray(allowed_mask)
    if allowed_mask.shape != (vocab_size,) or allowed_mask.dtype != jnp.bool_:
        raise ValueError(
            f"allowed_mask: expected a bool ({vocab_size},) array, got "
            f"{allowed_mask.dtype}{allowed_mask.shape}"
        )
    if _is_concrete(allowed_mask) and not bool(jnp.any(allowed_mask)):
        raise ValueError("allowed_mask: no token is allowed")
    return allowed_mask


def _check_suffix_allowed(suffix: jax.Array, allowed_mask: jax.Array) -> None:
    if _is_concrete(suffix) and _is_concrete(allowed_mask):
        ok = np.asarray(allowed_mask)[np.asarray(suffix)]
        if not ok.all():
            bad = np.asarray(suffix)[~ok]
            raise ValueError(f"suffix: token ids {bad[:5].tolist()} are not in `allowed`")


# ============================================================================================
# Forward passes
# ============================================================================================
def _embedding_table(model: Any) -> jax.Array:
    """The token embedding table in the dtype the model's ``nnx.Embed`` computes in."""
    table = model.embed.embedding[...]
    return table if model.embed.dtype is None else table.astype(model.embed.dtype)


def _hidden_from_embeds(model: Any, x: jax.Array) -> jax.Array:
    """Final residual stream (before the output head) of a ``TransformerLM`` fed token
    *embeddings* ``x`` (batch, T, D) at positions ``0..T-1`` with a causal mask — the same
    computation as ``model(tokens)`` after its embedding lookup."""
    b, t, _ = x.shape
    positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    if model.pos_embed is not None:
        x = x + model.pos_embed(positions)
    mask = jnp.tril(jnp.ones((t, t), bool))[None, None]
    for block in model.blocks:
        x, _ = block(x, mask=mask, positions=positions)
    return x


def _logits_from_embeds(model: Any, x: jax.Array) -> jax.Array:
    """(batch, T, V) float32 logits of a ``TransformerLM`` fed embeddings (see above)."""
    return model._head(_hidden_from_embeds(model, x))


def _target_nll(model: Any, x: jax.Array, target: jax.Array) -> jax.Array:
    """(batch,) mean NLL of the last ``n = target.shape[-1]`` tokens of embedded sequences ``x``;
    ``target`` is (n,) or (batch, n). Only the ``n`` predicting positions go through the head."""
    n = target.shape[-1]
    t = x.shape[1]
    h = _hidden_from_embeds(model, x)[:, t - n - 1 : t - 1]
    logp = jax.nn.log_softmax(model._head(h), axis=-1)
    target = jnp.broadcast_to(target, logp.shape[:2])
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return jnp.mean(nll, axis=-1)


def _onehot_loss(
    model: Any,
    onehot: jax.Array,
    prefix: jax.Array,
    infix: jax.Array,
    target: jax.Array,
) -> jax.Array:
    """Target loss with the suffix given as (relaxed) one-hot rows ``onehot`` (m, V)."""
    table = _embedding_table(model)
    x = jnp.concatenate(
        [
            model.embed(prefix),
            jnp.dot(onehot.astype(table.dtype), table),
            model.embed(infix),
            model.embed(target),
        ],
        axis=0,
    )
    return _target_nll(model, x[None], target)[0]


def _loss_and_grad(
    model: Any, prefix: jax.Array, suffix: jax.Array, infix: jax.Array, target: jax.Array
) -> tuple[jax.Array, jax.Array]:
    onehot = jax.nn.one_hot(suffix, model.config.vocab_size, dtype=jnp.float32)
    return jax.value_and_grad(_onehot_loss, argnums=1)(model, onehot, prefix, infix, target)


def _candidate_losses(
    model: Any,
    prefix: jax.Array,
    candidates: jax.Array,
    infix: jax.Array,
    target: jax.Array,
    eval_batch_size: int | None,
) -> jax.Array:
    c = candidates.shape[0]

    def losses(cands: jax.Array) -> jax.Array:
        b = cands.shape[0]
        tokens = jnp.concatenate(
            [
                jnp.broadcast_to(prefix, (b, prefix.shape[0])),
                cands,
                jnp.broadcast_to(infix, (b, infix.shape[0])),
                jnp.broadcast_to(target, (b, target.shape[0])),
            ],
            axis=1,
        )
        return _target_nll(model, model.embed(tokens), target)

    if eval_batch_size is None or eval_batch_size >= c:
        return losses(candidates)
    return jax.lax.map(lambda cand: losses(cand[None])[0], candidates, batch_size=eval_batch_size)


# ============================================================================================
# Public functions
# ============================================================================================
@functools.partial(jax.jit, static_argnames=("graphdef",))
def _target_loss_jit(graphdef, state, prefix, suffix, infix, target):
    model = nnx.merge(graphdef, state)
    tokens = jnp.concatenate([prefix, suffix, infix, target])[None]
    return _target_nll(model, model.embed(tokens), target)[0]


def target_loss(
    graphdef: nnx.GraphDef,
    state: Any,
    prefix: ArrayLike,
    suffix: ArrayLike,
    infix: ArrayLike,
    target: ArrayLike,
) -> jax.Array:
    """Mean teacher-forced NLL of ``target`` after ``[prefix][suffix][infix]`` (a scalar).

    Args:
      graphdef, state: ``nnx.split(model)`` of a :class:`~lions_jax.models.TransformerLM`.
      prefix, suffix, infix, target: 1-D integer token ids (``prefix``/``infix`` may be empty).

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from lions_jax.models import LMConfig, TransformerLM
        >>> lm = TransformerLM(LMConfig(vocab_size=259, d_model=16, num_layers=1, num_heads=2),
        ...                    rngs=nnx.Rngs(0))
        >>> g, s = nnx.split(lm)
        >>> ids = lambda text: jnp.array(list(text.encode()), jnp.int32)
        >>> target_loss(g, s, ids("Q: "), ids("!!!!"), ids(" A:"), ids(" Sure")).shape
        ()
    """
    args = _check_prompt(graphdef, state, prefix, suffix, infix, target)
    return _target_loss_jit(graphdef, state, *args)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _token_gradients_jit(graphdef, state, prefix, suffix, infix, target):
    return _loss_and_grad(nnx.merge(graphdef, state), prefix, suffix, infix, target)[1]


def token_gradients(
    graphdef: nnx.GraphDef,
    state: Any,
    prefix: ArrayLike,
    suffix: ArrayLike,
    infix: ArrayLike,
    target: ArrayLike,
) -> jax.Array:
    r"""(m, V) gradient :math:`G_{i,v} = \partial\mathcal L / \partial (e_{x_i})_v` of
    :func:`target_loss` with respect to the one-hot encoding of the suffix tokens.

    Computed by feeding the model ``onehot(suffix) @ W_E`` in place of the suffix embeddings and
    differentiating with respect to ``onehot`` (float32).
    """
    args = _check_prompt(graphdef, state, prefix, suffix, infix, target)
    return _token_gradients_jit(graphdef, state, *args)


@functools.partial(jax.jit, static_argnames=("top_k", "num_candidates"))
def _sample_jit(key, grad, suffix, allowed_mask, top_k, num_candidates):
    return _sample(key, grad, suffix, allowed_mask, top_k, num_candidates)


def _sample(
    key: jax.Array,
    grad: jax.Array,
    suffix: jax.Array,
    allowed_mask: jax.Array,
    top_k: int,
    num_candidates: int,
) -> jax.Array:
    m = suffix.shape[0]
    scores = jnp.where(allowed_mask[None, :], -grad, -jnp.inf)
    _, top_ids = jax.lax.top_k(scores, top_k)  # (m, top_k), best first
    # if fewer than top_k tokens are allowed, only the first n_valid entries are allowed tokens
    n_valid = jnp.minimum(top_k, jnp.sum(allowed_mask.astype(jnp.int32)))
    kpos, ktok = jax.random.split(key)
    pos = jax.random.randint(kpos, (num_candidates,), 0, m)
    j = jax.random.randint(ktok, (num_candidates,), 0, n_valid)
    new_tok = top_ids[pos, j].astype(suffix.dtype)
    return (
        jnp.tile(suffix[None], (num_candidates, 1)).at[jnp.arange(num_candidates), pos].set(new_tok)
    )


def sample_candidates(
    key: jax.Array,
    grad: ArrayLike,
    suffix: ArrayLike,
    *,
    top_k: int,
    num_candidates: int,
    allowed_mask: ArrayLike,
) -> jax.Array:
    """(num_candidates, m) single-token substitutions of ``suffix``: each row replaces one
    uniformly drawn position ``i`` by a token drawn uniformly among the ``top_k`` largest
    ``-grad[i]`` entries of the allowed tokens."""
    _check_pos_int("top_k", top_k)
    _check_pos_int("num_candidates", num_candidates)
    suffix = _as_tokens("suffix", suffix, allow_empty=False)
    grad = jnp.asarray(grad)
    if grad.ndim != 2 or grad.shape[0] != suffix.shape[0]:
        raise ValueError(f"grad: expected shape ({suffix.shape[0]}, vocab), got {grad.shape}")
    allowed_mask = _check_mask(allowed_mask, grad.shape[1])
    if top_k > grad.shape[1]:
        raise ValueError(f"top_k: expected <= vocab size {grad.shape[1]}, got {top_k}")
    return _sample_jit(key, grad, suffix, allowed_mask, top_k, num_candidates)


@functools.partial(jax.jit, static_argnames=("graphdef", "eval_batch_size"))
def _candidate_losses_jit(graphdef, state, prefix, candidates, infix, target, eval_batch_size):
    model = nnx.merge(graphdef, state)
    return _candidate_losses(model, prefix, candidates, infix, target, eval_batch_size)


def candidate_losses(
    graphdef: nnx.GraphDef,
    state: Any,
    prefix: ArrayLike,
    candidates: ArrayLike,
    infix: ArrayLike,
    target: ArrayLike,
    *,
    eval_batch_size: int | None = None,
) -> jax.Array:
    """(B,) :func:`target_loss` of every row of ``candidates`` (B, m), in one batched forward
    pass (or in chunks of ``eval_batch_size``)."""
    candidates = jnp.asarray(candidates)
    if (
        candidates.ndim != 2
        or not jnp.issubdtype(candidates.dtype, jnp.integer)
        or candidates.shape[0] < 1
    ):
        raise ValueError(
            f"candidates: expected a 2-D integer (B, m) array, got {candidates.dtype}"
            f"{candidates.shape}"
        )
    if eval_batch_size is not None:
        _check_pos_int("eval_batch_size", eval_batch_size)
    prefix, _, infix, target = _check_prompt(graphdef, state, prefix, candidates[0], infix, target)
    return _candidate_losses_jit(
        graphdef, state, prefix, candidates.astype(jnp.int32), infix, target, eval_batch_size
    )


def _step(
    key: jax.Array,
    model: Any,
    prefix: jax.Array,
    suffix: jax.Array,
    infix: jax.Array,
    target: jax.Array,
    allowed_mask: jax.Array,
    top_k: int,
    num_candidates: int,
    keep_current: bool | jax.Array,
    eval_batch_size: int | None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One GCG step: (new suffix, its loss, loss of the input suffix)."""
    cur_loss, grad = _loss_and_grad(model, prefix, suffix, infix, target)
    cands = _sample(key, grad, suffix, allowed_mask, top_k, num_candidates)
    losses = _candidate_losses(model, prefix, cands, infix, target, eval_batch_size)
    best = jnp.argmin(losses)
    new_suffix, new_loss = cands[best], losses[best]
    if keep_current is not False:  # a Python True or a traced flag
        stay = jnp.logical_and(keep_current, cur_loss <= new_loss)
        new_suffix = jnp.where(stay, suffix, new_suffix)
        new_loss = jnp.where(stay, cur_loss, new_loss)
    return new_suffix, new_loss, cur_loss


@functools.partial(
    jax.jit,
    static_argnames=("graphdef", "top_k", "num_candidates", "eval_batch_size"),
)
def _gcg_step_jit(
    key,
    graphdef,
    state,
    prefix,
    suffix,
    infix,
    target,
    allowed_mask,
    top_k,
    num_candidates,
    keep_current,
    eval_batch_size,
):
    model = nnx.merge(graphdef, state)
    new_suffix, new_loss, _ = _step(
        key,
        model,
        prefix,
        suffix,
        infix,
        target,
        allowed_mask,
        top_k,
        num_candidates,
        keep_current,
        eval_batch_size,
    )
    return new_suffix, new_loss


def _check_search(graphdef, state, top_k, num_candidates, allowed_mask) -> jax.Array:
    _check_pos_int("top_k", top_k)
    _check_pos_int("num_candidates", num_candidates)
    vocab = _lm_config(graphdef, state).vocab_size
    if top_k > vocab:
        raise ValueError(f"top_k: expected <= vocab_size {vocab}, got {top_k}")
    return _check_mask(allowed_mask, vocab)


def gcg_step(
    key: jax.Array,
    graphdef: nnx.GraphDef,
    state: Any,
    prefix: ArrayLike,
    suffix: ArrayLike,
    infix: ArrayLike,
    target: ArrayLike,
    *,
    top_k: int,
    num_candidates: int,
    allowed_mask: ArrayLike,
    keep_current: bool = False,
    eval_batch_size: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """One GCG iteration (see the module docstring).

    Computes :func:`token_gradients` of ``suffix``, draws ``num_candidates`` single-token
    substitutions among the per-position ``top_k`` tokens of ``-grad`` (allowed tokens only),
    evaluates them in one batched forward pass and returns the best one.

    Args:
      key: PRNG key.
      graphdef, state: ``nnx.split(model)`` of a :class:`~lions_jax.models.TransformerLM`.
      prefix, suffix, infix, target: 1-D integer token ids; ``suffix`` (m,) is optimised.
      top_k: candidate tokens per position (static).
      num_candidates: substitutions evaluated (static).
      allowed_mask: (V,) bool, the tokens that may appear in the suffix
        (see :func:`allowed_token_mask`).
      keep_current: return ``suffix`` itself when no candidate has a lower loss (default: the
        paper's rule, always the best candidate).
      eval_batch_size: evaluate the candidates in chunks of this size (None: all at once).

    Returns:
      ``(new_suffix, new_loss)``: (m,) int32 and its target loss.
    """
    allowed_mask = _check_search(graphdef, state, top_k, num_candidates, allowed_mask)
    prefix, suffix, infix, target = _check_prompt(graphdef, state, prefix, suffix, infix, target)
    _check_suffix_allowed(suffix, allowed_mask)
    if eval_batch_size is not None:
        _check_pos_int("eval_batch_size", eval_batch_size)
    return _gcg_step_jit(
        key,
        graphdef,
        state,
        prefix,
        suffix,
        infix,
        target,
        allowed_mask,
        top_k,
        num_candidates,
        jnp.asarray(bool(keep_current)),
        eval_batch_size,
    )


@functools.partial(jax.jit, static_argnames=("graphdef", "config"))
def _gcg_attack_jit(key, graphdef, state, prefix, suffix_init, infix, target, allowed_mask, config):
    model = nnx.merge(graphdef, state)

    def body(carry, step_key):
        suffix, best_suffix, best_loss = carry
        new_suffix, new_loss, cur_loss = _step(
            step_key,
            model,
            prefix,
            suffix,
            infix,
            target,
            allowed_mask,
            config.top_k,
            config.num_candidates,
            config.keep_current,
            config.eval_batch_size,
        )
        # cur_loss is the loss of the suffix entering this step (the initial one at step 0)
        better = new_loss < best_loss
        best_suffix = jnp.where(better, new_suffix, best_suffix)
        best_loss = jnp.where(better, new_loss, best_loss)
        return (new_suffix, best_suffix, best_loss), (best_loss, new_loss, cur_loss)

    init_loss = _target_nll(
        model,
        model.embed(jnp.concatenate([prefix, suffix_init, infix, target])[None]),
        target,
    )[0]
    keys = jax.random.split(key, config.num_steps)
    (_, best_suffix, best_loss), (losses, step_losses, _) = jax.lax.scan(
        body, (suffix_init, suffix_init, init_loss), keys
    )
    return GCGResult(
        suffix=best_suffix,
        loss=best_loss,
        losses=losses,
        step_losses=step_losses,
        initial_loss=init_loss,
    )


def gcg_attack(
    key: jax.Array,
    graphdef: nnx.GraphDef,
    state: Any,
    prefix: ArrayLike,
    suffix_init: ArrayLike,
    infix: ArrayLike,
    target: ArrayLike,
    *,
    config: GCGConfig,
) -> GCGResult:
    """Runs ``config.num_steps`` GCG steps from ``suffix_init`` (one compiled ``lax.scan``).

    Pure and ``jax.vmap``-able over ``(key, prefix, suffix_init, target)`` (a batch of prompts
    with equal lengths; ``graphdef``/``state``/``infix`` shared): the value checks that need
    concrete arrays are skipped for traced inputs, the shape checks still run.

    Args:
      key: PRNG key.
      graphdef, state: ``nnx.split(model)`` of a :class:`~lions_jax.models.TransformerLM`.
      prefix, suffix_init, infix, target: 1-D integer token ids; ``suffix_init`` (m,) must use
        ``config.allowed`` tokens only.
      config: :class:`GCGConfig` (static).

    Returns:
      A :class:`GCGResult` (best suffix over all steps and the initial one, its loss, histories).

    Example (not run as a doctest, to keep the suite fast)::

        lm = TransformerLM(LMConfig(vocab_size=259, d_model=16, num_layers=1, num_heads=2),
                           rngs=nnx.Rngs(0))
        g, s = nnx.split(lm)
        ids = lambda text: jnp.array(list(text.encode()), jnp.int32)
        cfg = GCGConfig(num_steps=3, top_k=8, num_candidates=16)
        res = gcg_attack(jax.random.key(0), g, s, ids("Q: "), ids("!!!!"), ids(" A:"),
                         ids(" Sure"), config=cfg)
        res.suffix.shape, res.losses.shape  # ((4,), (3,)); res.loss <= res.initial_loss
    """
    if not isinstance(config, GCGConfig):
        raise ValueError(f"config: expected a GCGConfig, got {type(config).__name__}")
    vocab = _lm_config(graphdef, state).vocab_size
    allowed_mask = allowed_token_mask(config.allowed, vocab)
    allowed_mask = _check_search(graphdef, state, config.top_k, config.num_candidates, allowed_mask)
    prefix, suffix_init, infix, target = _check_prompt(
        graphdef, state, prefix, suffix_init, infix, target
    )
    _check_suffix_allowed(suffix_init, allowed_mask)
    return _gcg_attack_jit(
        key, graphdef, state, prefix, suffix_init, infix, target, allowed_mask, config
    )

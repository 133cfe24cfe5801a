"""Baseline jailbreak detectors that SPD (arXiv 2502.15435) is compared against.

All of them score a prompt so that **larger means "more likely a jailbreak"**, and flag it when
the score exceeds a threshold; ROC curves / AUCs come from :func:`sklearn.metrics.roc_curve` and
:func:`sklearn.metrics.roc_auc_score` on those scores (not re-implemented here), operating points
from :func:`tpr_fpr`.

* **Input perplexity filter** (Alon & Kamfonas 2023; Jain et al. 2023):
  :func:`prompt_nll` is the mean next-token negative log-likelihood of the prompt under the
  target LM (the log of its perplexity); :func:`fit_threshold` puts the threshold at a quantile
  (0.95 or 0.99) of benign prompts' scores. Cost: one forward pass of the prompt.
* **Refusal probability** (a single-feature ablation of SPD): :func:`refusal_logprob` is the
  log of the probability mass the model puts, at the first generated position, on the first
  tokens of its refusal templates (:func:`first_token_ids`). Cost: one forward pass.
* **SmoothLLM** (Robey, Wong, Hassani & Pappas 2023): :func:`perturb_prompts` makes
  ``num_copies`` randomly perturbed copies of the request (character swap / insert / patch),
  the caller decodes each copy and judges whether it was refused, and :func:`smoothllm_vote`
  takes SmoothLLM's majority vote; :func:`smoothllm_detect` runs the three steps with
  :func:`~lions_jax.models.generate`. Cost: ``num_copies`` prefills + decodes per prompt.
* **Input-embedding classifier** (a stand-in for a guard model): :class:`EmbeddingClassifier`
  embeds prompt texts with the pretrained all-MiniLM-L6-v2 sentence encoder
  (:class:`~lions_jax.models.pretrained.SentenceEncoder`) and fits a class-balanced,
  L2-regularised logistic regression (scikit-learn) on the embeddings. Cost: one encoder pass.
"""

import fractions
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.models.generation import generate, sequence_logprobs

__all__ = [
    "PRINTABLE_HI",
    "PRINTABLE_LO",
    "SMOOTHLLM_KINDS",
    "EmbeddingClassifier",
    "PerturbedPrompts",
    "continuation_logprobs",
    "first_token_ids",
    "fit_threshold",
    "perturb_prompts",
    "prompt_nll",
    "refusal_logprob",
    "smoothllm_detect",
    "smoothllm_vote",
    "tpr_fpr",
]

PRINTABLE_LO = 32  # " "
PRINTABLE_HI = 126  # "~"; SmoothLLM's random characters are drawn from bytes 32..126
_NUM_PRINTABLE = PRINTABLE_HI - PRINTABLE_LO + 1  # 95
SMOOTHLLM_KINDS = ("swap", "insert", "patch")


# --------------------------------------------------------------------------------------------
# Input perplexity filter
# --------------------------------------------------------------------------------------------


def _check_ids_mask(ids: Any, mask: Any, name: str = "ids") -> None:
    if ids.ndim != 2 or not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(f"{name}: expected int (batch, length), got {ids.dtype}{ids.shape}")
    if mask is not None and (mask.shape != ids.shape or mask.dtype != jnp.bool_):
        raise ValueError(f"mask: expected bool {ids.shape}, got {mask.dtype}{mask.shape}")


@functools.partial(jax.jit, static_argnames=("graphdef",))
def prompt_nll(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    ids: ArrayLike,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Mean next-token negative log-likelihood of each prompt (the perplexity filter's score).

    .. math:: s = -\frac{1}{|T|}\sum_{t\in T}\log p(x_t \mid x_{<t}),

    where :math:`T` holds the real tokens that have a real predecessor: the first real token
    (typically BOS) has no prediction and only serves as context. Padding never enters (it is
    masked out of attention and positions count real tokens only), so the score does not depend
    on how much left padding a row has. ``exp(s)`` is the perplexity; a prompt is flagged when
    ``s > fit_threshold(benign_scores, 0.95 or 0.99)``.

    Args:
      graphdef, state: ``nnx.split`` of a :class:`~lions_jax.models.TransformerLM`
        (``graphdef`` static).
      ids: (batch, length) int token ids, left-padded.
      mask: (batch, length) bool, True on real tokens (None: all real).

    Returns:
      (batch,) float32 scores; NaN for a row with fewer than two real tokens.
    """
    _check_ids_mask(ids, mask)
    if ids.shape[1] < 2:
        raise ValueError(f"ids: need at least 2 positions to score, got length {ids.shape[1]}")
    if mask is None:
        mask = jnp.ones(ids.shape, bool)
    lp = sequence_logprobs(graphdef, state, ids, attention_mask=mask)
    scored = mask[:, 1:] & mask[:, :-1]
    total = jnp.sum(jnp.where(scored, -lp, 0.0), axis=1)
    count = jnp.sum(scored, axis=1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def continuation_logprobs(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    ids: ArrayLike,
    mask: ArrayLike,
    continuations: ArrayLike,
    lengths: ArrayLike,
) -> jax.Array:
    r"""Teacher-forced :math:`\log p(c \mid x)` of every continuation :math:`c` after every
    prompt :math:`x`, with one prefill per prompt.

    The prompts run through the model once, into a KV cache; each continuation is then scored in
    one pass of :meth:`~lions_jax.models.TransformerLM.extend` from that shared cache
    (``lax.map`` over continuations, so memory holds one extra cache copy). For ``m``
    continuations of at most ``c`` tokens this costs one prefill and ``m`` passes over ``c``
    tokens, instead of ``m`` full forward passes over prompt + continuation.

    Args:
      graphdef, state: ``nnx.split`` of a :class:`~lions_jax.models.TransformerLM`.
      ids, mask: (batch, length) left-padded prompts and their real-token mask.
      continuations: (m, c) int token ids, right-padded (any id past a row's length).
      lengths: (m,) tokens of each continuation (1..c).

    Returns:
      (m, batch) float32 log-probabilities.
    """
    _check_ids_mask(ids, mask)
    conts, lens = jnp.asarray(continuations), jnp.asarray(lengths)
    if conts.ndim != 2 or not jnp.issubdtype(conts.dtype, jnp.integer):
        raise ValueError(f"continuations: expected (m, c) int ids, got {conts.dtype}{conts.shape}")
    if lens.shape != conts.shape[:1]:
        raise ValueError(f"lengths: expected shape ({conts.shape[0]},), got {lens.shape}")
    model = nnx.merge(graphdef, state)
    b, length = ids.shape
    cache = model.init_cache(b, length + conts.shape[1])
    logits, cache = model.prefill(ids, cache, attention_mask=mask)
    first = jax.nn.log_softmax(logits[:, -1].astype(jnp.float32), axis=-1)

    def one(args: Any) -> jax.Array:
        cont, n = args
        lp = first[:, None]  # (b, c, V): the distribution of continuation token j
        if cont.shape[0] > 1:
            logits, _ = model.extend(jnp.broadcast_to(cont[:-1], (b, cont.shape[0] - 1)), cache)
            lp = jnp.concatenate([lp, jax.nn.log_softmax(logits.astype(jnp.float32), -1)], 1)
        tok = jnp.take_along_axis(
            lp, jnp.broadcast_to(cont[None, :, None], (b, cont.shape[0], 1)), -1
        )
        return jnp.sum(jnp.where(jnp.arange(cont.shape[0]) < n, tok[..., 0], 0.0), axis=1)

    return jax.lax.map(one, (conts, lens))


def fit_threshold(benign_scores: Any, quantile: float = 0.95) -> float:
    """The ``quantile`` of benign prompts' scores: flag a prompt when ``score > threshold``.

    With ``quantile=0.95`` (0.99) about 5% (1%) of benign prompts like those used to fit it are
    flagged. NaN scores are rejected, not ignored.
    """
    s = np.asarray(benign_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("benign_scores: empty")
    if not np.all(np.isfinite(s)):
        raise ValueError("benign_scores: contains NaN or infinite values")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    return float(np.quantile(s, quantile))


# --------------------------------------------------------------------------------------------
# Refusal probability at the first generated position
# --------------------------------------------------------------------------------------------


def first_token_ids(templates: Sequence[str], tokenizer: Any = None) -> tuple[int, ...]:
    """Sorted, de-duplicated ids of the first token of each refusal template.

    ``tokenizer`` needs ``encode(text) -> ids``; default the byte tokenizer
    (:class:`~lions_jax.data.text.ByteTokenizer`), for which this is each template's first byte.
    """
    if isinstance(templates, str) or len(templates) == 0:
        raise ValueError("templates: expected a non-empty sequence of strings")
    if tokenizer is None:
        from lions_jax.data.text import ByteTokenizer

        tokenizer = ByteTokenizer()
    firsts = set()
    for t in templates:
        enc = np.asarray(tokenizer.encode(t)).ravel()
        if enc.size == 0:
            raise ValueError(f"templates: {t!r} encodes to no tokens")
        firsts.add(int(enc[0]))
    return tuple(sorted(firsts))


def refusal_logprob(first_logprobs: Any, refusal_first_tokens: Any) -> jax.Array:
    r"""Log of the probability that the answer starts like a refusal.

    .. math:: s = \log \sum_{v \in R} p(y_1 = v \mid x),

    with :math:`R` the de-duplicated set ``refusal_first_tokens`` (e.g. from
    :func:`first_token_ids`). Larger means more likely refused, i.e. more likely a (caught)
    jailbreak attempt. The rows are log-softmax-normalised first, so raw logits work too.

    Args:
      first_logprobs: (batch, vocab) log-probs (or logits) at the first generated position,
        e.g. ``generate(..., return_logprobs=True).logprobs[:, 0]``.
      refusal_first_tokens: token ids (a Python sequence or NumPy array, concrete: it is
        de-duplicated on the host).

    Returns:
      (batch,) float32 log-probabilities (<= 0).
    """
    x = jnp.asarray(first_logprobs)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"first_logprobs: expected float (batch, vocab), got {x.dtype}{x.shape}")
    try:
        tok = np.asarray(refusal_first_tokens).ravel()
    except jax.errors.TracerArrayConversionError as e:
        raise ValueError("refusal_first_tokens: must be concrete (a list or NumPy array)") from e
    if tok.size == 0 or not np.issubdtype(tok.dtype, np.integer):
        raise ValueError(f"refusal_first_tokens: expected non-empty int ids, got {tok!r}")
    tok = np.unique(tok)
    if tok[0] < 0 or tok[-1] >= x.shape[1]:
        raise ValueError(f"refusal_first_tokens: ids must be in [0, {x.shape[1]}), got {tok}")
    logp = jax.nn.log_softmax(x.astype(jnp.float32), axis=-1)
    return jax.nn.logsumexp(logp[:, tok], axis=-1)


# --------------------------------------------------------------------------------------------
# SmoothLLM
# --------------------------------------------------------------------------------------------


class PerturbedPrompts(NamedTuple):
    """Perturbed copies from :func:`perturb_prompts`.

    Attributes:
      ids: (num_copies, batch, out_len) int32 token ids, left-padded with ``pad_id``.
      mask: (num_copies, batch, out_len) bool, True on real tokens.
    """

    ids: jax.Array
    mask: jax.Array


def _num_edits_table(q: float, length: int) -> np.ndarray:
    """``ceil(q * n)`` for ``n = 0..length``, exact for decimal ``q`` (0.1 * 30 is 3, not 4)."""
    qf = fractions.Fraction(repr(float(q)))  # the shortest decimal that round-trips
    return np.array([math.ceil(qf * n) for n in range(length + 1)], np.int32)


def _sample_positions(key: jax.Array, editable: jax.Array, k: jax.Array) -> jax.Array:
    """A uniform random subset of ``k[b]`` editable positions per row, as a bool mask."""
    u = jax.random.uniform(key, editable.shape)
    u = jnp.where(editable, u, 2.0)  # non-editable positions sort last
    rank = jnp.argsort(jnp.argsort(u, axis=1), axis=1)
    return editable & (rank < k[:, None])


def _different_printable(key: jax.Array, ids: jax.Array) -> jax.Array:
    """A uniform printable character different from ``ids`` (any printable one if ``ids`` is
    not printable itself)."""
    k1, k2 = jax.random.split(key)
    shift = jax.random.randint(k1, ids.shape, 1, _NUM_PRINTABLE)  # 1..94: never a no-op
    other = PRINTABLE_LO + (ids - PRINTABLE_LO + shift) % _NUM_PRINTABLE
    anyc = jax.random.randint(k2, ids.shape, PRINTABLE_LO, PRINTABLE_HI + 1)
    printable = (ids >= PRINTABLE_LO) & (ids <= PRINTABLE_HI)
    return jnp.where(printable, other, anyc).astype(jnp.int32)


def _perturb_once(
    key: jax.Array,
    ids: jax.Array,
    mask: jax.Array,
    editable: jax.Array,
    table: jax.Array,
    *,
    kind: str,
    extra: int,
    pad_id: int,
) -> tuple[jax.Array, jax.Array]:
    b, length = ids.shape
    n = jnp.sum(editable, axis=1)
    k = table[n]
    k_pos, k_chr, k_start = jax.random.split(key, 3)
    if kind == "swap":
        chosen = _sample_positions(k_pos, editable, k)
        return jnp.where(chosen, _different_printable(k_chr, ids), ids), mask
    if kind == "patch":
        rank = jnp.cumsum(editable, axis=1) - 1  # index among the editable positions
        start = jnp.floor(jax.random.uniform(k_start, (b,)) * (n - k + 1)).astype(jnp.int32)
        start = jnp.clip(start, 0, n - k)[:, None]
        chosen = editable & (rank >= start) & (rank < start + k[:, None])
        return jnp.where(chosen, _different_printable(k_chr, ids), ids), mask
    # insert: one random character right after each chosen position. In the right-aligned
    # (left-padded) output, token j moves left by the number of insertions at or after it.
    chosen = _sample_positions(k_pos, editable, k)
    after = jnp.cumsum(chosen[:, ::-1], axis=1)[:, ::-1]  # #chosen at positions >= j
    dest = extra + jnp.arange(length)[None, :] - after
    out_len = length + extra
    dest_ins = jnp.where(chosen, dest + 1, out_len)  # out of range: dropped
    chars = jax.random.randint(k_chr, ids.shape, PRINTABLE_LO, PRINTABLE_HI + 1)
    rows = jnp.arange(b)[:, None]
    out_ids = jnp.full((b, out_len), pad_id, jnp.int32)
    out_ids = out_ids.at[rows, dest].set(ids.astype(jnp.int32))
    out_ids = out_ids.at[rows, dest_ins].set(chars, mode="drop")
    out_mask = jnp.zeros((b, out_len), bool).at[rows, dest].set(mask)
    out_mask = out_mask.at[rows, dest_ins].set(True, mode="drop")
    return out_ids, out_mask


@functools.partial(jax.jit, static_argnames=("q", "kind", "num_copies", "pad_id"))
def perturb_prompts(
    key: jax.Array,
    ids: ArrayLike,
    mask: ArrayLike | None = None,
    editable: ArrayLike | None = None,
    *,
    q: float = 0.10,
    kind: str = "swap",
    num_copies: int = 10,
    pad_id: int = 256,
) -> PerturbedPrompts:
    r"""SmoothLLM's randomly perturbed copies of byte-level prompts.

    With :math:`n` the number of editable bytes of a row and :math:`k = \lceil q n \rceil`:

    * ``"swap"``: :math:`k` distinct editable positions, drawn uniformly, get a random printable
      ASCII character (bytes 32..126) that differs from the one they hold, so exactly :math:`k`
      bytes change (the reference code draws with replacement from ``string.printable``, where
      about 1% of swaps are no-ops and whitespace such as newlines can appear).
    * ``"patch"``: a run of :math:`k` consecutive editable positions (uniform start) is replaced
      the same way. Contiguous in the sequence when the editable positions are.
    * ``"insert"``: a uniform random printable character is inserted right after each of
      :math:`k` distinct editable positions; the original tokens keep their order. Rows grow by
      :math:`k`, so the output has ``length + ceil(q * length)`` positions and stays left-padded
      (new left padding is ``pad_id`` with mask False).

    ``swap`` and ``patch`` keep ``length``. The paper's reference implementation rounds
    :math:`qn` down; this one rounds up (so a short request still gets at least one edit when
    ``q > 0``), and ``q`` is a fraction (``0.10``), not a percentage.

    SmoothLLM perturbs the user's prompt text and only then applies the chat template, so pass
    ``editable`` True on the request's bytes only (not on BOS, ``"User: "``, ``"\nAssistant: "``).

    Args:
      key: PRNG key; copy ``c`` uses ``jax.random.split(key, num_copies)[c]``.
      ids: (batch, length) int token ids, left-padded.
      mask: (batch, length) bool, True on real tokens (None: all real).
      editable: (batch, length) bool, positions that may be perturbed (None: every real token
        that is a byte, id < 256); always restricted to ``mask``.
      q: fraction of the editable bytes to perturb, in [0, 1] (static; default 0.10, the
        paper's best setting with ``kind="swap"``).
      kind: ``"swap"``, ``"insert"`` or ``"patch"`` (static).
      num_copies: number of perturbed copies N (static; default 10).
      pad_id: id written in new padding slots (``"insert"`` only; static).

    Returns:
      :class:`PerturbedPrompts` with (num_copies, batch, out_len) ``ids`` and ``mask``.
    """
    _check_ids_mask(ids, mask)
    if editable is not None and (editable.shape != ids.shape or editable.dtype != jnp.bool_):
        raise ValueError(
            f"editable: expected bool {ids.shape}, got {editable.dtype}{editable.shape}"
        )
    if kind not in SMOOTHLLM_KINDS:
        raise ValueError(f"kind must be one of {SMOOTHLLM_KINDS}, got {kind!r}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be a fraction in [0, 1] (not a percentage), got {q}")
    if num_copies < 1:
        raise ValueError(f"num_copies must be >= 1, got {num_copies}")
    if mask is None:
        mask = jnp.ones(ids.shape, bool)
    if editable is None:
        editable = ids < 256
    editable = editable & mask
    length = ids.shape[1]
    table_np = _num_edits_table(q, length)
    extra = int(table_np[length]) if kind == "insert" else 0
    fn = functools.partial(_perturb_once, kind=kind, extra=extra, pad_id=pad_id)
    keys = jax.random.split(key, num_copies)
    out_ids, out_mask = jax.vmap(fn, in_axes=(0, None, None, None, None))(
        keys, ids, mask, editable, jnp.asarray(table_np)
    )
    return PerturbedPrompts(ids=out_ids.astype(jnp.int32), mask=out_mask)


def smoothllm_vote(refused: Any) -> tuple[jax.Array, jax.Array]:
    """SmoothLLM's majority vote over N perturbed copies, read as a jailbreak detector.

    SmoothLLM calls copy ``i`` *jailbroken* when its answer is not a refusal, and the defended
    model is jailbroken iff the fraction of jailbroken copies is **> 1/2** (it then answers with
    one of the majority's responses). As a detector, a prompt is *flagged* (attack caught) iff
    the defended model is not jailbroken, i.e. iff the fraction of copies that refuse is
    **>= 1/2**: a tie (N even, N/2 refusals) is flagged, as in the reference implementation.
    The score for ROC curves is the fraction of copies that refuse.

    Cost: the N copies each need a prefill and a decode (N forward + decode passes per prompt,
    versus one for SPD); the refusal judgement on the decoded text is the caller's.

    Args:
      refused: (N, batch) bool, whether the answer to copy ``i`` of prompt ``b`` is a refusal.

    Returns:
      ``(flag, score)``: (batch,) bool and (batch,) float32 in [0, 1].

    Example:
        >>> import jax.numpy as jnp
        >>> refused = jnp.array([[True, True, False], [True, False, False]])  # 2 copies
        >>> flag, score = smoothllm_vote(refused)
        >>> flag.tolist(), score.tolist()
        ([True, True, False], [1.0, 0.5, 0.0])
    """
    r = jnp.asarray(refused)
    if r.ndim != 2 or r.dtype != jnp.bool_ or r.shape[0] < 1:
        raise ValueError(f"refused: expected bool (num_copies >= 1, batch), got {r.dtype}{r.shape}")
    score = jnp.mean(r.astype(jnp.float32), axis=0)
    jailbroken = jnp.mean((~r).astype(jnp.float32), axis=0) > 0.5
    return ~jailbroken, score


def smoothllm_detect(
    key: jax.Array,
    graphdef: nnx.GraphDef,
    state: nnx.State,
    ids: ArrayLike,
    mask: ArrayLike | None,
    editable: ArrayLike | None,
    is_refusal: Callable[[np.ndarray], Any],
    *,
    max_new_tokens: int,
    q: float = 0.10,
    kind: str = "swap",
    num_copies: int = 10,
    eos_id: int | None = 258,
    pad_id: int = 256,
    temperature: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """SmoothLLM end to end: perturb, decode every copy, judge refusals, vote.

    Runs :func:`perturb_prompts`, one batched :func:`~lions_jax.models.generate` over the
    ``num_copies * batch`` perturbed prompts (greedy for ``temperature=0``), then
    ``is_refusal(tokens)`` on the host, and :func:`smoothllm_vote`. Cost: ``num_copies`` prefills
    and ``num_copies * max_new_tokens`` decode steps per prompt.

    Args:
      key: PRNG key (perturbations, and sampling when ``temperature > 0``).
      graphdef, state: ``nnx.split`` of a :class:`~lions_jax.models.TransformerLM`.
      ids, mask, editable, q, kind, num_copies, pad_id: as in :func:`perturb_prompts`.
      is_refusal: maps the generated ``(rows, max_new_tokens)`` NumPy token array (``pad_id``
        after ``eos_id``) to a (rows,) bool array, e.g. a decode + refusal-prefix match.
      max_new_tokens, eos_id, temperature: as in :func:`~lions_jax.models.generate`.

    Returns:
      ``(flag, score)`` as in :func:`smoothllm_vote`.
    """
    k_pert, k_gen = jax.random.split(key)
    pert = perturb_prompts(
        k_pert, ids, mask, editable, q=q, kind=kind, num_copies=num_copies, pad_id=pad_id
    )
    n, b, length = pert.ids.shape
    out = generate(
        k_gen,
        graphdef,
        state,
        pert.ids.reshape(n * b, length),
        prompt_mask=pert.mask.reshape(n * b, length),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        eos_id=eos_id,
        pad_id=pad_id,
    )
    refused = np.asarray(is_refusal(np.asarray(out.tokens)))
    if refused.shape != (n * b,):
        raise ValueError(
            f"is_refusal: expected a ({n * b},) bool array, got {refused.dtype}{refused.shape}"
        )
    return smoothllm_vote(jnp.asarray(refused.astype(bool)).reshape(n, b))


# --------------------------------------------------------------------------------------------
# Input-embedding classifier (guard-model stand-in)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _default_encoder() -> Any:
    """The all-MiniLM-L6-v2 encoder, loaded once per process (a few seconds)."""
    from lions_jax.models.pretrained import SentenceEncoder

    return SentenceEncoder()


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts: expected a sequence of strings, got a single string")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts: expected a non-empty sequence of strings")
    return texts


class EmbeddingClassifier:
    """Jailbreak classifier on sentence embeddings of the prompt text (a guard-model stand-in).

    Prompt texts are embedded with ``encoder`` (default: the pretrained all-MiniLM-L6-v2
    :class:`~lions_jax.models.pretrained.SentenceEncoder`, a JAX model, loaded lazily on first
    use and cached per process) and a logistic regression with an L2 penalty of strength
    ``1 / C`` and balanced class weights (scikit-learn's ``LogisticRegression``) is fitted on
    them. Without the MiniLM weights the first ``fit`` / ``decision`` raises ``ValueError`` with
    the install hint; pass your own ``encoder`` to avoid them.

    Args:
      C: inverse L2 regularisation strength.
      encoder: callable ``texts -> (n, dim)`` array (None: all-MiniLM-L6-v2).
      max_iter: solver iterations.

    Example (needs the weights)::

        clf = EmbeddingClassifier().fit(train_texts, train_labels)   # 1 = jailbreak
        scores = clf.decision(test_texts)                            # > 0: jailbreak
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        encoder: Callable[[list[str]], Any] | None = None,
        max_iter: int = 1000,
    ):
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")
        self.C = float(C)
        self.max_iter = int(max_iter)
        self._encoder = encoder
        self.model_: Any = None

    @property
    def encoder(self) -> Callable[[list[str]], Any]:
        if self._encoder is None:
            self._encoder = _default_encoder()
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float64 embeddings of ``texts``."""
        texts = _check_texts(texts)
        emb = np.asarray(self.encoder(texts), dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != len(texts):
            raise ValueError(f"encoder: expected ({len(texts)}, dim) embeddings, got {emb.shape}")
        return emb

    def fit(self, texts: Sequence[str], labels: Any) -> "EmbeddingClassifier":
        """Fits on ``texts`` with ``labels`` (1 = jailbreak, 0 = benign); returns ``self``."""
        from sklearn.linear_model import LogisticRegression

        texts = _check_texts(texts)
        y = np.asarray(labels).ravel()
        if y.shape[0] != len(texts):
            raise ValueError(f"labels: expected {len(texts)} labels, got {y.shape[0]}")
        if not np.isin(y, (0, 1)).all() or np.unique(y).size != 2:
            raise ValueError("labels: expected both classes, 0 (benign) and 1 (jailbreak)")
        model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter)
        self.model_ = model.fit(self.embed(texts), y.astype(np.int64))
        return self

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """(n,) logit scores: positive means jailbreak (probability > 1/2)."""
        if self.model_ is None:
            raise ValueError("EmbeddingClassifier: call fit() before decision()")
        return np.asarray(self.model_.decision_function(self.embed(texts)), np.float64)


# --------------------------------------------------------------------------------------------
# Operating points
# --------------------------------------------------------------------------------------------


def tpr_fpr(scores: Any, labels: Any, threshold: float) -> tuple[float, float]:
    """True- and false-positive rates of flagging ``scores > threshold``.

    ``labels``: 1 = jailbreak (positive), 0 = benign. A rate whose class is absent is NaN. For
    ROC curves and AUCs use :func:`sklearn.metrics.roc_curve` / ``roc_auc_score`` on the scores.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"labels: expected {s.shape[0]} labels, got {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels: expected 0 (benign) / 1 (jailbreak)")
    flagged = s > threshold
    pos, neg = y == 1, y == 0
    tpr = float(flagged[pos].mean()) if pos.any() else float("nan")
    fpr = float(flagged[neg].mean()) if neg.any() else float("nan")
    return tpr, fpr

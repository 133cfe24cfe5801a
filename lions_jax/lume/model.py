"""The LUME target model: tokenizer, encodings, memorisation training and the evaluation pass.

* :class:`LumeTokenizer` — a byte-level BPE (Hugging Face ``tokenizers``) trained on the
  generated corpus; ``decode(encode(s)) == s`` for any text. Ids 0 and 1 are ``<pad>`` and
  ``<eos>``.
* :func:`encode_rows` / :func:`encode_documents` — LUME rows as teacher-forced sequences
  (left-padded ``input`` followed by the right-padded ``output`` and ``<eos>``; the loss mask
  covers the output and ``<eos>``) and whole documents (loss on every token).
* :func:`make_train_target` — ``train(key, pretrain, finetune, replay) -> (params, losses)``:
  the base model is pretrained on the base text (and Task3-style documents, which in LUME come
  from the target model's pretraining data), then fine-tuned on the LUME documents and
  question-answer texts until it memorises them, with base text replayed. Packed windows that
  start at a text (:class:`TextStream`); one compiled ``lax.scan``; vmap it over seeds.
* :func:`evaluate` — one pure pass computing everything LUME scores: greedy generations for
  every row (no chat template, fixed ``max_new_tokens``), per-token log-probs and their
  moments on MIA member / non-member documents, and the completion log-prob of every
  multiple-choice option of the utility test. :func:`score` turns it into the official numbers
  on the host (ROUGE needs strings).
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.lume import metrics
from lions_jax.lume.schema import LumeRow
from lions_jax.models import LMConfig, TransformerLM, generate
from lions_jax.models.generation import token_logprobs

__all__ = [
    "EvalArrays",
    "EvalOutput",
    "LumeTokenizer",
    "Sequences",
    "TargetConfig",
    "TextStream",
    "encode_documents",
    "encode_rows",
    "encode_stream",
    "evaluate",
    "make_train_target",
    "score",
    "sequence_logits",
    "sequence_token_logprobs",
]


class LumeTokenizer:
    """Byte-level BPE over the generated corpus (``tokenizers``); ``<pad>`` = 0, ``<eos>`` = 1.

    Training is deterministic: the same texts and ``vocab_size`` give the same merges.
    """

    pad_id = 0
    eos_id = 1

    def __init__(self, tokenizer: Any):
        self._tok = tokenizer

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int = 2048) -> "LumeTokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 300:
            raise ValueError(f"vocab_size: expected >= 300 (256 bytes + merges), got {vocab_size}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<pad>", "<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(list(texts), trainer)
        return cls(tok)

    @classmethod
    def from_json(cls, text: str) -> "LumeTokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(text))

    def to_json(self) -> str:
        return self._tok.to_str()

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of ``ids`` up to the first ``<eos>``, padding skipped."""
        out = []
        for i in np.asarray(ids).tolist():
            if i == self.eos_id:
                break
            if i != self.pad_id:
                out.append(i)
        return self._tok.decode(out, skip_special_tokens=False)


class Sequences(NamedTuple):
    """Teacher-forced sequences.

    Attributes:
      tokens: (n, L) token ids.
      attention_mask: (n, L) real tokens (prompts are left-padded, answers right-padded).
      loss_mask: (n, L - 1) the next-token predictions that count (``tokens[:, 1:]``).
    """

    tokens: jax.Array
    attention_mask: jax.Array
    loss_mask: jax.Array


def _round_up(n: int, multiple: int = 8) -> int:
    return multiple * math.ceil(n / multiple)


def encode_rows(
    tokenizer: LumeTokenizer,
    rows: Sequence[LumeRow] | Sequence[tuple[str, str]],
    *,
    width: int | None = None,
    prompt_len: int | None = None,
    eos: bool = True,
) -> tuple[Sequences, np.ndarray, np.ndarray]:
    """``(sequences, prompts, prompt_mask)`` of (input, output) pairs.

    The output is encoded as ``" " + output`` (a continuation of the input, as a base model
    reads it) followed by ``<eos>`` when ``eos``. ``sequences`` holds input and output
    contiguously from position 0, right-padded to ``width``, with the loss on the output;
    ``prompts`` (n, prompt_len) are the left-padded inputs used for generation (a left-padded
    prompt gets the same positions, so generation sees exactly what training saw). Lengths
    default to the longest (rounded up to a multiple of 8); a longer row raises ``ValueError``.
    """
    pairs = [(r.input, r.output) if isinstance(r, LumeRow) else r for r in rows]
    if not pairs:
        raise ValueError("rows: expected at least one row")
    prompts = [tokenizer.encode(x) for x, _ in pairs]
    answers = [tokenizer.encode(" " + y) + ([tokenizer.eos_id] if eos else []) for _, y in pairs]
    if any(len(p) == 0 for p in prompts):
        raise ValueError("rows: every input must be non-empty")
    lengths = [len(p) + len(a) for p, a in zip(prompts, answers)]
    width = _round_up(max(lengths)) if width is None else width
    p_len = _round_up(max(map(len, prompts))) if prompt_len is None else prompt_len
    if max(lengths) > width:
        raise ValueError(f"width: {width} tokens is shorter than the longest row ({max(lengths)})")
    if max(map(len, prompts)) > p_len:
        raise ValueError(f"prompt_len: {p_len} is shorter than the longest input")
    n = len(pairs)
    tokens = np.zeros((n, width), np.int32)
    loss = np.zeros((n, width - 1), bool)
    prompt_ids = np.zeros((n, p_len), np.int32)
    prompt_mask = np.zeros((n, p_len), bool)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        tokens[i, : len(p) + len(a)] = p + a
        loss[i, len(p) - 1 : len(p) - 1 + len(a)] = True
        prompt_ids[i, p_len - len(p) :] = p
        prompt_mask[i, p_len - len(p) :] = True
    attn = np.arange(width)[None] < np.array(lengths)[:, None]
    seqs = Sequences(jnp.asarray(tokens), jnp.asarray(attn), jnp.asarray(loss))
    return seqs, prompt_ids, prompt_mask


class TextStream(NamedTuple):
    """Texts concatenated into one token stream for packed training.

    Attributes:
      tokens: (n + window,) every text followed by ``<eos>``, then ``window`` padding tokens.
      starts: (num_texts,) where each text begins: training windows start there.
    """

    tokens: jax.Array
    starts: jax.Array


def encode_stream(tokenizer: LumeTokenizer, texts: Sequence[str], window: int) -> TextStream:
    """A :class:`TextStream` of ``texts``; windows of ``window + 1`` tokens start at a text's
    first token (as a LUME probe does) and run on into the following texts."""
    if not texts:
        raise ValueError("texts: expected at least one text")
    ids, starts = [], []
    for t in texts:
        starts.append(len(ids))
        ids += [*tokenizer.encode(t), tokenizer.eos_id]
    ids += [tokenizer.pad_id] * (window + 1)
    return TextStream(jnp.asarray(np.array(ids, np.int32)), jnp.asarray(np.array(starts, np.int32)))


def encode_documents(
    tokenizer: LumeTokenizer, texts: Sequence[str], *, length: int | None = None
) -> Sequences:
    """Right-padded whole documents followed by ``<eos>``; the loss covers every real token after
    the first."""
    docs = [[*tokenizer.encode(t), tokenizer.eos_id] for t in texts]
    if not docs:
        raise ValueError("texts: expected at least one document")
    n_len = _round_up(max(map(len, docs))) if length is None else length
    if max(map(len, docs)) > n_len:
        raise ValueError(f"length: {n_len} tokens is shorter than the longest document")
    tokens = np.zeros((len(docs), n_len), np.int32)
    attn = np.zeros((len(docs), n_len), bool)
    for i, d in enumerate(docs):
        tokens[i, : len(d)] = d
        attn[i, : len(d)] = True
    return Sequences(jnp.asarray(tokens), jnp.asarray(attn), jnp.asarray(attn[:, 1:]))


def sequence_logits(graphdef: Any, params: Any, seqs: Sequences) -> jax.Array:
    """(n, L - 1, vocab) next-token logits of ``seqs`` (predicting ``tokens[:, 1:]``)."""
    model = nnx.merge(graphdef, params)
    return model(seqs.tokens[:, :-1], attention_mask=seqs.attention_mask[:, :-1])


def sequence_token_logprobs(graphdef: Any, params: Any, seqs: Sequences) -> jax.Array:
    """(n, L - 1) log-probs of ``tokens[:, 1:]`` (0 outside ``loss_mask``)."""
    lp = token_logprobs(sequence_logits(graphdef, params, seqs), seqs.tokens[:, 1:])
    return jnp.where(seqs.loss_mask, lp, 0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TargetConfig:
    """The toy target LM and its memorisation schedule.

    Attributes:
      d_model, num_layers, num_heads: the decoder (RMSNorm, RoPE, SwiGLU, tied embeddings).
      window: training window in tokens (longer than any document, so a window that starts at a
        document holds all of it).
      pretrain_steps: AdamW steps on the pretraining stream (base text + Task3-style documents).
      finetune_steps: steps on the fine-tuning stream (documents and question-answer texts of
        the LUME rows), with base text replayed.
      batch_size, learning_rate, warmup, weight_decay: AdamW, warm-up + cosine decay per stage.
      replay: fraction of each fine-tuning batch drawn from the base text.
    """

    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    window: int = 160
    pretrain_steps: int = 400
    finetune_steps: int = 1_000
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    replay: float = 0.25

    def __post_init__(self) -> None:
        for name in ("d_model", "num_layers", "num_heads", "window", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        for name in ("pretrain_steps", "finetune_steps", "warmup"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {v!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: expected > 0, got {self.learning_rate}")
        if not 0 <= self.replay < 1:
            raise ValueError(f"replay: expected in [0, 1), got {self.replay}")

    def lm_config(self, vocab_size: int) -> LMConfig:
        return LMConfig(
            vocab_size=vocab_size,
            d_model=self.d_model,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            max_len=2 * self.window,
        )


def make_train_target(cfg: TargetConfig, vocab_size: int) -> tuple[nnx.GraphDef, Any]:
    """``(graphdef, train)`` with ``train(key, pretrain, finetune, replay) -> (params, losses
    (pretrain_steps + finetune_steps,))`` on three :class:`TextStream` s.

    Each step trains on ``batch_size`` windows of ``window + 1`` tokens that start at uniformly
    drawn texts of the stage's stream (fine-tuning takes a ``replay`` fraction of them from the
    base-text stream), minimising the mean next-token NLL (packed: no padding). Pure and
    jittable; ``jax.vmap`` over keys trains several seeds at once.
    """
    lm_cfg = cfg.lm_config(vocab_size)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: TransformerLM(lm_cfg, rngs=nnx.Rngs(0))))
    n_replay = round(cfg.batch_size * cfg.replay)
    w = cfg.window + 1

    def optimizer(steps: int) -> optax.GradientTransformation:
        schedule = optax.warmup_cosine_decay_schedule(
            0.0,
            cfg.learning_rate,
            min(cfg.warmup, max(steps // 2, 1)),
            max(steps, 1),
            cfg.learning_rate * 0.05,
        )
        return optax.chain(
            optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=cfg.weight_decay)
        )

    def windows(key: jax.Array, stream: TextStream, n: int) -> jax.Array:
        starts = stream.starts[jax.random.randint(key, (n,), 0, stream.starts.shape[0])]
        return jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(stream.tokens, s, w))(starts)

    def loss_fn(p: Any, x: jax.Array) -> jax.Array:
        logits = nnx.merge(graphdef, p)(x[:, :-1])
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, x[:, 1:])
        weight = (x[:, 1:] != LumeTokenizer.pad_id).astype(nll.dtype)
        return jnp.sum(nll * weight) / jnp.maximum(jnp.sum(weight), 1.0)

    def stage(params: Any, key: jax.Array, sample: Any, steps: int) -> tuple[Any, jax.Array]:
        opt = optimizer(steps)

        def step(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p, sample(k))
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        (params, _), losses = jax.lax.scan(
            step, (params, opt.init(params)), jax.random.split(key, steps)
        )
        return params, losses

    def train(
        key: ArrayLike, pretrain: TextStream, finetune: TextStream, replay: TextStream
    ) -> tuple[Any, jax.Array]:
        k_init, k_pre, k_fine = jax.random.split(jnp.asarray(key), 3)
        params = nnx.state(TransformerLM(lm_cfg, rngs=nnx.Rngs(k_init)))

        def fine_sample(k: jax.Array) -> jax.Array:
            k1, k2 = jax.random.split(k)
            return jnp.concatenate(
                [windows(k1, finetune, cfg.batch_size - n_replay), windows(k2, replay, n_replay)]
            )

        params, l1 = stage(
            params, k_pre, lambda k: windows(k, pretrain, cfg.batch_size), cfg.pretrain_steps
        )
        params, l2 = stage(params, k_fine, fine_sample, cfg.finetune_steps)
        return params, jnp.concatenate([l1, l2])

    return graphdef, train


class EvalArrays(NamedTuple):
    """Everything :func:`evaluate` reads (a pytree; the experiment's ``prepare`` builds it).

    Attributes:
      prompts, prompt_masks: per generation group (e.g. sc rows, qa rows), (n_g, P_g)
        left-padded LUME inputs for greedy generation.
      documents: MIA documents, members first (:class:`Sequences`).
      mc: the utility test's (question, option) pairs, question-major (:class:`Sequences`).
    """

    prompts: tuple[jax.Array, ...]
    prompt_masks: tuple[jax.Array, ...]
    documents: Sequences
    mc: Sequences


class EvalOutput(NamedTuple):
    """Attributes:
    generations: per group, (n_g, max_new_tokens_g) greedy tokens (``<pad>`` after ``<eos>``).
    doc_logprobs: (n_docs, L - 1) per-token log-probs of the MIA documents (0 off-mask).
    doc_mu, doc_sigma: (n_docs, L - 1) mean and std of ``log p`` under the model (Min-K%++).
    mc_logprobs: (n_pairs,) summed completion log-prob of each (question, option).
    """

    generations: tuple[jax.Array, ...]
    doc_logprobs: jax.Array
    doc_mu: jax.Array
    doc_sigma: jax.Array
    mc_logprobs: jax.Array


def evaluate(
    graphdef: Any,
    params: Any,
    arrays: EvalArrays,
    *,
    max_new_tokens: Sequence[int],
    eos_id: int = LumeTokenizer.eos_id,
    pad_id: int = LumeTokenizer.pad_id,
) -> EvalOutput:
    """The model-side half of LUME scoring, pure and jittable (see :func:`score`).

    Greedy decoding of the raw inputs (no chat template), ``max_new_tokens[g]`` tokens for group
    ``g``; the official script uses one fixed length for all rows, which gives the same scores
    whenever each group's length exceeds its longest reference (a longer continuation cannot
    turn an exact-match miss into a hit, and ROUGE-L recall is measured against the reference).
    """
    if len(max_new_tokens) != len(arrays.prompts):
        raise ValueError(
            f"max_new_tokens: expected one length per prompt group ({len(arrays.prompts)}), "
            f"got {len(max_new_tokens)}"
        )
    gens = tuple(
        generate(
            None,
            graphdef,
            params,
            prompts,
            prompt_mask=mask,
            max_new_tokens=n,
            eos_id=eos_id,
            pad_id=pad_id,
        ).tokens
        for prompts, mask, n in zip(arrays.prompts, arrays.prompt_masks, max_new_tokens)
    )
    docs = arrays.documents
    logits = sequence_logits(graphdef, params, docs)
    doc_lp = jnp.where(docs.loss_mask, token_logprobs(logits, docs.tokens[:, 1:]), 0.0)
    mu, sigma = metrics.token_logprob_moments(logits)
    mc_lp = jnp.sum(sequence_token_logprobs(graphdef, params, arrays.mc), axis=-1)
    return EvalOutput(gens, doc_lp, mu, sigma, mc_lp)


def score(
    out: EvalOutput,
    *,
    rows: Sequence[LumeRow],
    tokenizer: LumeTokenizer,
    documents: Sequences,
    num_members: int,
    zlib_bytes: np.ndarray,
    mc_answers: np.ndarray,
    num_choices: int = 4,
    min_k: float = 0.2,
) -> dict[str, Any]:
    """The official LUME numbers of one :func:`evaluate` output (host-side).

    ``rows`` are the generation groups' rows, concatenated in group order. Returns a dict with
    ``generations``, ``task_scores`` (:class:`~lions_jax.lume.metrics.TaskScores`),
    ``task_aggregate``, ``mia_auc`` (per statistic of ``metrics.MIA_STATISTICS``; ``"loss"`` is
    the official one), ``mia_score``, ``utility`` and ``final``.
    """
    gens = [tokenizer.decode(g) for group in out.generations for g in np.asarray(group)]
    ts = metrics.task_scores(rows, gens)
    mask = documents.loss_mask
    stats = {
        "loss": metrics.loss_statistic(out.doc_logprobs, mask),
        "zlib": metrics.zlib_statistic(out.doc_logprobs, mask, jnp.asarray(zlib_bytes)),
        "min_k": metrics.min_k_statistic(out.doc_logprobs, mask, k=min_k),
        "min_k_pp": metrics.min_k_pp_statistic(
            out.doc_logprobs, out.doc_mu, out.doc_sigma, mask, k=min_k
        ),
    }
    aucs = {k: float(metrics.mia_auc(v[:num_members], v[num_members:])) for k, v in stats.items()}
    mc = np.asarray(out.mc_logprobs).reshape(-1, num_choices)
    utility = float(metrics.mc_accuracy(jnp.asarray(mc), jnp.asarray(mc_answers)))
    agg = float(ts.aggregate())
    mia = float(metrics.mia_score(aucs["loss"]))
    return {
        "generations": gens,
        "task_scores": ts,
        "task_aggregate": agg,
        "mia_auc": aucs,
        "mia_score": mia,
        "utility": utility,
        "final": float(metrics.final_score(agg, mia, utility)),
    }

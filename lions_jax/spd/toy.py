"""The toy aligned LM: a small byte-level :class:`~lions_jax.models.TransformerLM` trained on
:class:`~lions_jax.spd.task.ChatTask`, and the helpers that query it like a chat model.

``make_train(cfg) -> (graphdef, train)`` with ``train(key, ids, mask) -> (params, losses)``: one
compiled program (``lax.scan`` over AdamW steps) that ``jax.vmap`` runs for several seeds on one
shared corpus (:meth:`ToyLMConfig.corpus`). The loss is the next-token NLL on answers and
documents (prompts are context only).

:func:`chat_generate` decodes greedily from chat prompts (left-padded), returning the answers'
text, the full per-step log-softmax (SPD's input) and the lengths.
"""

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.data.text import ByteTokenizer
from lions_jax.models import LMConfig, TransformerLM, generate
from lions_jax.spd.task import ChatTask

__all__ = ["ChatOutput", "ToyLMConfig", "chat_generate", "encode_prompts", "make_train"]

TOKENIZER = ByteTokenizer()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyLMConfig:
    """Attributes:
    d_model, num_layers, num_heads: the byte-level decoder (RMSNorm, RoPE, SwiGLU).
    steps, batch_size, learning_rate, warmup, weight_decay: AdamW with warm-up + cosine decay.
    corpus_size: training sequences generated (numpy, ``data_seed``).
    data_seed: the corpus seed (shared by all model seeds).
    task: the training mixture.
    """

    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    steps: int = 2_000
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    corpus_size: int = 20_000
    data_seed: int = 0
    task: ChatTask = dataclasses.field(default_factory=ChatTask)

    def __post_init__(self) -> None:
        for name in ("d_model", "num_layers", "num_heads", "steps", "batch_size", "corpus_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate: expected > 0, got {self.learning_rate}")

    def lm_config(self) -> LMConfig:
        return LMConfig(
            vocab_size=TOKENIZER.vocab_size,
            d_model=self.d_model,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            max_len=512,
        )

    def corpus(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, loss_mask)`` of the training corpus."""
        return self.task.training_corpus(self.data_seed, self.corpus_size)


def make_train(cfg: ToyLMConfig) -> tuple[Any, Any]:
    """``(graphdef, train)``; ``train(key, ids, mask) -> (params, losses (steps,))``."""
    graphdef = nnx.graphdef(
        nnx.eval_shape(lambda: TransformerLM(cfg.lm_config(), rngs=nnx.Rngs(0)))
    )
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, min(cfg.warmup, cfg.steps // 2), cfg.steps, cfg.learning_rate * 0.05
    )
    opt = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=cfg.weight_decay)
    )

    def train(key: ArrayLike, ids: ArrayLike, mask: ArrayLike) -> tuple[Any, jax.Array]:
        ids, mask = jnp.asarray(ids), jnp.asarray(mask)
        k_init, k_data = jax.random.split(key)
        params = nnx.state(TransformerLM(cfg.lm_config(), rngs=nnx.Rngs(k_init)))

        def loss_fn(p: Any, x: jax.Array, m: jax.Array) -> jax.Array:
            logits = nnx.merge(graphdef, p)(x[:, :-1])
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, x[:, 1:])
            w = m[:, :-1].astype(nll.dtype)
            return jnp.sum(nll * w) / jnp.maximum(jnp.sum(w), 1.0)

        def step(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            p, s = carry
            idx = jax.random.randint(k, (cfg.batch_size,), 0, ids.shape[0])
            loss, g = jax.value_and_grad(loss_fn)(p, ids[idx], mask[idx])
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        keys = jax.random.split(k_data, cfg.steps)
        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), keys)
        return params, losses

    return graphdef, train


def encode_prompts(
    prompts: Sequence[str], length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded ``(ids, mask)`` of chat prompts (BOS first), ``length`` = the longest if None."""
    rows = [TOKENIZER.encode(p, add_bos=True) for p in prompts]
    n = max(r.size for r in rows) if length is None else length
    if any(r.size > n for r in rows):
        raise ValueError(
            f"prompts: the longest has {max(r.size for r in rows)} tokens > length {n}"
        )
    ids = np.full((len(rows), n), TOKENIZER.pad_id, np.int32)
    mask = np.zeros((len(rows), n), bool)
    for i, r in enumerate(rows):
        ids[i, n - r.size :] = r
        mask[i, n - r.size :] = True
    return ids, mask


class ChatOutput(NamedTuple):
    """Attributes:
    answers: decoded answers (text, EOS and padding removed).
    logprobs: ``(n, max_new_tokens, V)`` full log-softmax per generated position.
    lengths: ``(n,)`` generated tokens (EOS included).
    tokens: ``(n, max_new_tokens)`` generated ids.
    """

    answers: list[str]
    logprobs: np.ndarray
    lengths: np.ndarray
    tokens: np.ndarray


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens"))
def _decode(
    graphdef: Any, params: Any, ids: jax.Array, mask: jax.Array, max_new_tokens: int
) -> Any:
    return generate(None, graphdef, params, ids, prompt_mask=mask, max_new_tokens=max_new_tokens,
                    eos_id=TOKENIZER.eos_id, pad_id=TOKENIZER.pad_id, return_logprobs=True)  # fmt: skip


def chat_generate(
    graphdef: Any,
    params: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 256,
    pad_to: int = 32,
) -> ChatOutput:
    """Greedy answers to chat ``prompts`` (strings from :func:`~lions_jax.spd.task.chat_prompt`),
    in batches of ``batch_size``; prompt lengths and batch sizes are padded to multiples of
    ``pad_to`` so that few shapes compile."""
    if not prompts:
        raise ValueError("prompts: expected at least one prompt")
    longest = max(len(TOKENIZER.encode(p)) + 1 for p in prompts)
    length = -(-longest // pad_to) * pad_to
    answers, lps, lens, toks = [], [], [], []
    for lo in range(0, len(prompts), batch_size):
        chunk = list(prompts[lo : lo + batch_size])
        n = len(chunk)
        rows = min(batch_size, -(-n // pad_to) * pad_to)  # few distinct batch shapes
        chunk += [chunk[-1]] * (rows - n)
        ids, mask = encode_prompts(chunk, length)
        out = _decode(graphdef, params, jnp.asarray(ids), jnp.asarray(mask), max_new_tokens)
        t = np.asarray(out.tokens)[:n]
        toks.append(t)
        lps.append(np.asarray(out.logprobs)[:n])
        lens.append(np.asarray(out.lengths)[:n])
        answers += [TOKENIZER.decode(row) for row in t]
    return ChatOutput(answers, np.concatenate(lps), np.concatenate(lens), np.concatenate(toks))

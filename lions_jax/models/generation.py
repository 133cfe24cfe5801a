"""Autoregressive generation under ``jit`` (``lax.scan`` over steps) and per-token log-probs.

* :func:`generate` decodes a :class:`~lions_jax.models.TransformerLM` with its KV cache: one
  prefill of the (optionally left-padded) prompt, then one cached step per new token.
* :func:`generate_uncached` decodes *any* causal LM given as ``apply_fn(params, tokens) -> logits``
  by re-running it on a fixed-size buffer each step (O(T^2), but model-agnostic).

Both are greedy for ``temperature == 0`` and sample from ``softmax(logits / temperature)``
(optionally restricted to the ``top_k`` largest logits) otherwise; both return the model's own
log-probabilities (temperature 1) of every generated token, and optionally the full per-step
log-softmax, which is what log-prob based detectors and metrics consume.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

__all__ = [
    "GenerationOutput",
    "generate",
    "generate_uncached",
    "sample_token",
    "sequence_logprobs",
    "token_logprobs",
]


class GenerationOutput(NamedTuple):
    """Result of :func:`generate` / :func:`generate_uncached`.

    Attributes:
      tokens: (batch, max_new_tokens) generated ids; ``pad_id`` after a row's ``eos_id``.
      token_logprobs: (batch, max_new_tokens) log p(token | prefix) under the model at
        temperature 1; 0 after ``eos_id``.
      lengths: (batch,) generated tokens per row, the ``eos_id`` included.
      logprobs: (batch, max_new_tokens, vocab) full log-softmax per step if requested, else None.
    """

    tokens: jax.Array
    token_logprobs: jax.Array
    lengths: jax.Array
    logprobs: jax.Array | None = None


def sample_token(
    key: jax.Array | None,
    logits: Float[Array, "*batch vocab"],
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
) -> Int[Array, "*batch"]:
    """Greedy (``temperature == 0``) or temperature / top-k sampling of one token per row."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if key is None:
        raise ValueError("key: a PRNG key is required when temperature > 0")
    scaled = logits.astype(jnp.float32) / temperature
    if top_k is not None:
        if not 1 <= top_k <= logits.shape[-1]:
            raise ValueError(f"top_k must be in [1, {logits.shape[-1]}], got {top_k}")
        kth = jax.lax.top_k(scaled, top_k)[0][..., -1:]
        scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
    return jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)


def _decode_loop(
    key: jax.Array | None,
    first_logits: jax.Array,
    step_fn: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]],
    state: Any,
    *,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    eos_id: int | None,
    pad_id: int,
    return_logprobs: bool,
) -> GenerationOutput:
    batch = first_logits.shape[0]
    if key is None:
        key = jax.random.key(0)  # unused by greedy decoding

    def body(carry, t):
        logits, state, done, key = carry
        key, sub = jax.random.split(key)
        tok = sample_token(sub, logits, temperature=temperature, top_k=top_k)
        logp_all = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        logp = jnp.take_along_axis(logp_all, tok[:, None], axis=-1)[:, 0]
        tok = jnp.where(done, pad_id, tok)
        logp = jnp.where(done, 0.0, logp)
        new_done = done | (tok == eos_id) if eos_id is not None else done
        next_logits, state = step_fn(state, tok, t)
        out = (tok, logp, ~done, logp_all if return_logprobs else None)
        return (next_logits, state, new_done, key), out

    init = (first_logits, state, jnp.zeros((batch,), bool), key)
    _, (toks, logps, live, all_logps) = jax.lax.scan(body, init, jnp.arange(max_new_tokens))
    return GenerationOutput(
        tokens=toks.T,
        token_logprobs=logps.T,
        lengths=live.sum(axis=0).astype(jnp.int32),
        logprobs=None if all_logps is None else jnp.swapaxes(all_logps, 0, 1),
    )


def _check_generation_args(prompt: jax.Array, max_new_tokens: int, temperature: float) -> None:
    if prompt.ndim != 2 or not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise ValueError(
            f"prompt: expected int (batch, prompt_len), got {prompt.dtype}{prompt.shape}"
        )
    if prompt.shape[1] < 1:
        raise ValueError("prompt: needs at least one token per row")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")


@functools.partial(
    jax.jit,
    static_argnames=(
        "graphdef",
        "max_new_tokens",
        "temperature",
        "top_k",
        "eos_id",
        "pad_id",
        "return_logprobs",
    ),
)
def generate(
    key: jax.Array | None,
    graphdef: nnx.GraphDef,
    state: nnx.State,
    prompt: Int[Array, "batch prompt_len"],
    *,
    max_new_tokens: int,
    prompt_mask: Bool[Array, "batch prompt_len"] | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    return_logprobs: bool = False,
) -> GenerationOutput:
    """Generates ``max_new_tokens`` tokens per row from a ``TransformerLM`` with its KV cache.

    Compiled once per (graphdef, shapes, static options): calling it again with new prompts,
    parameters or keys of the same shapes does not recompile.

    Args:
      key: PRNG key (may be None for greedy decoding).
      graphdef, state: ``nnx.split(model)`` of a :class:`~lions_jax.models.TransformerLM`.
      prompt: (batch, prompt_len) token ids, left-padded if rows differ in length.
      max_new_tokens: tokens to generate (static).
      prompt_mask: (batch, prompt_len) True on real prompt tokens (None: all real).
      temperature: 0 for greedy decoding, else the sampling temperature (static).
      top_k: sample among the ``top_k`` largest logits only (static; None: all).
      eos_id: stop a row after this token (later tokens are ``pad_id``).
      pad_id: filler after ``eos_id``.
      return_logprobs: also return the full (batch, max_new_tokens, vocab) log-softmax.

    Returns:
      A :class:`GenerationOutput`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> from lions_jax.models import LMConfig, TransformerLM
        >>> lm = TransformerLM(LMConfig(vocab_size=13, d_model=16, num_layers=1, num_heads=2),
        ...                    rngs=nnx.Rngs(0))
        >>> graphdef, state = nnx.split(lm)
        >>> out = generate(None, graphdef, state, jnp.ones((2, 3), jnp.int32), max_new_tokens=4)
        >>> out.tokens.shape, out.token_logprobs.shape
        ((2, 4), (2, 4))
    """
    _check_generation_args(prompt, max_new_tokens, temperature)
    model = nnx.merge(graphdef, state)
    b, p = prompt.shape
    cache = model.init_cache(b, p + max_new_tokens)
    logits, cache = model.prefill(prompt, cache, attention_mask=prompt_mask)

    def step_fn(cache, tok, t):
        del t
        return model.decode_step(tok, cache)

    return _decode_loop(
        key,
        logits[:, -1],
        step_fn,
        cache,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        eos_id=eos_id,
        pad_id=pad_id,
        return_logprobs=return_logprobs,
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "apply_fn",
        "max_new_tokens",
        "temperature",
        "top_k",
        "eos_id",
        "pad_id",
        "return_logprobs",
    ),
)
def generate_uncached(
    key: jax.Array | None,
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    prompt: Int[Array, "batch prompt_len"],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    return_logprobs: bool = False,
) -> GenerationOutput:
    """Generation for any causal LM ``apply_fn(params, tokens (B, T)) -> logits (B, T, V)``.

    The model is re-applied to a (batch, prompt_len + max_new_tokens) buffer at every step (not
    yet generated slots hold ``pad_id`` and, by causality, do not affect earlier logits). All rows
    share one prompt length. ``apply_fn`` must be hashable (a function, not a fresh lambda per
    call, to avoid recompiling). Arguments and outputs are as in :func:`generate`.
    """
    _check_generation_args(prompt, max_new_tokens, temperature)
    b, p = prompt.shape
    buf = jnp.concatenate(
        [prompt.astype(jnp.int32), jnp.full((b, max_new_tokens), pad_id, jnp.int32)], axis=1
    )
    first = apply_fn(params, buf)[:, p - 1]

    def step_fn(buf, tok, t):
        buf = jax.lax.dynamic_update_slice_in_dim(buf, tok[:, None], p + t, axis=1)
        logits = apply_fn(params, buf)
        return jax.lax.dynamic_index_in_dim(logits, p + t, axis=1, keepdims=False), buf

    return _decode_loop(
        key,
        first,
        step_fn,
        buf,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        eos_id=eos_id,
        pad_id=pad_id,
        return_logprobs=return_logprobs,
    )


def token_logprobs(
    logits: Float[Array, "*batch seq vocab"], targets: Int[Array, "*batch seq"]
) -> Float[Array, "*batch seq"]:
    """``log softmax(logits)[targets]`` per position, computed in float32."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]


def sequence_logprobs(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    tokens: Int[Array, "batch seq"],
    *,
    attention_mask: Bool[Array, "batch seq"] | None = None,
) -> Float[Array, "batch seq_minus_1"]:
    """Per-token log-probs ``log p(tokens[:, t+1] | tokens[:, :t+1])`` of a ``TransformerLM``.

    Entries whose target is masked out by ``attention_mask`` are set to 0.
    """
    model = nnx.merge(graphdef, state)
    logits = model(tokens, attention_mask=attention_mask)
    lp = token_logprobs(logits[:, :-1], tokens[:, 1:])
    if attention_mask is not None:
        lp = jnp.where(attention_mask[:, 1:], lp, 0.0)
    return lp

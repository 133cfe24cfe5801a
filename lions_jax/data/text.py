"""Byte-level tokenizer and an offline English text corpus for small language models.

The corpus is text that ships with CPython itself: ``pydoc_data.topics.topics``, the help topics of
the Python documentation (what ``help("if")`` shows), about 80 documents and 450k characters of
English prose with code examples. Nothing is downloaded.
"""

import dataclasses
import platform
from collections.abc import Sequence

import jax
import numpy as np
from jaxtyping import Bool, Int

__all__ = [
    "TEXT_CORPUS_NAMES",
    "ByteTokenizer",
    "TextCorpus",
    "lm_sequences",
    "load_text_corpus",
]

#: Names accepted by :func:`load_text_corpus`.
TEXT_CORPUS_NAMES: tuple[str, ...] = ("python-docs",)


class ByteTokenizer:
    """UTF-8 byte tokenizer: ids ``0..255`` are bytes, then three special ids.

    Any Python ``str`` without lone surrogates round-trips exactly:
    ``decode(encode(s)) == s``.

    Attributes:
        pad_id: Padding id (256), skipped by :meth:`decode`.
        bos_id: Beginning-of-sequence id (257), skipped by :meth:`decode`.
        eos_id: End-of-sequence id (258), skipped by :meth:`decode`.
        vocab_size: 259.

    Example:
        >>> tok = ByteTokenizer()
        >>> ids = tok.encode("héllo", add_eos=True)
        >>> ids.tolist()
        [104, 195, 169, 108, 108, 111, 258]
        >>> tok.decode(ids)
        'héllo'
    """

    pad_id: int = 256
    bos_id: int = 257
    eos_id: int = 258
    vocab_size: int = 259

    def __repr__(self) -> str:
        return "ByteTokenizer(vocab_size=259)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteTokenizer)

    def __hash__(self) -> int:
        return hash(ByteTokenizer)

    def encode(
        self, text: str, *, add_bos: bool = False, add_eos: bool = False
    ) -> Int[np.ndarray, " n"]:
        """Encodes ``text`` as UTF-8 byte ids (int32), optionally with BOS/EOS ids.

        Args:
            text: The string to encode.
            add_bos: Prepend :attr:`bos_id`.
            add_eos: Append :attr:`eos_id`.

        Returns:
            A 1-D int32 array of ids.

        Raises:
            ValueError: If ``text`` cannot be encoded as UTF-8 (it contains lone surrogates).
        """
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"text must be encodable as UTF-8; {e}") from e
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.int32)
        if add_bos:
            ids = np.concatenate([np.array([self.bos_id], np.int32), ids])
        if add_eos:
            ids = np.concatenate([ids, np.array([self.eos_id], np.int32)])
        return ids

    def decode(self, ids: np.ndarray | jax.Array | Sequence[int]) -> str:
        """Decodes ids back to text, skipping special ids.

        Invalid UTF-8 (e.g. a multi-byte character cut by truncation) becomes U+FFFD.

        Args:
            ids: 1-D sequence of ids in ``[0, vocab_size)``.

        Returns:
            The decoded string.

        Raises:
            ValueError: If ``ids`` is not 1-D or holds ids outside ``[0, vocab_size)``.
        """
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D; got shape {arr.shape}")
        if arr.size == 0:
            return ""
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"ids must be integers; got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= self.vocab_size:
            raise ValueError(
                f"ids must be in [0, {self.vocab_size}); got range [{arr.min()}, {arr.max()}]"
            )
        return arr[arr < 256].astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        seq_len: int,
        add_bos: bool = False,
        add_eos: bool = False,
    ) -> tuple[Int[np.ndarray, "batch seq"], Bool[np.ndarray, "batch seq"]]:
        """Encodes several texts into a right-padded, right-truncated ``(B, seq_len)`` batch.

        Args:
            texts: The strings to encode.
            seq_len: Length of every row, ``>= 1``. Longer encodings keep their first
                ``seq_len`` ids (so EOS may be cut off).
            add_bos: Prepend :attr:`bos_id` to every row.
            add_eos: Append :attr:`eos_id` to every text before truncation.

        Returns:
            ``(ids, mask)``: int32 ids padded with :attr:`pad_id`, and a bool mask that is true on
            real (non-padding) positions.

        Raises:
            ValueError: If ``seq_len < 1`` or ``texts`` is a single string.

        Example:
            >>> ids, mask = ByteTokenizer().encode_batch(["ab", "abcd"], seq_len=3)
            >>> ids.tolist(), mask.tolist()
            ([[97, 98, 256], [97, 98, 99]], [[True, True, False], [True, True, True]])
        """
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not a single string")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1; got {seq_len}")
        ids = np.full((len(texts), seq_len), self.pad_id, dtype=np.int32)
        mask = np.zeros((len(texts), seq_len), dtype=bool)
        for i, text in enumerate(texts):
            row = self.encode(text, add_bos=add_bos, add_eos=add_eos)[:seq_len]
            ids[i, : row.size] = row
            mask[i, : row.size] = True
        return ids, mask


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextCorpus:
    """A text corpus split into train and validation text by document.

    Attributes:
        train: Train documents joined with ``"\\n\\n"``.
        validation: Validation documents joined with ``"\\n\\n"`` (no document is in both).
        name: Corpus name, e.g. ``"python-docs"``.
        source: Human-readable description of where the text comes from.
        train_documents: Names (keys) of the train documents, in the order joined.
        validation_documents: Names of the validation documents, in the order joined.
    """

    train: str
    validation: str
    name: str
    source: str
    train_documents: tuple[str, ...] = ()
    validation_documents: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"TextCorpus(name={self.name!r}, train=<{len(self.train)} chars, "
            f"{len(self.train_documents)} documents>, validation=<{len(self.validation)} chars, "
            f"{len(self.validation_documents)} documents>, source={self.source!r})"
        )


def _python_docs() -> tuple[dict[str, str], str]:
    import pydoc_data.topics

    topics = {k: v.strip() for k, v in pydoc_data.topics.topics.items() if v.strip()}
    source = (
        f"pydoc_data.topics.topics from the CPython {platform.python_version()} standard library "
        f"({pydoc_data.topics.__file__}): the {len(topics)} help() topics of the Python "
        "documentation (PSF licence); text differs between Python versions"
    )
    return topics, source


def load_text_corpus(
    name: str = "python-docs", *, validation_fraction: float = 0.1, seed: int = 0
) -> TextCorpus:
    """Loads an offline text corpus, split by document into train and validation text.

    Documents are sorted by key, then a permutation seeded by ``seed`` picks
    ``max(1, round(validation_fraction * n_documents))`` of them for validation; each split joins
    its documents (in sorted-key order) with ``"\\n\\n"``. The result is deterministic for a given
    Python version (the text itself ships with CPython and changes between versions).

    Args:
        name: ``"python-docs"``: the help topics of the Python documentation, from
            ``pydoc_data.topics`` (about 450k characters of English).
        validation_fraction: Fraction of documents for validation, in ``(0, 1)``.
        seed: Seed of the document permutation, ``>= 0``.

    Returns:
        The :class:`TextCorpus`.

    Raises:
        ValueError: If ``name`` is unknown or ``validation_fraction``/``seed`` is out of range.

    Example:
        >>> corpus = load_text_corpus()
        >>> len(corpus.train) > 100_000
        True
        >>> set(corpus.train_documents) & set(corpus.validation_documents)
        set()
    """
    if name not in TEXT_CORPUS_NAMES:
        raise ValueError(f"name must be one of {', '.join(TEXT_CORPUS_NAMES)}; got {name!r}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must be in the open interval (0, 1); got {validation_fraction}"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    documents, source = _python_docs()
    keys = sorted(documents)
    n_val = min(max(1, round(validation_fraction * len(keys))), len(keys) - 1)
    perm = np.random.default_rng(seed).permutation(len(keys))
    val_idx = set(perm[:n_val].tolist())
    train_keys = tuple(k for i, k in enumerate(keys) if i not in val_idx)
    val_keys = tuple(k for i, k in enumerate(keys) if i in val_idx)
    return TextCorpus(
        train="\n\n".join(documents[k] for k in train_keys),
        validation="\n\n".join(documents[k] for k in val_keys),
        name=name,
        source=source,
        train_documents=train_keys,
        validation_documents=val_keys,
    )


def lm_sequences(tokens: np.ndarray | jax.Array, seq_len: int) -> Int[np.ndarray, "n seq_plus_1"]:
    """Cuts a token stream into windows of ``seq_len + 1`` ids for next-token prediction.

    Window ``i`` is ``tokens[i * seq_len : i * seq_len + seq_len + 1]``: its first ``seq_len`` ids
    are the inputs and its last ``seq_len`` ids the targets, so the inputs of consecutive windows
    tile the stream without overlap (consecutive windows share one boundary token) and every token
    after the first is a target exactly once. The ragged tail is dropped.

    Args:
        tokens: 1-D integer token ids, at least ``seq_len + 1`` of them.
        seq_len: Model context length, ``>= 1``.

    Returns:
        An int32 array of shape ``((len(tokens) - 1) // seq_len, seq_len + 1)``; use
        ``w[:, :-1]`` as inputs and ``w[:, 1:]`` as targets.

    Raises:
        ValueError: If ``seq_len < 1``, or ``tokens`` is not 1-D integer or too short.

    Example:
        >>> import numpy as np
        >>> lm_sequences(np.arange(8), 3).tolist()
        [[0, 1, 2, 3], [3, 4, 5, 6]]
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1; got {seq_len}")
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"tokens must be a 1-D integer array; got shape {tokens.shape}, dtype {tokens.dtype}"
        )
    n = (tokens.size - 1) // seq_len
    if n < 1:
        raise ValueError(
            f"tokens must hold at least seq_len + 1 = {seq_len + 1} ids; got {tokens.size}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(tokens, seq_len + 1)[::seq_len][:n]
    return np.ascontiguousarray(windows, dtype=np.int32)

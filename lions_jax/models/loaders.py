"""Load (and write) safetensors checkpoints with GPT-2 and BERT parameter names.

Users bring real weights as files; nothing is downloaded. The name mappings follow the Hugging
Face ``transformers`` layouts:

* GPT-2 (``GPT2Model`` / ``GPT2LMHeadModel``, optional ``transformer.`` prefix): ``wte``, ``wpe``,
  ``h.{i}.ln_1``, ``h.{i}.attn.c_attn`` (fused q|k|v, ``Conv1D`` kernels stored (in, out)),
  ``h.{i}.attn.c_proj``, ``h.{i}.ln_2``, ``h.{i}.mlp.c_fc``, ``h.{i}.mlp.c_proj``, ``ln_f``;
  ``lm_head.weight`` only if untied.
* BERT (``BertModel``, optional ``bert.`` prefix): ``embeddings.{word,position,token_type}_embeddings``,
  ``embeddings.LayerNorm``, ``encoder.layer.{i}.attention.self.{query,key,value}``,
  ``...attention.output.{dense,LayerNorm}``, ``...intermediate.dense``, ``...output.{dense,LayerNorm}``,
  ``pooler.dense`` (``nn.Linear`` weights stored (out, in) and transposed here). Old ``gamma``/``beta``
  LayerNorm names are accepted.

Loading is strict: every parameter of the model must be filled with a tensor of the right shape,
and tensors that are neither used nor known buffers raise ``ValueError`` naming them.
Requires the ``models`` extra (``pip install 'lions_jax[models]'``).
"""

import json
import os
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from lions_jax._src.results import atomic_write_bytes
from lions_jax.models.transformer import EncoderConfig, LMConfig, TransformerEncoder, TransformerLM

__all__ = [
    "bert_config_from_hf",
    "bert_state_dict",
    "gpt2_config_from_hf",
    "gpt2_state_dict",
    "load_bert",
    "load_gpt2",
    "load_safetensors",
    "save_safetensors",
]

_HF_ACT = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}

Flat = dict[tuple[str | int, ...], np.ndarray]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def _safetensors_numpy():
    try:
        import safetensors.numpy as stnp
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "reading safetensors files needs the `models` extra: pip install 'lions_jax[models]'"
        ) from e
    return stnp


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` file as numpy arrays (bf16 stays ``ml_dtypes.bfloat16``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no safetensors file at {path}")
    return dict(_safetensors_numpy().load_file(str(path)))


def save_safetensors(
    tensors: dict[str, Any], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Writes ``{name: array}`` to a ``.safetensors`` file atomically."""
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in tensors.items()}
    return atomic_write_bytes(path, _safetensors_numpy().save(arrays, metadata=metadata))


def _resolve(path: str | os.PathLike) -> tuple[Path, dict[str, Any] | None]:
    """(safetensors file, HF config dict or None) for a file or a folder."""
    path = Path(path)
    if path.is_dir():
        file = path / "model.safetensors"
        cfg = path / "config.json"
        return file, (json.loads(cfg.read_text()) if cfg.is_file() else None)
    cfg = path.with_name("config.json")
    return path, (json.loads(cfg.read_text()) if cfg.is_file() else None)


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------
def gpt2_config_from_hf(hf: dict[str, Any], **overrides: Any) -> LMConfig:
    """:class:`LMConfig` from a Hugging Face GPT-2 ``config.json`` dict."""
    act = hf.get("activation_function", "gelu_new")
    if act not in _HF_ACT:
        raise ValueError(f"config: unsupported GPT-2 activation_function {act!r}")
    return LMConfig.gpt2(
        vocab_size=hf["vocab_size"],
        d_model=hf["n_embd"],
        num_layers=hf["n_layer"],
        num_heads=hf["n_head"],
        max_len=hf["n_positions"],
        d_ff=hf.get("n_inner"),
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        **{"activation": _HF_ACT[act], **overrides},
    )


def bert_config_from_hf(
    hf: dict[str, Any], *, pooler: bool = True, **overrides: Any
) -> EncoderConfig:
    """:class:`EncoderConfig` from a Hugging Face BERT ``config.json`` dict."""
    act = hf.get("hidden_act", "gelu")
    if act not in _HF_ACT:
        raise ValueError(f"config: unsupported BERT hidden_act {act!r}")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("config: only absolute position embeddings are supported")
    return EncoderConfig.bert(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        d_ff=hf["intermediate_size"],
        max_len=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2),
        norm_eps=hf.get("layer_norm_eps", 1e-12),
        activation=_HF_ACT[act],
        pooler=pooler,
        **overrides,
    )


# --------------------------------------------------------------------------------------------
# Name mappings (HF name -> our state path), both directions
# --------------------------------------------------------------------------------------------
def _strip(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in tensors.items()}


def _norm_names(prefix: str) -> list[tuple[str, str]]:
    return [
        (f"{prefix}.weight", "scale"),
        (f"{prefix}.bias", "bias"),
        (f"{prefix}.gamma", "scale"),
        (f"{prefix}.beta", "bias"),
    ]


def _gpt2_to_flat(t: dict[str, np.ndarray], cfg: LMConfig) -> tuple[Flat, set[str]]:
    flat: Flat = {}
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        if name not in t:
            raise ValueError(f"checkpoint: missing GPT-2 tensor {name!r}")
        used.add(name)
        return t[name]

    d = cfg.d_model
    flat[("embed", "embedding")] = take("wte.weight")
    flat[("pos_embed", "embedding")] = take("wpe.weight")
    for i in range(cfg.num_layers):
        b = ("blocks", i)
        for hf, ours in (("ln_1", "attn_norm"), ("ln_2", "mlp_norm")):
            flat[(*b, ours, "scale")] = take(f"h.{i}.{hf}.weight")
            flat[(*b, ours, "bias")] = take(f"h.{i}.{hf}.bias")
        w, bias = take(f"h.{i}.attn.c_attn.weight"), take(f"h.{i}.attn.c_attn.bias")
        if w.shape != (d, 3 * d):
            raise ValueError(
                f"checkpoint: h.{i}.attn.c_attn.weight has shape {w.shape}, expected {(d, 3 * d)}"
            )
        for j, name in enumerate(("query", "key", "value")):
            flat[(*b, "attn", name, "kernel")] = w[:, j * d : (j + 1) * d]
            flat[(*b, "attn", name, "bias")] = bias[j * d : (j + 1) * d]
        flat[(*b, "attn", "out", "kernel")] = take(f"h.{i}.attn.c_proj.weight")
        flat[(*b, "attn", "out", "bias")] = take(f"h.{i}.attn.c_proj.bias")
        flat[(*b, "mlp", "up", "kernel")] = take(f"h.{i}.mlp.c_fc.weight")
        flat[(*b, "mlp", "up", "bias")] = take(f"h.{i}.mlp.c_fc.bias")
        flat[(*b, "mlp", "down", "kernel")] = take(f"h.{i}.mlp.c_proj.weight")
        flat[(*b, "mlp", "down", "bias")] = take(f"h.{i}.mlp.c_proj.bias")
    flat[("final_norm", "scale")] = take("ln_f.weight")
    flat[("final_norm", "bias")] = take("ln_f.bias")
    if "lm_head.weight" in t:
        used.add("lm_head.weight")
        if cfg.tie_embeddings:
            if not np.array_equal(t["lm_head.weight"], t["wte.weight"]):
                raise ValueError(
                    "checkpoint: lm_head.weight differs from wte.weight but the "
                    "config ties embeddings (set tie_embeddings=False)"
                )
        else:
            flat[("lm_head", "kernel")] = t["lm_head.weight"].T
    elif not cfg.tie_embeddings:
        raise ValueError("checkpoint: no lm_head.weight for an untied model")
    ignored = {k for k in t if re.fullmatch(r"h\.\d+\.attn\.(bias|masked_bias)", k)}
    return flat, used | ignored


def gpt2_state_dict(model: TransformerLM, *, prefix: str = "transformer.") -> dict[str, np.ndarray]:
    """The model's parameters under Hugging Face GPT-2 names (inverse of :func:`load_gpt2`)."""
    cfg = model.config
    if cfg.position != "learned" or cfg.norm != "layer" or cfg.gated_mlp or not cfg.use_bias:
        raise ValueError("model: not a GPT-2 architecture (use LMConfig.gpt2)")
    p = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    a = lambda x: np.asarray(x)  # noqa: E731
    out = {
        "wte.weight": a(p["embed"]["embedding"]),
        "wpe.weight": a(p["pos_embed"]["embedding"]),
        "ln_f.weight": a(p["final_norm"]["scale"]),
        "ln_f.bias": a(p["final_norm"]["bias"]),
    }
    for i in range(cfg.num_layers):
        blk = p["blocks"][i]
        for hf, ours in (("ln_1", "attn_norm"), ("ln_2", "mlp_norm")):
            out[f"h.{i}.{hf}.weight"] = a(blk[ours]["scale"])
            out[f"h.{i}.{hf}.bias"] = a(blk[ours]["bias"])
        att = blk["attn"]
        out[f"h.{i}.attn.c_attn.weight"] = np.concatenate(
            [a(att[n]["kernel"]) for n in ("query", "key", "value")], axis=1
        )
        out[f"h.{i}.attn.c_attn.bias"] = np.concatenate(
            [a(att[n]["bias"]) for n in ("query", "key", "value")]
        )
        out[f"h.{i}.attn.c_proj.weight"] = a(att["out"]["kernel"])
        out[f"h.{i}.attn.c_proj.bias"] = a(att["out"]["bias"])
        out[f"h.{i}.mlp.c_fc.weight"] = a(blk["mlp"]["up"]["kernel"])
        out[f"h.{i}.mlp.c_fc.bias"] = a(blk["mlp"]["up"]["bias"])
        out[f"h.{i}.mlp.c_proj.weight"] = a(blk["mlp"]["down"]["kernel"])
        out[f"h.{i}.mlp.c_proj.bias"] = a(blk["mlp"]["down"]["bias"])
    out = {prefix + k: v for k, v in out.items()}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = a(p["lm_head"]["kernel"]).T
    return out


_BERT_LAYER = [  # (HF suffix, our path, transpose)
    ("attention.self.query", ("attn", "query"), True),
    ("attention.self.key", ("attn", "key"), True),
    ("attention.self.value", ("attn", "value"), True),
    ("attention.output.dense", ("attn", "out"), True),
    ("intermediate.dense", ("mlp", "up"), True),
    ("output.dense", ("mlp", "down"), True),
]
_BERT_LAYER_NORMS = [("attention.output.LayerNorm", "attn_norm"), ("output.LayerNorm", "mlp_norm")]


def _bert_to_flat(t: dict[str, np.ndarray], cfg: EncoderConfig) -> tuple[Flat, set[str]]:
    flat: Flat = {}
    used: set[str] = set()

    def take(*names: str) -> np.ndarray:
        for name in names:
            if name in t:
                used.add(name)
                return t[name]
        raise ValueError(f"checkpoint: missing BERT tensor {names[0]!r}")

    def norm(hf: str, ours: tuple) -> None:
        flat[(*ours, "scale")] = take(f"{hf}.weight", f"{hf}.gamma")
        flat[(*ours, "bias")] = take(f"{hf}.bias", f"{hf}.beta")

    flat[("embed", "embedding")] = take("embeddings.word_embeddings.weight")
    flat[("pos_embed", "embedding")] = take("embeddings.position_embeddings.weight")
    if cfg.type_vocab_size:
        flat[("type_embed", "embedding")] = take("embeddings.token_type_embeddings.weight")
    norm("embeddings.LayerNorm", ("embed_norm",))
    for i in range(cfg.num_layers):
        pre = f"encoder.layer.{i}"
        for hf, ours, _ in _BERT_LAYER:
            flat[("blocks", i, *ours, "kernel")] = take(f"{pre}.{hf}.weight").T
            flat[("blocks", i, *ours, "bias")] = take(f"{pre}.{hf}.bias")
        for hf, ours in _BERT_LAYER_NORMS:
            norm(f"{pre}.{hf}", ("blocks", i, ours))
    if cfg.pooler:
        flat[("pooler", "kernel")] = take("pooler.dense.weight").T
        flat[("pooler", "bias")] = take("pooler.dense.bias")
    ignored = {
        k
        for k in t
        if k == "embeddings.position_ids"
        or k.startswith("cls.")
        or (not cfg.pooler and k.startswith("pooler."))
    }
    return flat, used | ignored


def bert_state_dict(model: TransformerEncoder, *, prefix: str = "") -> dict[str, np.ndarray]:
    """The model's parameters under Hugging Face BERT names (inverse of :func:`load_bert`)."""
    cfg = model.config
    if cfg.norm_placement != "post" or not cfg.embedding_norm or cfg.vocab_size is None:
        raise ValueError("model: not a BERT architecture (use EncoderConfig.bert)")
    p = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    a = lambda x: np.asarray(x)  # noqa: E731
    out = {
        "embeddings.word_embeddings.weight": a(p["embed"]["embedding"]),
        "embeddings.position_embeddings.weight": a(p["pos_embed"]["embedding"]),
        "embeddings.LayerNorm.weight": a(p["embed_norm"]["scale"]),
        "embeddings.LayerNorm.bias": a(p["embed_norm"]["bias"]),
    }
    if cfg.type_vocab_size:
        out["embeddings.token_type_embeddings.weight"] = a(p["type_embed"]["embedding"])
    for i in range(cfg.num_layers):
        blk, pre = p["blocks"][i], f"encoder.layer.{i}"
        for hf, (m, n), _ in _BERT_LAYER:
            out[f"{pre}.{hf}.weight"] = a(blk[m][n]["kernel"]).T
            out[f"{pre}.{hf}.bias"] = a(blk[m][n]["bias"])
        for hf, ours in _BERT_LAYER_NORMS:
            out[f"{pre}.{hf}.weight"] = a(blk[ours]["scale"])
            out[f"{pre}.{hf}.bias"] = a(blk[ours]["bias"])
    if cfg.pooler:
        out["pooler.dense.weight"] = a(p["pooler"]["kernel"]).T
        out["pooler.dense.bias"] = a(p["pooler"]["bias"])
    return {prefix + k: v for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# Filling a model
# --------------------------------------------------------------------------------------------
def _fill(
    abstract_model: nnx.Module,
    flat: Flat,
    used: set[str],
    tensors: dict[str, np.ndarray],
    dtype: Any,
) -> nnx.Module:
    unused = sorted(set(tensors) - used)
    if unused:
        raise ValueError(
            f"checkpoint: unexpected tensors {unused[:8]}{' ...' if len(unused) > 8 else ''}"
        )
    graphdef, state = nnx.split(abstract_model)
    pure = nnx.to_pure_dict(state)
    leaves = jax.tree_util.tree_flatten_with_path(pure)[0]
    targets = {
        tuple(getattr(k, "key", getattr(k, "idx", None)) for k in path): leaf
        for path, leaf in leaves
    }
    missing = sorted(set(targets) - set(flat), key=str)
    if missing:
        raise ValueError(f"checkpoint: no tensor for model parameter(s) {missing[:8]}")
    extra = sorted(set(flat) - set(targets), key=str)
    if extra:
        raise ValueError(f"checkpoint: tensors mapped to unknown parameter(s) {extra[:8]}")
    for path, target in targets.items():
        if tuple(flat[path].shape) != tuple(target.shape):
            raise ValueError(
                f"checkpoint: parameter {'/'.join(map(str, path))} has shape "
                f"{tuple(flat[path].shape)}, the model expects {tuple(target.shape)}"
            )

    def value(path, leaf):
        key = tuple(getattr(k, "key", getattr(k, "idx", None)) for k in path)
        return jax.numpy.asarray(flat[key], dtype=dtype or leaf.dtype)

    new = jax.tree_util.tree_map_with_path(value, pure)
    nnx.replace_by_pure_dict(state, new)
    return nnx.merge(graphdef, state)


def load_gpt2(
    path: str | os.PathLike, *, config: LMConfig | None = None, dtype: Any = None
) -> TransformerLM:
    """A :class:`TransformerLM` with GPT-2 weights from a safetensors file or folder.

    Args:
      path: a ``model.safetensors`` file or a folder holding it (and ``config.json``).
      config: the architecture; read from ``config.json`` beside the weights if None.
      dtype: parameter dtype (default: the model's ``param_dtype``).

    Raises:
      ValueError: missing config, missing/unexpected tensors or shape mismatches (named).
    """
    file, hf = _resolve(path)
    if config is None:
        if hf is None:
            raise ValueError(f"path: no config.json beside {file}; pass config=LMConfig.gpt2(...)")
        config = gpt2_config_from_hf(hf)
    tensors = _strip(load_safetensors(file), "transformer.")
    flat, used = _gpt2_to_flat(tensors, config)
    abstract = nnx.eval_shape(lambda: TransformerLM(config, rngs=nnx.Rngs(0)))
    return _fill(abstract, flat, used, tensors, dtype)


def load_bert(
    path: str | os.PathLike,
    *,
    config: EncoderConfig | None = None,
    dtype: Any = None,
    attention_fn: Any = None,
) -> TransformerEncoder:
    """A :class:`TransformerEncoder` with BERT weights from a safetensors file or folder.

    Args:
      path: a ``model.safetensors`` file or a folder holding it (and ``config.json``).
      config: the architecture; read from ``config.json`` if None (with a pooler if the
        checkpoint has one).
      dtype: parameter dtype (default: the model's ``param_dtype``).
      attention_fn: attention function for the encoder (default softmax attention).

    Raises:
      ValueError: missing config, missing/unexpected tensors or shape mismatches (named).
    """
    file, hf = _resolve(path)
    tensors = _strip(load_safetensors(file), "bert.")
    if config is None:
        if hf is None:
            raise ValueError(
                f"path: no config.json beside {file}; pass config=EncoderConfig.bert(...)"
            )
        config = bert_config_from_hf(hf, pooler="pooler.dense.weight" in tensors)
    flat, used = _bert_to_flat(tensors, config)
    kw = {} if attention_fn is None else {"attention_fn": attention_fn}
    abstract = nnx.eval_shape(lambda: TransformerEncoder(config, rngs=nnx.Rngs(0), **kw))
    return _fill(abstract, flat, used, tensors, dtype)

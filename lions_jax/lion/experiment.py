"""LION experiments: sequential digits (``lion-digits``) and synthetic bidirectional MLM (``lion-mlm``).

Both compare softmax attention with LION-LIT, -D, -S (and the ♮ patch orders) inside the same
:class:`~lions_jax.models.TransformerEncoder`, several seeds vmapped per variant, with
``make_train(cfg, variant) -> train(key)`` pure and ``run(cfg, out_dir)`` checkpointed per variant.
They are small, honest CPU stand-ins for the paper's ImageNet and C4/GLUE experiments, not
reproductions of their numbers.

``lion-digits`` (scikit-learn's 8x8 digits as token sequences). Expected beforehand (spec §9):
LION-D and LION-S within ~1-2 points of softmax with a learned positional embedding; LION-LIT
without positional embedding clearly worse (it is permutation-equivariant: a bag of patches);
the ♮ orders help on the patch grid.

``lion-mlm`` (masked-token prediction on generated sequences, 15 % masking). Expected
beforehand: on a local order-2 Markov language the decay priors help (D, S >= LIT); on a
"mirror" language, where token i is determined by token L-1-i, long-range attention is needed:
a strong decay (D initialised near λ = 0.5) should hurt unless it learns λ -> 1, S should learn to
keep λ near 1, LIT and softmax should do well.
"""

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lions_jax._src import registry, results, runner
from lions_jax._src.config import config_to_dict
from lions_jax._src.train_state import TrainState
from lions_jax.data import load_digits
from lions_jax.lion.modules import lion_mlm_encoder, lion_vit
from lions_jax.models import EncoderConfig, TransformerEncoder, mean_pool

__all__ = [
    "DIGITS_PRESETS",
    "DIGITS_VARIANTS",
    "MLM_PRESETS",
    "MLM_VARIANTS",
    "DigitsConfig",
    "MLMConfig",
    "make_digits_train",
    "make_mlm_train",
    "markov_batch",
    "mirror_batch",
    "run_digits",
    "run_mlm",
]

DIGITS_VARIANTS = ("softmax", "lit", "lit+pos", "d", "s", "d-natural", "s-natural")
MLM_VARIANTS = ("softmax", "lit", "d", "s")


# ============================================================================================
# Shared pieces
# ============================================================================================
class _Classifier(nnx.Module):
    """Encoder over image tokens, mean pooling, linear head."""

    def __init__(
        self,
        make_encoder: Callable[[nnx.Rngs], TransformerEncoder],
        d_model: int,
        num_classes: int,
        *,
        rngs: nnx.Rngs,
    ):
        self.encoder = make_encoder(rngs)
        self.head = nnx.Linear(d_model, num_classes, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(mean_pool(self.encoder(images=images)))


class _MaskedLM(nnx.Module):
    """Encoder over tokens and a linear vocabulary head."""

    def __init__(
        self,
        make_encoder: Callable[[nnx.Rngs], TransformerEncoder],
        d_model: int,
        vocab_size: int,
        *,
        rngs: nnx.Rngs,
    ):
        self.encoder = make_encoder(rngs)
        self.head = nnx.Linear(d_model, vocab_size, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return self.head(self.encoder(tokens))


def _positive(cfg: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.num_steps % cfg.log_every or cfg.checkpoint_every % cfg.log_every:
        raise ValueError("num_steps and checkpoint_every must be multiples of log_every")


def _check_variants(variants: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    bad = [v for v in variants if v not in allowed]
    if bad or not variants:
        raise ValueError(f"variants: unknown {bad}; choose from {', '.join(allowed)}")


def _init_fn(make_model: Callable[[nnx.Rngs], nnx.Module], tx: optax.GradientTransformation):
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))

    def init(key: jax.Array) -> TrainState:
        k_init, k_run = jax.random.split(key)
        params = nnx.state(make_model(nnx.Rngs(k_init)))
        return TrainState(
            params=params, opt_state=tx.init(params), key=k_run, step=jnp.zeros((), jnp.int32)
        )

    return init, graphdef


def _sgd_step(graphdef, tx, loss_fn):
    def step(state: TrainState, batch: Any) -> tuple[TrainState, jax.Array]:
        def objective(params):
            return loss_fn(nnx.merge(graphdef, params), batch)

        loss, grads = jax.value_and_grad(objective)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(params=params, opt_state=opt_state, step=state.step + 1), loss

    return step


def _run_variants(names, make_parts, *, cfg, out_dir: Path, progress: bool, desc: str):
    """Runs every named variant (vmapped seeds, checkpointed) in ``out_dir/runs/<name>``."""
    finals: dict[str, dict[str, np.ndarray]] = {}
    curves: dict[str, dict[str, np.ndarray]] = {}
    all_rows = []
    keys = runner.seed_keys(cfg.seed, cfg.num_seeds)
    for name in names:
        init, chunk = make_parts(name)
        _, rows = runner.run_chunked(
            init_fn=init,
            chunk_fn=chunk,
            keys=keys,
            num_chunks=cfg.num_steps // cfg.log_every,
            steps_per_chunk=cfg.log_every,
            out_dir=out_dir / "runs" / name.replace("/", "_"),
            checkpoint_every=cfg.checkpoint_every // cfg.log_every,
            desc=f"{desc} {name}",
            progress=progress,
        )
        m = results.stack_metrics(rows)
        curves[name] = m
        finals[name] = {k: v[-1] for k, v in m.items() if k != "step"}
        all_rows += [{"run": name, **r} for r in rows]
    results.atomic_write_text(
        out_dir / results.METRICS_FILE,
        "".join(json.dumps(results.to_jsonable(r)) + "\n" for r in all_rows),
    )
    return finals, curves


def _report(
    name,
    cfg,
    out_dir: Path,
    finals,
    curves,
    *,
    groups,
    metric: str,
    label: str,
    note: str,
    wall: float,
) -> dict[str, Any]:
    """Table (variants x groups, mean ± std), one plot per group, results.json."""
    summary = {run: results.summarize(f[metric]) for run, f in finals.items()}
    rows = [
        [v, *[results.format_mean_std(summary[f"{g}/{v}"], 3) for g in groups]]
        for v in cfg.variants
    ]
    table = results.markdown_table(["variant", *[f"{g} {label}" for g in groups]], rows)
    results.atomic_write_text(out_dir / results.TABLE_FILE, table + note)
    for g in groups:
        results.plot_curves(
            out_dir / f"{metric}_{g}.png",
            curves[f"{g}/{cfg.variants[0]}"]["step"],
            {v: curves[f"{g}/{v}"][metric] for v in cfg.variants},
            xlabel="step",
            ylabel=metric.replace("_", " "),
            title=f"{name} ({g})",
        )
    out = {
        "experiment": name,
        "config": config_to_dict(cfg),
        metric: summary,
        "wall_time_s": wall,
        "environment": results.environment_info(),
    }
    results.atomic_write_json(out_dir / results.RESULTS_FILE, out)
    return out


# ============================================================================================
# lion-digits
# ============================================================================================
@dataclasses.dataclass(frozen=True, kw_only=True)
class DigitsConfig:
    """``lion-digits``: classify 8x8 digits read as a token sequence.

    Attributes:
      seed, num_seeds: seeds (vmapped per variant).
      tokens: ``"patches"`` (2x2 patches: 16 tokens + class token), ``"pixels"`` (64 pixel tokens +
        class token) or ``"both"``.
      variants: from ``softmax`` (learned positions), ``lit`` (no positions), ``lit+pos``, ``d``,
        ``s``, ``d-natural``, ``s-natural`` (♮ snake orders; LION variants have no positions).
      d_model, num_layers, num_heads: encoder size (pre-LN ViT blocks, mean pooling).
      form: LION form used for training (all forms compute the same function).
      learning_rate, weight_decay, batch_size, num_steps: AdamW training.
      log_every, checkpoint_every: steps per jitted chunk / between checkpoints.
      test_fraction, data_seed: stratified digits split.
    """

    seed: int = 0
    num_seeds: int = 3
    tokens: Literal["patches", "pixels", "both"] = "patches"
    variants: tuple[str, ...] = DIGITS_VARIANTS
    d_model: int = 32
    num_layers: int = 2
    num_heads: int = 4
    form: Literal["parallel", "recurrent", "chunked"] = "parallel"
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    num_steps: int = 600
    log_every: int = 100
    checkpoint_every: int = 300
    test_fraction: float = 0.25
    data_seed: int = 0

    def __post_init__(self) -> None:
        _positive(
            self,
            (
                "num_seeds",
                "d_model",
                "num_layers",
                "num_heads",
                "batch_size",
                "num_steps",
                "log_every",
                "checkpoint_every",
            ),
        )
        _check_variants(self.variants, DIGITS_VARIANTS)
        if self.d_model % self.num_heads:
            raise ValueError("d_model must be divisible by num_heads")

    @property
    def token_setups(self) -> tuple[str, ...]:
        return ("patches", "pixels") if self.tokens == "both" else (self.tokens,)


DIGITS_PRESETS = {
    # ~2 minutes on 2 CPU cores (compilation is ~half of it): the four base variants.
    "quick": DigitsConfig(
        variants=("softmax", "lit", "d", "s"),
        num_layers=1,
        learning_rate=5e-3,
        batch_size=128,
        num_steps=400,
        log_every=100,
        checkpoint_every=200,
    ),
    "paper": DigitsConfig(
        num_seeds=5,
        tokens="both",
        d_model=64,
        num_layers=2,
        learning_rate=3e-3,
        batch_size=128,
        num_steps=3000,
        log_every=250,
        checkpoint_every=500,
    ),
}


def _digits_data(cfg: DigitsConfig):
    data = load_digits(test_fraction=cfg.test_fraction, seed=cfg.data_seed, standardize=False)
    to_img = lambda x: jnp.asarray(x.reshape(-1, 8, 8, 1) / 16.0, jnp.float32)  # noqa: E731
    return (
        to_img(data.x_train),
        jnp.asarray(data.y_train),
        to_img(data.x_test),
        jnp.asarray(data.y_test),
    )


def _digits_model(cfg: DigitsConfig, setup: str, variant: str):
    patch = 2 if setup == "patches" else 1
    base = EncoderConfig.vit(
        image_size=8,
        patch_size=patch,
        num_channels=1,
        d_model=cfg.d_model,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        d_ff=2 * cfg.d_model,
        position_embedding=variant in ("softmax", "lit+pos"),
    )
    kind = variant.split("-")[0].split("+")[0]

    def make_encoder(rngs: nnx.Rngs) -> TransformerEncoder:
        if variant == "softmax":
            return TransformerEncoder(base, rngs=rngs)
        return lion_vit(
            base, variant=kind, natural=variant.endswith("-natural"), form=cfg.form, rngs=rngs
        )

    return lambda rngs: _Classifier(make_encoder, cfg.d_model, 10, rngs=rngs)


def _digits_parts(cfg: DigitsConfig, setup: str, variant: str, data=None):
    x_train, y_train, x_test, y_test = _digits_data(cfg) if data is None else data
    tx = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    init, graphdef = _init_fn(_digits_model(cfg, setup, variant), tx)

    def loss_fn(model, batch):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    step = _sgd_step(graphdef, tx, loss_fn)
    n = x_train.shape[0]

    def body(state, _):
        idx = jax.random.randint(jax.random.fold_in(state.key, state.step), (cfg.batch_size,), 0, n)
        return step(state, (x_train[idx], y_train[idx]))

    def chunk(state):
        state, losses = jax.lax.scan(body, state, None, length=cfg.log_every)
        logits = nnx.merge(graphdef, state.params)(x_test)
        acc = jnp.mean(jnp.argmax(logits, -1) == y_test)
        return state, {"train_loss": losses.mean(), "test_accuracy": acc}

    return init, chunk


def make_digits_train(cfg: DigitsConfig, variant: str, *, setup: str | None = None):
    """``train(key) -> (state, metrics)`` for one variant and token setup (pure; seeds vmap)."""
    _check_variants((variant,), DIGITS_VARIANTS)
    init, chunk = _digits_parts(cfg, setup or cfg.token_setups[0], variant)
    return runner.scan_chunks(init, chunk, cfg.num_steps // cfg.log_every)


def run_digits(cfg: DigitsConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    data = _digits_data(cfg)
    names = [f"{setup}/{v}" for setup in cfg.token_setups for v in cfg.variants]
    t0 = time.perf_counter()
    finals, curves = _run_variants(
        names,
        lambda name: _digits_parts(cfg, *name.split("/"), data=data),
        cfg=cfg,
        out_dir=out_dir,
        progress=progress,
        desc="lion-digits",
    )
    wall = time.perf_counter() - t0
    note = (
        f"\nMean ± std over {cfg.num_seeds} seeds; {cfg.num_steps} AdamW steps, "
        f"{cfg.num_layers} layer(s), width {cfg.d_model}, {cfg.num_heads} heads, "
        f"LION form `{cfg.form}`. 1,347 train / 450 test digits. A CPU-sized toy: the "
        f"paper's setting is ImageNet-1k at 86M parameters. Wall {wall:.0f} s.\n"
    )
    return _report(
        "lion-digits",
        cfg,
        out_dir,
        finals,
        curves,
        groups=cfg.token_setups,
        metric="test_accuracy",
        label="test acc.",
        note=note,
        wall=wall,
    )


# ============================================================================================
# lion-mlm
# ============================================================================================
@dataclasses.dataclass(frozen=True, kw_only=True)
class MLMConfig:
    """``lion-mlm``: masked-token prediction on two generated languages.

    Attributes:
      seed, num_seeds: seeds (vmapped per variant).
      tasks: ``"markov"`` (order-2 Markov chain, see :func:`_markov_table`: local structure)
        and/or ``"mirror"`` (token i is a
        fixed permutation of token L-1-i: long-range structure).
      variants: from ``softmax``, ``lit``, ``d``, ``s`` (all with learned positions, BERT layout,
        LION in its MLM form: no feature map, no row normalisation).
      seq_len, vocab_size, mask_prob: data.
      d_model, num_layers, num_heads: encoder size.
      learning_rate, batch_size, num_steps, log_every, checkpoint_every: AdamW training.
      eval_size: sequences in the fixed evaluation set.
      data_seed: seed of the Markov transition table and the mirror permutation.
    """

    seed: int = 0
    num_seeds: int = 3
    tasks: tuple[str, ...] = ("markov", "mirror")
    variants: tuple[str, ...] = MLM_VARIANTS
    seq_len: int = 64
    vocab_size: int = 32
    mask_prob: float = 0.15
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    form: Literal["parallel", "recurrent", "chunked"] = "parallel"
    learning_rate: float = 2e-3
    batch_size: int = 32
    num_steps: int = 600
    log_every: int = 100
    checkpoint_every: int = 300
    eval_size: int = 256
    data_seed: int = 0

    def __post_init__(self) -> None:
        _positive(
            self,
            (
                "num_seeds",
                "seq_len",
                "vocab_size",
                "d_model",
                "num_layers",
                "num_heads",
                "batch_size",
                "num_steps",
                "log_every",
                "checkpoint_every",
                "eval_size",
            ),
        )
        _check_variants(self.variants, MLM_VARIANTS)
        bad = [t for t in self.tasks if t not in ("markov", "mirror")]
        if bad or not self.tasks:
            raise ValueError(f"tasks: unknown {bad}; choose from markov, mirror")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.d_model % self.num_heads:
            raise ValueError("d_model must be divisible by num_heads")


MLM_PRESETS = {
    # ~2 minutes on 2 CPU cores: 2 tasks x 4 variants, 1 layer, L = 32.
    "quick": MLMConfig(
        seq_len=32,
        d_model=32,
        num_layers=1,
        learning_rate=5e-3,
        num_steps=300,
        log_every=100,
        checkpoint_every=100,
    ),
    "paper": MLMConfig(
        num_seeds=5,
        seq_len=128,
        d_model=128,
        num_layers=4,
        learning_rate=1e-3,
        num_steps=4000,
        log_every=250,
        checkpoint_every=1000,
    ),
}


def _markov_table(cfg: MLMConfig) -> jax.Array:
    r"""Order-2 transition log-probs, :math:`P(c \mid a, b) = \tfrac12 T_1[a, c] + \tfrac12 T_2[b, c]`.

    :math:`T_1, T_2` have peaked Dirichlet(0.1) rows (fixed by ``data_seed``): each token depends on
    both of its predecessors, with a structure a small model can learn in a few hundred steps
    (a full :math:`V^2 \times V` table cannot be, at this size).
    """
    rng = np.random.default_rng(cfg.data_seed)
    v = cfg.vocab_size
    t1, t2 = rng.dirichlet(np.full(v, 0.1), size=(2, v))
    table = 0.5 * t1[:, None, :] + 0.5 * t2[None, :, :]
    return jnp.asarray(np.log(table + 1e-12), jnp.float32)


def markov_batch(key: jax.Array, log_table: jax.Array, batch: int, seq_len: int) -> jax.Array:
    """(batch, seq_len) int32 sequences of an order-2 Markov chain with log-probs ``log_table``."""
    v = log_table.shape[0]
    k0, k1, k2 = jax.random.split(key, 3)
    x0 = jax.random.randint(k0, (batch,), 0, v)
    x1 = jax.random.randint(k1, (batch,), 0, v)

    def step(carry, k):
        a, b = carry
        c = jax.random.categorical(k, log_table[a, b])
        return (b, c), c

    _, rest = jax.lax.scan(step, (x0, x1), jax.random.split(k2, seq_len - 2))
    return jnp.concatenate([x0[:, None], x1[:, None], rest.T], axis=1).astype(jnp.int32)


def mirror_batch(key: jax.Array, perm: jax.Array, batch: int, seq_len: int) -> jax.Array:
    """(batch, seq_len) sequences with ``x[L-1-i] = perm[x[i]]`` for i < L/2 (uniform first half)."""
    v = perm.shape[0]
    half = (seq_len + 1) // 2
    first = jax.random.randint(key, (batch, half), 0, v)
    second = perm[first[:, : seq_len - half]][:, ::-1]
    return jnp.concatenate([first, second], axis=1).astype(jnp.int32)


def _mlm_model(cfg: MLMConfig, variant: str):
    base = EncoderConfig.bert(
        vocab_size=cfg.vocab_size + 1,
        d_model=cfg.d_model,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        d_ff=2 * cfg.d_model,
        max_len=cfg.seq_len,
        type_vocab_size=0,
        pooler=False,
    )

    def make_encoder(rngs: nnx.Rngs) -> TransformerEncoder:
        if variant == "softmax":
            return TransformerEncoder(base, rngs=rngs)
        return lion_mlm_encoder(base, variant=variant, form=cfg.form, rngs=rngs)

    return lambda rngs: _MaskedLM(make_encoder, cfg.d_model, cfg.vocab_size, rngs=rngs)


def _mlm_parts(cfg: MLMConfig, task: str, variant: str):
    tx = optax.adamw(cfg.learning_rate, weight_decay=1e-4)
    init, graphdef = _init_fn(_mlm_model(cfg, variant), tx)
    mask_id = cfg.vocab_size
    if task == "markov":
        table = _markov_table(cfg)
        sample = lambda k, b: markov_batch(k, table, b, cfg.seq_len)  # noqa: E731
    else:
        perm = jnp.asarray(np.random.default_rng(cfg.data_seed).permutation(cfg.vocab_size))
        sample = lambda k, b: mirror_batch(k, perm, b, cfg.seq_len)  # noqa: E731

    def masked(key, b):
        k_seq, k_mask = jax.random.split(key)
        tokens = sample(k_seq, b)
        where = jax.random.bernoulli(k_mask, cfg.mask_prob, tokens.shape)
        return jnp.where(where, mask_id, tokens), tokens, where

    eval_inputs, eval_targets, eval_where = masked(
        jax.random.key(cfg.data_seed + 10_000), cfg.eval_size
    )

    def loss_fn(model, batch):
        inputs, targets, where = batch
        ce = optax.softmax_cross_entropy_with_integer_labels(model(inputs), targets)
        return jnp.sum(ce * where) / jnp.maximum(where.sum(), 1)

    step = _sgd_step(graphdef, tx, loss_fn)

    def body(state, _):
        batch = masked(jax.random.fold_in(state.key, state.step), cfg.batch_size)
        return step(state, batch)

    def chunk(state):
        state, losses = jax.lax.scan(body, state, None, length=cfg.log_every)
        pred = jnp.argmax(nnx.merge(graphdef, state.params)(eval_inputs), -1)
        acc = jnp.sum((pred == eval_targets) * eval_where) / eval_where.sum()
        return state, {"train_loss": losses.mean(), "masked_accuracy": acc}

    return init, chunk


def make_mlm_train(cfg: MLMConfig, task: str, variant: str):
    """``train(key) -> (state, metrics)`` for one task and variant (pure; seeds vmap)."""
    _check_variants((variant,), MLM_VARIANTS)
    init, chunk = _mlm_parts(cfg, task, variant)
    return runner.scan_chunks(init, chunk, cfg.num_steps // cfg.log_every)


def run_mlm(cfg: MLMConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    names = [f"{t}/{v}" for t in cfg.tasks for v in cfg.variants]
    t0 = time.perf_counter()
    finals, curves = _run_variants(
        names,
        lambda name: _mlm_parts(cfg, *name.split("/")),
        cfg=cfg,
        out_dir=out_dir,
        progress=progress,
        desc="lion-mlm",
    )
    wall = time.perf_counter() - t0
    note = (
        f"\nMasked-token accuracy on {cfg.eval_size} fixed evaluation sequences (L = "
        f"{cfg.seq_len}, vocabulary {cfg.vocab_size}, {cfg.mask_prob:.0%} masked; chance "
        f"{1.0 / cfg.vocab_size:.3f}); mean ± std over {cfg.num_seeds} seeds, {cfg.num_steps} "
        f"steps. Synthetic stand-in for the paper's C4 pretraining. Wall {wall:.0f} s.\n"
    )
    return _report(
        "lion-mlm",
        cfg,
        out_dir,
        finals,
        curves,
        groups=cfg.tasks,
        metric="masked_accuracy",
        label="masked acc.",
        note=note,
        wall=wall,
    )


registry.register(
    registry.Experiment(
        name="lion-digits",
        description="LION-LIT/D/S(♮) vs softmax attention on digits read as token sequences.",
        config_type=DigitsConfig,
        presets=DIGITS_PRESETS,
        run=run_digits,
    )
)

registry.register(
    registry.Experiment(
        name="lion-mlm",
        description="LION-LIT/D/S vs softmax on synthetic masked-token tasks, local and long-range.",
        config_type=MLMConfig,
        presets=MLM_PRESETS,
        run=run_mlm,
    )
)

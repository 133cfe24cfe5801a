"""The shared unlearning loop: ``make_unlearn(cfg, graphdef) -> unlearn(key, params, ref_params,
arrays) -> (params, log)``.

One compiled program runs ``epochs`` passes over the forget set (a fresh permutation per epoch,
batches of ``batch_size``; each step also draws a uniform retain batch of the same size, used when
the objective has a retain term) with AdamW at a constant learning rate, and evaluates the model with
:func:`lions_jax.lume.model.evaluate` before unlearning and after every epoch. Everything is pure:
``jax.vmap`` over keys and target parameters runs several seeds at once.

The objectives are :mod:`lions_jax.lume.losses` on the model's per-token log-probs; the frozen
target model ``ref_params`` supplies ``π_ref`` (NPO's ratio, KL's retain distribution). The
algorithm and its hyperparameters may be traced (:class:`UnlearnHparams`): ``lax.switch`` runs only
the chosen objective, so one compilation serves a whole algorithm × learning-rate grid.
"""

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.lume import losses
from lions_jax.lume.lora import lora_init, lora_merge
from lions_jax.lume.model import EvalArrays, EvalOutput, Sequences, evaluate, sequence_logits
from lions_jax.models.generation import token_logprobs

__all__ = [
    "UnlearnArrays",
    "UnlearnConfig",
    "UnlearnHparams",
    "UnlearnLog",
    "group_batch_sizes",
    "make_unlearn",
    "steps_per_epoch",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class UnlearnConfig:
    """Attributes:
    algorithm: one of :data:`lions_jax.lume.losses.LOSSES`.
    learning_rate: AdamW learning rate (constant).
    epochs: passes over the forget set.
    batch_size: forget (and retain) rows per step.
    beta: NPO's inverse temperature (0.1 in the NPO paper and LUME).
    lam: weight of the retain term (GD, KL, NPO+GD, SimNPO).
    simnpo_beta, simnpo_gamma: SimNPO's β and margin γ.
    weight_decay, max_grad_norm: AdamW decay and global-norm clipping.
    lora_rank: 0 updates every parameter; r > 0 trains LoRA adapters of rank r on every
      attention / MLP kernel instead (:mod:`lions_jax.lume.lora`, the parameter-efficient
      updates of the leading SemEval-2025 Task 4 teams); the embeddings and norms stay frozen.
    lora_alpha: LoRA's scale is ``lora_alpha / lora_rank``.
    """

    algorithm: str = "npo_gd"
    learning_rate: float = 1e-4
    epochs: int = 5
    batch_size: int = 16
    beta: float = 0.1
    lam: float = 1.0
    simnpo_beta: float = 2.5
    simnpo_gamma: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_rank: int = 0
    lora_alpha: float = 16.0

    def __post_init__(self) -> None:
        if not isinstance(self.lora_rank, int) or isinstance(self.lora_rank, bool):
            raise ValueError(f"lora_rank: expected an int >= 0, got {self.lora_rank!r}")
        if self.lora_rank < 0 or not self.lora_alpha > 0:
            raise ValueError(
                f"lora_rank, lora_alpha: expected >= 0 and > 0, got {self.lora_rank}, "
                f"{self.lora_alpha}"
            )
        if self.algorithm not in losses.LOSSES:
            raise ValueError(f"algorithm: expected one of {losses.LOSSES}, got {self.algorithm!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        for name in ("learning_rate", "beta", "simnpo_beta", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        for name in ("lam", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")


class UnlearnArrays(NamedTuple):
    """Attributes:
    forget, retain: the LUME rows as teacher-forced :class:`Sequences` (loss on outputs), in
      groups of similar length, each padded to its own width (LUME's sc rows are ~5x longer
      than its qa rows: one shared width would spend most of every step on padding). Every
      batch takes each group's share of ``batch_size`` rows (:func:`group_batch_sizes`).
    eval: what :func:`~lions_jax.lume.model.evaluate` reads.
    """

    forget: tuple[Sequences, ...]
    retain: tuple[Sequences, ...]
    eval: EvalArrays


class UnlearnLog(NamedTuple):
    """Attributes:
    evals: :class:`EvalOutput` stacked over ``epochs + 1`` evaluations (index 0: before).
    losses: (epochs, steps_per_epoch) objective value at each step.
    update_norms: (epochs, steps_per_epoch) global norm of each update of the trained
      parameters (the LoRA adapters when ``lora_rank > 0``).
    """

    evals: EvalOutput
    losses: jax.Array
    update_norms: jax.Array


def steps_per_epoch(num_forget: int, batch_size: int) -> int:
    """Steps of one pass over ``num_forget`` rows (the last batch wraps around)."""
    return math.ceil(num_forget / batch_size)


def group_batch_sizes(counts: tuple[int, ...], batch_size: int) -> tuple[int, ...]:
    """Each group's rows per batch: proportional to ``counts`` (largest remainders), at least one
    per non-empty group, summing to ``max(batch_size, number of non-empty groups)``.

    >>> group_batch_sizes((24, 56), 16)
    (5, 11)
    """
    if not counts or any(c < 0 for c in counts) or sum(counts) == 0:
        raise ValueError(f"counts: expected non-negative row counts, not all 0, got {counts}")
    total, live = sum(counts), [c > 0 for c in counts]
    size = max(batch_size, sum(live))
    exact = [size * c / total for c in counts]
    sizes = [max(int(e), 1) if ok else 0 for e, ok in zip(exact, live)]
    order = sorted(range(len(counts)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    i = 0
    while sum(sizes) < size:
        if live[order[i % len(order)]]:
            sizes[order[i % len(order)]] += 1
        i += 1
    while sum(sizes) > size:  # a group forced up to one row: take it back from the largest
        sizes[max(range(len(sizes)), key=sizes.__getitem__)] -= 1
    return tuple(sizes)


def _cat_rows(parts: list[jax.Array]) -> jax.Array:
    """Concatenates per-group (rows, T_g, ...) arrays along rows, zero-padding T to the widest."""
    width = max(x.shape[1] for x in parts)
    pad = lambda x: jnp.pad(x, [(0, 0), (0, width - x.shape[1])] + [(0, 0)] * (x.ndim - 2))  # noqa: E731
    return jnp.concatenate([pad(x) for x in parts], axis=0)


class UnlearnHparams(NamedTuple):
    """The traced hyperparameters of :func:`make_unlearn`'s ``unlearn``: one compiled program
    serves every algorithm and learning rate (``lax.switch`` runs only the chosen objective).

    Attributes:
      algorithm: int32 index into :data:`lions_jax.lume.losses.LOSSES`.
      learning_rate, beta, lam, simnpo_beta, simnpo_gamma: as in :class:`UnlearnConfig`.
    """

    algorithm: jax.Array
    learning_rate: jax.Array
    beta: jax.Array
    lam: jax.Array
    simnpo_beta: jax.Array
    simnpo_gamma: jax.Array

    @classmethod
    def from_config(cls, cfg: "UnlearnConfig") -> "UnlearnHparams":
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return cls(
            jnp.asarray(losses.LOSSES.index(cfg.algorithm), jnp.int32),
            f(cfg.learning_rate),
            f(cfg.beta),
            f(cfg.lam),
            f(cfg.simnpo_beta),
            f(cfg.simnpo_gamma),
        )


def make_unlearn(
    cfg: UnlearnConfig, graphdef: nnx.GraphDef, *, max_new_tokens: tuple[int, ...]
) -> Any:
    """``unlearn(key, params, ref_params, arrays, hparams=None) -> (params, UnlearnLog)`` (pure,
    jittable).

    Args:
      cfg: the algorithm and optimiser; ``epochs`` and ``batch_size`` are static, the rest is
        the default of ``hparams`` (:meth:`UnlearnHparams.from_config`), which may be passed
        traced to reuse one compilation across algorithms and learning rates.
      graphdef: of the :class:`~lions_jax.models.TransformerLM` being unlearned.
      max_new_tokens: generation length of each prompt group of the evaluation (static).
    """

    def logits_of(p: Any, seqs: Sequences) -> jax.Array:
        return sequence_logits(graphdef, p, seqs)

    def logp_of(logits: jax.Array, seqs: Sequences) -> jax.Array:
        return token_logprobs(logits, seqs.tokens[:, 1:])

    def objective(
        p: Any,
        ref: Any,
        forget: tuple[Sequences, ...],
        retain: tuple[Sequences, ...],
        h: UnlearnHparams,
    ) -> jax.Array:
        # each group runs at its own width; the per-token arrays are then padded and stacked
        def logp(params: Any, groups: tuple[Sequences, ...]) -> jax.Array:
            return _cat_rows([logp_of(logits_of(params, g), g) for g in groups])

        f_m = _cat_rows([g.loss_mask for g in forget])
        r_m = _cat_rows([g.loss_mask for g in retain])
        ref_logp = lambda groups: jax.lax.stop_gradient(logp(ref, groups))  # noqa: E731

        def kl() -> jax.Array:
            r_logits = _cat_rows([logits_of(p, g) for g in retain])
            r_ref = jax.lax.stop_gradient(_cat_rows([logits_of(ref, g) for g in retain]))
            return losses.kl_loss(logp(p, forget), f_m, r_ref, r_logits, r_m, h.lam)

        branches = {
            "ga": lambda: losses.ga_loss(logp(p, forget), f_m),
            "gd": lambda: losses.gd_loss(logp(p, forget), f_m, logp(p, retain), r_m, h.lam),
            "kl": kl,
            "npo": lambda: losses.npo_loss(logp(p, forget), ref_logp(forget), f_m, h.beta),
            "npo_gd": lambda: losses.npo_gd_loss(
                logp(p, forget), ref_logp(forget), f_m, logp(p, retain), r_m, h.beta, h.lam
            ),
            "simnpo": lambda: losses.simnpo_loss(
                logp(p, forget), f_m, logp(p, retain), r_m, h.simnpo_beta, h.simnpo_gamma, h.lam
            ),
        }
        return jax.lax.switch(h.algorithm, [branches[name] for name in losses.LOSSES])

    def unlearn(
        key: ArrayLike,
        params: Any,
        ref_params: Any,
        arrays: UnlearnArrays,
        hparams: UnlearnHparams | None = None,
    ) -> tuple[Any, UnlearnLog]:
        h = UnlearnHparams.from_config(cfg) if hparams is None else hparams
        opt = optax.chain(
            optax.clip_by_global_norm(cfg.max_grad_norm),
            optax.inject_hyperparams(optax.adamw)(
                learning_rate=h.learning_rate, weight_decay=cfg.weight_decay
            ),
        )
        key = jnp.asarray(key)
        if cfg.lora_rank:
            # train adapters; the model is always the target plus their low-rank product
            key, k_lora = jax.random.split(key)
            trainable = lora_init(k_lora, params, cfg.lora_rank)
            target = params

            def to_model(t: Any) -> Any:
                return lora_merge(target, t, cfg.lora_alpha / cfg.lora_rank)
        else:
            trainable = params

            def to_model(t: Any) -> Any:
                return t

        n_f = tuple(g.tokens.shape[0] for g in arrays.forget)
        n_r = tuple(g.tokens.shape[0] for g in arrays.retain)
        if not n_f or not n_r or 0 in n_f + n_r:
            raise ValueError(
                f"arrays: expected non-empty forget and retain row groups, got {n_f} and {n_r}"
            )
        b_f = group_batch_sizes(n_f, cfg.batch_size)
        b_r = group_batch_sizes(n_r, cfg.batch_size)
        steps = steps_per_epoch(sum(n_f), cfg.batch_size)

        def eval_fn(p: Any) -> EvalOutput:
            return evaluate(graphdef, p, arrays.eval, max_new_tokens=max_new_tokens)

        def take(groups: tuple[Sequences, ...], idx: tuple[jax.Array, ...]) -> Any:
            return tuple(jax.tree.map(lambda x, i=i: x[i], g) for g, i in zip(groups, idx))

        def step(carry: Any, xs: Any) -> tuple[Any, Any]:
            p, s = carry
            f_idx, k = xs
            ks = jax.random.split(k, len(n_r))
            r_idx = tuple(jax.random.randint(kk, (b,), 0, n) for kk, b, n in zip(ks, b_r, n_r))
            forget, retain = take(arrays.forget, f_idx), take(arrays.retain, r_idx)
            loss, g = jax.value_and_grad(
                lambda t: objective(to_model(t), ref_params, forget, retain, h)
            )(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), (loss, optax.tree.norm(upd))

        def epoch(carry: Any, k: jax.Array) -> tuple[Any, Any]:
            k_perm, k_ret = jax.random.split(k)
            # each group is permuted and cycled to fill its share of every batch
            f_idx = tuple(
                jnp.resize(jax.random.permutation(kk, n), (steps * b,)).reshape(steps, b)
                for kk, n, b in zip(jax.random.split(k_perm, len(n_f)), n_f, b_f)
            )
            carry, (ls, norms) = jax.lax.scan(step, carry, (f_idx, jax.random.split(k_ret, steps)))
            return carry, (ls, norms, eval_fn(to_model(carry[0])))

        before = eval_fn(params)
        keys = jax.random.split(key, cfg.epochs)
        init = (trainable, opt.init(trainable))
        (trainable, _), (ls, norms, evals) = jax.lax.scan(epoch, init, keys)
        evals = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), before, evals)
        return to_model(trainable), UnlearnLog(evals, ls, norms)

    return unlearn

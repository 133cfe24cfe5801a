"""Experiment ``lume``: GA, GD, KL, NPO, NPO+GD, SimNPO+retain and GD with LoRA adapters on a
toy LM that memorised LUME-style data, scored exactly as SemEval-2025 Task 4 scores submissions.

Pipeline (offline, CPU-sized; every size is a config field):

1. :func:`lions_jax.lume.data.make_lume_data`: Task1'–3' forget/retain documents and probes in the
   LUME schema, MIA non-members, the fictional base text and its 4-option utility test.
2. A byte-level BPE (:class:`~lions_jax.lume.model.LumeTokenizer`) on all of that text.
3. Per seed, a **target** :class:`~lions_jax.models.TransformerLM`: pretrained on base text +
   Task3' documents (LUME's Task3 comes from the target's pretraining data), then fine-tuned on
   every forget and retain row and document until it memorises them; and a **retain-only
   reference** trained the same way without any forget document (the gold standard of exact
   unlearning, which LUME lacks and TOFU has). Both are cached.
4. Every algorithm runs ``epochs`` passes over the forget rows from each seed's target
   (``jax.vmap`` over seeds; one compiled program for all full-parameter runs and one for the
   LoRA runs, the algorithm and learning rate being traced) and is evaluated before unlearning
   and after every epoch.
5. Scoring (:func:`lions_jax.lume.model.score`): ROUGE-L recall / exact match per task and
   split, TaskAgg (harmonic mean of 12 with forget inverted), MIA score 1 − 2|AUC − 0.5| of the
   loss attack on forget documents vs non-members (zlib, Min-K% and Min-K%++ AUCs reported
   too), utility = the multiple-choice accuracy (valid if ≥ 75 % of the target's), Final = mean.

Outputs: ``table.md`` (leaderboard in the official format + per-task numbers + MIA variants),
``metrics.jsonl`` (every algorithm × seed × epoch), ``results.json``, ``lume.png`` (forget vs
retain trade-off, utility and MIA AUC over epochs).
"""

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, serialization

from lions_jax._src import registry, results
from lions_jax._src.config import cache_root, config_to_dict
from lions_jax.lume import data as D
from lions_jax.lume import losses, metrics
from lions_jax.lume.model import (
    EvalArrays,
    LumeTokenizer,
    TargetConfig,
    TextStream,
    encode_documents,
    encode_rows,
    encode_stream,
    evaluate,
    make_train_target,
    score,
)
from lions_jax.lume.unlearn import UnlearnArrays, UnlearnConfig, UnlearnHparams, make_unlearn
from lions_jax.models import TransformerLM

__all__ = ["ALGORITHM_NAMES", "LumeConfig", "Prepared", "cached_models", "prepare", "run"]

#: Display names of :data:`lions_jax.lume.losses.LOSSES`.
ALGORITHM_NAMES = {
    "ga": "GA",
    "gd": "GD",
    "kl": "KL",
    "npo": "NPO",
    "npo_gd": "NPO+GD",
    "simnpo": "SimNPO+GD",
}
LABEL = "toy LM, LUME-style synthetic data"
#: Bump when training or data code changes what a cached model would hold.
CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class LumeConfig:
    """``lume``.

    Attributes:
      seed, num_seeds: data seed (shared) and model seeds ``seed .. seed + num_seeds - 1``.
      docs_per_task: documents per task per split (LUME: 243–373; forget and retain 1:1).
      num_facts: facts of the fictional base text (utility questions, one per fact).
      vocab_size: BPE vocabulary.
      d_model, num_layers, window, pretrain_steps, finetune_steps, train_batch, train_lr: the target
        and the retain-only reference (:class:`~lions_jax.lume.model.TargetConfig`).
      algorithms: unlearning objectives (:data:`lions_jax.lume.losses.LOSSES`).
      learning_rates: each algorithm runs at each (the spec's grid is 1e-5, 5e-6, 1e-6 for
        7B models; a toy model needs larger steps).
      epochs, batch_size, beta, lam: unlearning schedule, NPO's β, retain weight λ.
      lora_algorithms, lora_rank, lora_learning_rate: also run these objectives with LoRA
        adapters of rank ``lora_rank`` (the leading SemEval teams' parameter-efficient updates;
        LoRA needs a larger step).
      cache_dir: cache root ("" = ``$LIONS_JAX_DATA/lume`` or ``~/.cache/lions_jax/lume``).
    """

    seed: int = 0
    num_seeds: int = 3
    docs_per_task: int = 8
    num_facts: int = 96
    vocab_size: int = 4096
    d_model: int = 128
    num_layers: int = 2
    window: int = 128
    pretrain_steps: int = 200
    finetune_steps: int = 800
    train_batch: int = 16
    train_lr: float = 3e-3
    algorithms: tuple[str, ...] = losses.LOSSES
    learning_rates: tuple[float, ...] = (1e-3,)
    epochs: int = 5
    batch_size: int = 16
    beta: float = 0.1
    lam: float = 1.0
    lora_algorithms: tuple[str, ...] = ("gd",)
    lora_rank: int = 8
    lora_learning_rate: float = 3e-3
    cache_dir: str = ""

    def __post_init__(self) -> None:
        for name in ("num_seeds", "docs_per_task", "num_facts", "epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        unknown = [a for a in self.algorithms if a not in losses.LOSSES]
        if not self.algorithms or unknown:
            raise ValueError(f"algorithms: expected a non-empty subset of {losses.LOSSES}")
        if any(a not in losses.LOSSES for a in self.lora_algorithms):
            raise ValueError(f"lora_algorithms: expected a subset of {losses.LOSSES}")
        if not isinstance(self.lora_rank, int) or self.lora_rank < 1:
            raise ValueError(f"lora_rank: expected a positive int, got {self.lora_rank!r}")
        if not self.lora_learning_rate > 0:
            raise ValueError(f"lora_learning_rate: expected > 0, got {self.lora_learning_rate}")
        if not self.learning_rates or any(not lr > 0 for lr in self.learning_rates):
            raise ValueError(f"learning_rates: expected positive values, got {self.learning_rates}")
        self.target_config()  # validates the model fields
        self.unlearn_config(self.algorithms[0], self.learning_rates[0])

    def target_config(self) -> TargetConfig:
        return TargetConfig(
            d_model=self.d_model,
            num_layers=self.num_layers,
            window=self.window,
            pretrain_steps=self.pretrain_steps,
            finetune_steps=self.finetune_steps,
            batch_size=self.train_batch,
            learning_rate=self.train_lr,
        )

    def unlearn_config(self, algorithm: str, lr: float, lora_rank: int = 0) -> UnlearnConfig:
        return UnlearnConfig(
            algorithm=algorithm,
            learning_rate=lr,
            epochs=self.epochs,
            batch_size=self.batch_size,
            beta=self.beta,
            lam=self.lam,
            lora_rank=lora_rank,
        )

    def runs(self) -> list[tuple[str, str, float, int]]:
        """``(name, algorithm, learning rate, LoRA rank)`` of every unlearning run."""
        many = len(self.learning_rates) > 1
        out = [
            (ALGORITHM_NAMES[a] + (f" (lr {lr:g})" if many else ""), a, lr, 0)
            for a in self.algorithms
            for lr in self.learning_rates
        ]
        out += [
            (
                f"{ALGORITHM_NAMES[a]} (LoRA r {self.lora_rank})",
                a,
                self.lora_learning_rate,
                self.lora_rank,
            )
            for a in self.lora_algorithms
        ]
        return out

    def cache_root(self) -> Path:
        return cache_root(self.cache_dir, "lume")


PRESETS = {
    "quick": LumeConfig(),
    "paper": LumeConfig(
        num_seeds=3,
        docs_per_task=250,
        num_facts=400,
        vocab_size=4096,
        d_model=512,
        num_layers=8,
        pretrain_steps=4_000,
        finetune_steps=12_000,
        learning_rates=(1e-3, 3e-4, 1e-4),
        epochs=10,
        batch_size=32,
    ),
}


# --------------------------------------------------------------------------------------------
# Data → arrays
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prepared:
    """The experiment's data, tokenizer and arrays (see :func:`prepare`).

    Attributes:
      data: the generated :class:`~lions_jax.lume.data.LumeData`.
      tokenizer: the BPE trained on all of its text.
      rows: the evaluated rows in generation order: sc rows, then qa rows (forget and retain).
      streams: training streams (:class:`~lions_jax.lume.model.TextStream`): ``pretrain``,
        ``finetune`` and ``replay`` for the target; ``pretrain_reference`` and
        ``finetune_reference`` hold no forget document (the retain-only reference).
      unlearn: the unlearning arrays (forget and retain rows, evaluation arrays).
      num_members: leading MIA documents that are members (the forget documents).
      zlib_bytes: zlib size of each MIA document (the zlib attack).
      mc_answers: the utility test's correct options.
      max_new_tokens: generation length per group (sc, qa): the longest reference + 8 tokens.
    """

    data: Any
    tokenizer: LumeTokenizer
    rows: tuple[Any, ...]
    streams: dict[str, TextStream]
    unlearn: UnlearnArrays
    num_members: int
    zlib_bytes: np.ndarray
    mc_answers: np.ndarray
    max_new_tokens: tuple[int, ...]


def _paragraphs(sentences: tuple[str, ...], per: int = 6) -> list[str]:
    return [" ".join(sentences[i : i + per]) for i in range(0, len(sentences), per)]


def _qa_texts(docs: Any) -> list[str]:
    return [f"{r.input} {r.output}" for d in docs for r in d.rows if r.kind == "qa"]


def prepare(cfg: LumeConfig) -> Prepared:
    """Generates the data, trains the tokenizer and encodes everything (deterministic)."""
    data = D.make_lume_data(cfg.seed, cfg.docs_per_task, num_facts=cfg.num_facts)
    base = _paragraphs(data.base_text)
    docs = {s: [d.text for d in getattr(data, s)] for s in ("forget", "retain", "nonmember")}
    t3 = {s: [d.text for d in getattr(data, s) if d.task == "Task3"] for s in ("forget", "retain")}
    texts = [*base, *docs["forget"], *docs["retain"], *docs["nonmember"]]
    texts += [q.prompt + c for q in data.utility for c in q.choices]
    tok = LumeTokenizer.train(texts, cfg.vocab_size)

    forget_rows, retain_rows = data.forget_rows, data.retain_rows
    # rows in two length groups (sc ~5x longer than qa), each at its own width
    forget, retain = (
        tuple(encode_rows(tok, [r for r in rows if r.kind == k])[0] for k in ("sc", "qa"))
        for rows in (forget_rows, retain_rows)
    )
    all_rows = forget_rows + retain_rows
    groups = [tuple(r for r in all_rows if r.kind == k) for k in ("sc", "qa")]
    prompts, masks, max_new = [], [], []
    for g in groups:
        seqs, p, m = encode_rows(tok, g)
        prompts.append(jnp.asarray(p))
        masks.append(jnp.asarray(m))
        answer_tokens = np.asarray(seqs.loss_mask).sum(1)
        max_new.append(int(answer_tokens.max()) + 8)

    mia_texts = docs["forget"] + docs["nonmember"]
    mc_pairs = [(q.prompt, c.lstrip(" ")) for q in data.utility for c in q.choices]
    mc, _, _ = encode_rows(tok, mc_pairs, eos=False)
    evals = EvalArrays(tuple(prompts), tuple(masks), encode_documents(tok, mia_texts), mc)

    window = cfg.target_config().window
    longest = max(len(tok.encode(t)) for t in texts)
    if longest >= window:
        raise ValueError(f"window: {window} tokens, but a document has {longest}")
    qa = {s: _qa_texts(getattr(data, s)) for s in ("forget", "retain")}
    streams = {
        "pretrain": encode_stream(tok, base + t3["forget"] + t3["retain"], window),
        "finetune": encode_stream(
            tok, docs["forget"] + docs["retain"] + qa["forget"] + qa["retain"], window
        ),
        "replay": encode_stream(tok, base, window),
        "pretrain_reference": encode_stream(tok, base + t3["retain"], window),
        "finetune_reference": encode_stream(tok, docs["retain"] + qa["retain"], window),
    }
    return Prepared(
        data=data,
        tokenizer=tok,
        rows=groups[0] + groups[1],
        streams=streams,
        unlearn=UnlearnArrays(forget, retain, evals),
        num_members=len(docs["forget"]),
        zlib_bytes=metrics.zlib_entropy(mia_texts),
        mc_answers=np.array([q.answer for q in data.utility]),
        max_new_tokens=tuple(max_new),
    )


# --------------------------------------------------------------------------------------------
# Cached target and reference models
# --------------------------------------------------------------------------------------------
def _digest(cfg: LumeConfig, prep: Prepared) -> str:
    h = hashlib.sha256(repr((CACHE_VERSION, cfg.target_config(), cfg.vocab_size)).encode())
    for name in sorted(prep.streams):
        h.update(name.encode())
        h.update(np.asarray(prep.streams[name].tokens).tobytes())
        h.update(np.asarray(prep.streams[name].starts).tobytes())
    return h.hexdigest()[:12]


def _abstract_state(cfg: LumeConfig, prep: Prepared) -> Any:
    lm_cfg = cfg.target_config().lm_config(prep.tokenizer.vocab_size)
    return nnx.state(nnx.eval_shape(lambda: TransformerLM(lm_cfg, rngs=nnx.Rngs(0))))


def cached_models(
    cfg: LumeConfig, prep: Prepared, *, progress: bool = True
) -> tuple[Any, dict[str, list[Any]]]:
    """``(graphdef, {"target": [params per seed], "reference": [...]})``, trained once (seed by
    seed, one compiled program) and cached (msgpack) under :meth:`LumeConfig.cache_root`."""
    graphdef, train = make_train_target(cfg.target_config(), prep.tokenizer.vocab_size)
    root = cfg.cache_root() / "models"
    digest = _digest(cfg, prep)
    seeds = [cfg.seed + i for i in range(cfg.num_seeds)]
    out: dict[str, list[Any]] = {}
    train_jit = jax.jit(train)
    st = prep.streams
    for kind in ("target", "reference"):
        suffix = "" if kind == "target" else "_reference"
        out[kind] = []
        for s in seeds:
            path = root / f"{kind}-{digest}-seed{s}.msgpack"
            if not path.is_file():
                t0 = time.perf_counter()
                key = jax.random.fold_in(jax.random.key(s), kind == "reference")
                params, ls = train_jit(
                    key, st[f"pretrain{suffix}"], st[f"finetune{suffix}"], st["replay"]
                )
                pure = jax.tree.map(np.asarray, nnx.to_pure_dict(params))
                results.atomic_write_bytes(path, serialization.msgpack_serialize(pure))
                if progress:
                    print(
                        f"lume: trained {kind} seed {s} in {time.perf_counter() - t0:.0f}s "
                        f"(final loss {float(np.asarray(ls)[-50:].mean()):.3f})",
                        flush=True,
                    )
            state = _abstract_state(cfg, prep)
            pure = serialization.msgpack_restore(path.read_bytes())
            nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, pure))
            out[kind].append(state)
    return graphdef, out


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------
def _score_all(prep: Prepared, evals: Any) -> list[dict[str, Any]]:
    """Scores every leading index of a stacked :class:`EvalOutput`."""
    n = np.asarray(evals.mc_logprobs).shape[0]
    kw = dict(
        rows=prep.rows,
        tokenizer=prep.tokenizer,
        documents=prep.unlearn.eval.documents,
        num_members=prep.num_members,
        zlib_bytes=prep.zlib_bytes,
        mc_answers=prep.mc_answers,
    )
    return [score(jax.tree.map(lambda x, i=i: x[i], evals), **kw) for i in range(n)]


def _flat(s: dict[str, Any]) -> dict[str, Any]:
    """One score dict as a flat JSON row (no generations)."""
    row = {
        "final": s["final"],
        "task_aggregate": s["task_aggregate"],
        "mia_score": s["mia_score"],
        "utility": s["utility"],
        **{f"mia_auc_{k}": v for k, v in s["mia_auc"].items()},
    }
    for (split, task, metric), v in s["task_scores"].values.items():
        row[f"{split}/{task}/{metric}"] = v
    return row


def run(cfg: LumeConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    prep = prepare(cfg)
    graphdef, models = cached_models(cfg, prep, progress=progress)
    seeds = [cfg.seed + i for i in range(cfg.num_seeds)]
    stack = lambda ps: jax.tree.map(lambda *xs: jnp.stack(xs), *ps)  # noqa: E731
    targets = stack(models["target"])

    eval_fn = jax.jit(
        jax.vmap(
            lambda p: evaluate(graphdef, p, prep.unlearn.eval, max_new_tokens=prep.max_new_tokens)
        )
    )
    records: list[dict[str, Any]] = []
    ref_scores = _score_all(prep, eval_fn(stack(models["reference"])))
    for s, sc in zip(seeds, ref_scores):
        records.append(
            {"method": "retain-only reference", "lr": 0.0, "seed": s, "epoch": 0, **_flat(sc)}
        )

    # one compiled program per LoRA rank for every (algorithm, learning rate): they are traced
    keys = jnp.stack([jax.random.key(1000 + s) for s in seeds])
    programs: dict[int, Any] = {}
    for name, alg, lr, rank in cfg.runs():
        t1 = time.perf_counter()
        ucfg = cfg.unlearn_config(alg, lr, rank)
        if rank not in programs:
            unlearn = make_unlearn(ucfg, graphdef, max_new_tokens=prep.max_new_tokens)
            programs[rank] = jax.jit(jax.vmap(unlearn, in_axes=(0, 0, 0, None, None)))
        hparams = UnlearnHparams.from_config(ucfg)
        _, log = programs[rank](keys, targets, targets, prep.unlearn, hparams)
        norms = np.asarray(log.update_norms)
        t2 = time.perf_counter()
        for i, s in enumerate(seeds):
            per_epoch = _score_all(prep, jax.tree.map(lambda x, i=i: x[i], log.evals))
            for e, sc in enumerate(per_epoch):
                records.append(
                    {
                        "method": name,
                        "lr": lr,
                        "seed": s,
                        "epoch": e,
                        "min_update_norm": float(norms[i, : max(e, 1)].min()),
                        **_flat(sc),
                    }
                )
        if progress:
            print(
                f"lume: {name} lr={lr:g}: unlearning {t2 - t1:.0f}s, "
                f"scoring {time.perf_counter() - t2:.0f}s",
                flush=True,
            )
    text, summary = _report(cfg, records)
    _plot(cfg, out_dir, records)
    return results.write_outputs(
        out_dir,
        experiment="lume",
        config=config_to_dict(cfg),
        table=text,
        rows=records,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


def _ms(values: list[float]) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.3f} ± {results.ci95(v):.3f}"


_CELLS = [
    (sp, t, m)
    for sp in ("forget", "retain")
    for t in ("Task1", "Task2", "Task3")
    for m in ("regurgitation", "knowledge")
]


def _report(cfg: LumeConfig, records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    def group(method: str, epoch: int) -> list[dict[str, Any]]:
        return [r for r in records if r["method"] == method and r["epoch"] == epoch]

    target = group(cfg.runs()[0][0], 0)  # every run's epoch 0 is the target itself
    threshold = 0.75 * float(np.mean([r["utility"] for r in target]))
    entries = [
        ("target (before unlearning)", target),
        ("retain-only reference", group("retain-only reference", 0)),
    ]
    entries += [(name, group(name, cfg.epochs)) for name, *_ in cfg.runs()]

    head = [
        "method",
        "Final",
        "TaskAgg",
        "MIA score",
        "MIA AUC (loss)",
        "utility",
        f"utility ≥ {threshold:.3f}",
    ]
    lead = []
    for name, rs in entries:
        u = float(np.mean([r["utility"] for r in rs]))
        lead.append(
            [
                name,
                _ms([r["final"] for r in rs]),
                _ms([r["task_aggregate"] for r in rs]),
                _ms([r["mia_score"] for r in rs]),
                _ms([r["mia_auc_loss"] for r in rs]),
                _ms([r["utility"] for r in rs]),
                "yes" if u >= threshold else "no (excluded)",
            ]
        )
    per_task_head = [
        "method",
        *(f"{sp[0].upper()} {t[-1]} {'R' if m == 'regurgitation' else 'K'}" for sp, t, m in _CELLS),
    ]
    per_task = [
        [name, *(f"{np.mean([r[f'{sp}/{t}/{m}'] for r in rs]):.2f}" for sp, t, m in _CELLS)]
        for name, rs in entries
    ]
    mia_head = ["method", *(f"AUC {k}" for k in metrics.MIA_STATISTICS)]
    mia = [
        [name, *(_ms([r[f"mia_auc_{k}"] for r in rs]) for k in metrics.MIA_STATISTICS)]
        for name, rs in entries
    ]
    n = cfg.num_seeds
    text = "\n".join(
        [
            f"# lume ({LABEL}; {n} seeds, mean ± 95 % CI; after {cfg.epochs} epochs)",
            "",
            "Leaderboard (official format). Final = mean(TaskAgg, MIA score, utility); TaskAgg = "
            "harmonic mean of the 12 per-task numbers with forget inverted; MIA score = "
            "1 − 2|AUC − 0.5| (loss attack, forget documents vs non-members); utility = "
            "4-option multiple-choice accuracy on base-text facts (the MMLU stand-in), valid if "
            "≥ 75 % of the target's.",
            "",
            results.markdown_table(head, lead),
            "",
            "Per task (mean over seeds; F/R = forget/retain, R = regurgitation ROUGE-L recall, "
            "K = knowledge exact match; forget numbers NOT inverted: lower is better).",
            "",
            results.markdown_table(per_task_head, per_task),
            "",
            "MIA AUC by attack statistic (0.5 = members indistinguishable from non-members).",
            "",
            results.markdown_table(mia_head, mia),
            "",
        ]
    )
    summary = {
        "leaderboard": {
            name: {
                k: float(np.mean([r[k] for r in rs]))
                for k in ("final", "task_aggregate", "mia_score", "mia_auc_loss", "utility")
            }
            for name, rs in entries
        },
        "utility_threshold": threshold,
    }
    return text, summary


def _plot(cfg: LumeConfig, out_dir: Path, records: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    epochs = np.arange(cfg.epochs + 1)
    for name, *_ in cfg.runs():

        def curve(fn: Any, name: str = name) -> np.ndarray:
            return np.array(
                [
                    np.mean([fn(r) for r in records if r["method"] == name and r["epoch"] == e])
                    for e in epochs
                ]
            )

        forget = curve(lambda r: np.mean([r[f"forget/{t}/{m}"] for _, t, m in _CELLS[:6]]))
        retain = curve(lambda r: np.mean([r[f"retain/{t}/{m}"] for _, t, m in _CELLS[6:]]))
        (line,) = axes[0].plot(forget, retain, "o-", label=name)
        axes[0].annotate("0", (forget[0], retain[0]), fontsize=7)
        color = line.get_color()
        axes[1].plot(epochs, curve(lambda r: r["utility"]), "o-", color=color, label=name)
        axes[2].plot(epochs, curve(lambda r: r["mia_auc_loss"]), "o-", color=color, label=name)
    ref = [r for r in records if r["method"] == "retain-only reference"]
    rf = np.mean([np.mean([r[f"forget/{t}/{m}"] for _, t, m in _CELLS[:6]]) for r in ref])
    rr = np.mean([np.mean([r[f"retain/{t}/{m}"] for _, t, m in _CELLS[6:]]) for r in ref])
    axes[0].plot([rf], [rr], "k*", markersize=14, label="retain-only reference")
    axes[0].set(
        xlabel="forget score (mean of 6; lower = more forgotten)",
        ylabel="retain score (mean of 6)",
        title="forget vs retain over epochs",
    )
    axes[1].axhline(np.mean([r["utility"] for r in ref]), color="k", ls=":", label="reference")
    axes[1].set(xlabel="epoch", ylabel="utility (MC accuracy)", title="utility")
    axes[2].axhline(0.5, color="k", ls=":")
    axes[2].set(xlabel="epoch", ylabel="MIA AUC (loss)", title="MIA AUC (0.5 ideal)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"lume: {cfg.num_seeds} seeds ({LABEL})")
    fig.tight_layout()
    results.save_figure(fig, out_dir / "lume.png")


registry.register(
    registry.Experiment(
        name="lume",
        description=(
            "GA, GD, KL, NPO, NPO+GD, SimNPO and LoRA-GD unlearning of a toy LM that memorised LUME-style "
            "stories and biographies, scored with the official SemEval-2025 Task 4 metrics."
        ),
        config_type=LumeConfig,
        presets=PRESETS,
        run=run,
    )
)

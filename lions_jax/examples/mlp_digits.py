"""``mlp-digits``: an NNX MLP on scikit-learn's digits, many seeds in one ``jax.jit(jax.vmap(train))``.

This is the reference experiment of the runner: a pure ``make_train(cfg) -> train(key)`` whose
seeds vmap, a host ``run(cfg, out_dir)`` that executes the same chunks with a progress bar,
checkpoints every ``checkpoint_every`` steps and resumes after a kill, and a results table that
compares against what a user would otherwise reach for (scikit-learn's ``LogisticRegression`` and
``MLPClassifier`` on the same split).

Example:
    >>> import jax
    >>> cfg = Config(num_steps=20, log_every=10, checkpoint_every=10, hidden=(16,), batch_size=16)
    >>> train = jax.jit(jax.vmap(make_train(cfg)))
    >>> state, metrics = train(jax.random.split(jax.random.key(0), 3))
    >>> metrics["test_accuracy"].shape  # (seeds, chunks)
    (3, 2)
"""

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from lions_jax._src import registry, results, runner
from lions_jax._src.config import config_to_dict
from lions_jax._src.sharding import constrain_batch
from lions_jax._src.train_state import TrainState
from lions_jax.data import ArrayDataset, load_digits
from lions_jax.models import MLP

__all__ = ["PRESETS", "Config", "make_chunk", "make_init", "make_train", "make_train_step", "run"]

NAME = "mlp-digits"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Configuration of ``mlp-digits``.

    Attributes:
      seed: base seed; seed ``i`` of a run uses ``jax.random.split(key(seed), num_seeds)[i]``.
      num_seeds: independent runs, vmapped.
      hidden: hidden-layer widths.
      activation: hidden non-linearity.
      learning_rate: AdamW step size.
      weight_decay: AdamW decoupled weight decay.
      batch_size: minibatch size (sampled with replacement each step).
      num_steps: optimizer steps.
      log_every: steps per jitted chunk; metrics are logged once per chunk.
      checkpoint_every: steps between checkpoints (a multiple of ``log_every``).
      test_fraction: held-out fraction of the 1,797 digits (stratified split).
      data_seed: seed of the train/test split (fixed across the run's seeds).
      baselines: also fit the scikit-learn baselines (on the host, after training).
    """

    seed: int = 0
    num_seeds: int = 5
    hidden: tuple[int, ...] = (128, 128)
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    num_steps: int = 2000
    log_every: int = 100
    checkpoint_every: int = 500
    test_fraction: float = 0.25
    data_seed: int = 0
    baselines: bool = True

    def __post_init__(self) -> None:
        positive = ("num_seeds", "batch_size", "num_steps", "log_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_steps % self.log_every:
            raise ValueError(
                f"num_steps ({self.num_steps}) must be a multiple of log_every ({self.log_every})"
            )
        if self.checkpoint_every % self.log_every:
            raise ValueError(
                f"checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"log_every ({self.log_every})"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay >= 0")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")

    @property
    def num_chunks(self) -> int:
        return self.num_steps // self.log_every


PRESETS = {
    "quick": Config(
        num_seeds=5, hidden=(64, 64), num_steps=1500, log_every=100, checkpoint_every=500
    ),
    "paper": Config(
        num_seeds=20, hidden=(256, 256), num_steps=10_000, log_every=500, checkpoint_every=2_000
    ),
}

_ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu, "tanh": jnp.tanh}


def load_data(cfg: Config) -> ArrayDataset:
    """The standardized, stratified digits split used by every seed of a run."""
    return load_digits(test_fraction=cfg.test_fraction, seed=cfg.data_seed)


def _model(cfg: Config, data: ArrayDataset, key: jax.Array) -> MLP:
    return MLP(
        data.num_features,
        cfg.hidden,
        data.num_classes,
        activation=_ACTIVATIONS[cfg.activation],
        rngs=nnx.Rngs(key),
    )


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    return optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)


def make_init(cfg: Config, data: ArrayDataset | None = None):
    """``init(key) -> TrainState`` for one seed, and the model's ``graphdef``."""
    data = load_data(cfg) if data is None else data
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: _model(cfg, data, jax.random.key(0))))
    tx = make_optimizer(cfg)

    def init(key: jax.Array) -> TrainState:
        init_key, run_key = jax.random.split(key)
        params = nnx.state(_model(cfg, data, init_key))
        return TrainState(
            params=params, opt_state=tx.init(params), key=run_key, step=jnp.zeros((), jnp.int32)
        )

    return init, graphdef


def make_train_step(cfg: Config, graphdef: nnx.GraphDef, *, mesh: Mesh | None = None):
    """``step(state, x, y) -> (state, loss)``: one AdamW step on a batch (data-parallel if ``mesh``).

    With a ``mesh``, the batch is split across its ``data`` axis and parameters stay replicated:
    the gradient's batch sum becomes a cross-device reduction inserted by the compiler.
    """
    tx = make_optimizer(cfg)

    def loss_fn(params: nnx.State, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(state: TrainState, x: jax.Array, y: jax.Array) -> tuple[TrainState, jax.Array]:
        x, y = constrain_batch((x, y), mesh)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x, y)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(params=params, opt_state=opt_state, step=state.step + 1), loss

    return step


def make_chunk(
    cfg: Config, graphdef: nnx.GraphDef, data: ArrayDataset, *, mesh: Mesh | None = None
):
    """``chunk(state) -> (state, metrics)``: ``cfg.log_every`` steps, then a test-set evaluation."""
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    step = make_train_step(cfg, graphdef, mesh=mesh)
    n = x_train.shape[0]

    def body(state: TrainState, _: None) -> tuple[TrainState, jax.Array]:
        batch_key = jax.random.fold_in(state.key, state.step)
        idx = jax.random.randint(batch_key, (cfg.batch_size,), 0, n)
        return step(state, x_train[idx], y_train[idx])

    def chunk(state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        state, losses = jax.lax.scan(body, state, None, length=cfg.log_every)
        logits = nnx.merge(graphdef, state.params)(x_test)
        test_loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_test).mean()
        accuracy = jnp.mean(jnp.argmax(logits, -1) == y_test)
        return state, {
            "train_loss": losses.mean(),
            "test_loss": test_loss,
            "test_accuracy": accuracy,
        }

    return chunk


def make_train(cfg: Config, *, mesh: Mesh | None = None):
    """The whole run as a pure function: ``train(key) -> (final TrainState, metrics)``.

    ``metrics[name]`` has one entry per chunk of ``cfg.log_every`` steps. Seeds vmap:
    ``jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(key, n))``.
    """
    data = load_data(cfg)
    init, graphdef = make_init(cfg, data)
    chunk = make_chunk(cfg, graphdef, data, mesh=mesh)
    return runner.scan_chunks(init, chunk, cfg.num_chunks)


def _sklearn_baselines(cfg: Config, data: ArrayDataset) -> dict[str, dict[str, Any]]:
    """What a user would pick instead: scikit-learn on the same split, same seeds count.

    ``MLPClassifier`` gets the same widths, Adam step size, batch size and number of passes over
    the data; differences: its ``alpha`` is a coupled L2 penalty (AdamW's decay is decoupled), it
    may stop early on a loss plateau, and it has no GELU (relu is used instead).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    logreg = LogisticRegression(max_iter=2000).fit(data.x_train, data.y_train)
    epochs = max(1, round(cfg.num_steps * cfg.batch_size / len(data.x_train)))
    accs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for s in range(cfg.num_seeds):
            clf = MLPClassifier(
                hidden_layer_sizes=cfg.hidden,
                activation=cfg.activation if cfg.activation != "gelu" else "relu",
                alpha=cfg.weight_decay,
                batch_size=cfg.batch_size,
                learning_rate_init=cfg.learning_rate,
                max_iter=epochs,
                random_state=cfg.seed * 1000 + s,
            )
            accs.append(clf.fit(data.x_train, data.y_train).score(data.x_test, data.y_test))
    return {
        "sklearn LogisticRegression": results.summarize([logreg.score(data.x_test, data.y_test)]),
        f"sklearn MLPClassifier ({epochs} epochs)": results.summarize(accs),
    }


def run(cfg: Config, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Runs ``cfg.num_seeds`` seeds (vmapped), with checkpoints; writes results, table and plots."""
    out_dir = Path(out_dir)
    data = load_data(cfg)
    init, graphdef = make_init(cfg, data)
    chunk = make_chunk(cfg, graphdef, data)
    t0 = time.perf_counter()
    _, rows = runner.run_chunked(
        init_fn=init,
        chunk_fn=chunk,
        keys=runner.seed_keys(cfg.seed, cfg.num_seeds),
        num_chunks=cfg.num_chunks,
        steps_per_chunk=cfg.log_every,
        out_dir=out_dir,
        checkpoint_every=cfg.checkpoint_every // cfg.log_every,
        desc=NAME,
        progress=progress,
    )
    wall = time.perf_counter() - t0
    m = results.stack_metrics(rows)
    acc = results.summarize(m["test_accuracy"][-1])
    baselines = _sklearn_baselines(cfg, data) if cfg.baselines else {}
    out = {
        "experiment": NAME,
        "config": config_to_dict(cfg),
        "test_accuracy": acc,
        "test_loss": results.summarize(m["test_loss"][-1]),
        "final_train_loss": results.summarize(m["train_loss"][-1]),
        "baselines_test_accuracy": baselines,
        "wall_time_s": wall,
        "environment": results.environment_info(),
    }
    n = cfg.num_seeds
    rows_md = [
        [
            f"lions_jax MLP {cfg.hidden} (AdamW, {cfg.num_steps} steps)",
            results.format_mean_std(acc),
            f"{acc['min']:.4f}",
            f"{acc['max']:.4f}",
            n,
        ]
    ]
    for name, s in baselines.items():
        rows_md.append(
            [
                name,
                results.format_mean_std(s),
                f"{s['min']:.4f}",
                f"{s['max']:.4f}",
                len(s["per_seed"]),
            ]
        )
    table = results.markdown_table(
        ["model", "test accuracy (mean ± std)", "min", "max", "seeds"], rows_md
    )
    table += (
        f"\nDigits: {len(data.x_train)} train / {len(data.x_test)} test images, "
        f"stratified split (data_seed={cfg.data_seed}). Wall time {wall:.1f} s for all "
        f"{n} seeds (vmapped, incl. compilation and checkpoints).\n"
    )
    results.atomic_write_text(out_dir / results.TABLE_FILE, table)
    results.plot_curves(
        out_dir / "test_accuracy.png",
        m["step"],
        {"test accuracy": m["test_accuracy"]},
        xlabel="step",
        ylabel="accuracy",
        title=f"{NAME}: test accuracy",
    )
    results.plot_curves(
        out_dir / "train_loss.png",
        m["step"],
        {"train loss (chunk mean)": m["train_loss"], "test loss": m["test_loss"]},
        xlabel="step",
        ylabel="cross-entropy",
        title=f"{NAME}: loss",
        logy=True,
    )
    results.atomic_write_json(out_dir / results.RESULTS_FILE, out)
    return out


EXPERIMENT = registry.register(
    registry.Experiment(
        name=NAME,
        description="NNX MLP on scikit-learn digits: 5 vmapped seeds, checkpointed, vs scikit-learn.",
        config_type=Config,
        presets=PRESETS,
        run=run,
    )
)

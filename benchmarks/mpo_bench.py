"""MPO: policy updates per second on dense and structured Markov games; MPO loss step on a small LM.

Rows (``case``):

* ``dense``: exact MPO / OMPO self-play updates on a dense tabular game
  (:class:`lions_jax.mpo.MarkovGame`, ``H = 3``, ``A = 10``, S·A from 10² to 4·10³; the game is
  :func:`~lions_jax.mpo.structured.to_dense` of a random structured game, whose dense update
  costs the same as any other dense game's). The measured program is one ``jax.jit`` of a
  ``lax.scan`` of ``updates`` updates (occupancy, marginal Q̄ — twice for OMPO, against the
  current and the previous occupancy — and the multiplicative-weights step in log space, as in
  :func:`lions_jax.mpo.make_train`); ``median_ms`` is one whole run and ``updates_per_s`` =
  updates / run time. Baseline: the same updates in float32 NumPy (``numpy_dense_*`` below:
  matmuls of the reshaped dense arrays, a Python loop over steps and updates), timed over
  ``baseline_updates`` updates and scaled to ``updates`` (its cost per update does not depend on
  the iterate); ``speedup_vs_baseline`` = NumPy ms / JAX ms. ``max_abs_diff_vs_numpy``: max
  |log π_jax − log π_numpy| after ``baseline_updates`` updates of both.
* ``structured``: the same updates on a :class:`~lions_jax.mpo.structured.StructuredGame`
  (fan-out ``F = 4`` transitions, rank ``k = 8`` skew preference, ``H = 3``, ``A = 10``) for
  S·A = 10³ … 10⁶, O(H·S·A·(F + k)) per update. Baseline: the structured update in NumPy
  (``np.bincount`` for the forward scatter-add, fancy indexing for the backward gather), as in
  the ``dense`` rows; where the dense game fits (S·A <= 4·10³, or a size of the dense rows) the
  row also reports the dense JAX program on ``to_dense`` of the same game
  (``dense_jax_median_ms``, ``speedup_vs_dense_jax``): the alternative a user of
  :mod:`lions_jax.mpo.tabular` has.
* ``lm_loss``: one jitted Adam step (optax) of a :class:`lions_jax.models.TransformerLM` on the
  MPO loss (:func:`lions_jax.mpo.mpo_loss`, vmapped over a batch of answers whose log-probs are
  summed over the answer tokens — the second half of each sequence — with random targets
  ``q_hat``, steps and ``logp_old``) against the same step on plain SFT cross-entropy over the
  answer tokens (the baseline), the two timed alternately. ``speedup_vs_baseline`` = SFT ms /
  MPO ms and ``mpo_over_sft`` = MPO ms / SFT ms (≈ 1: the loss is a few scalar ops per answer).

Sizes: ``--size full`` (the GPU default) is the issue's LM: d_model 256, 4 layers, 4 heads,
vocab 2048, batch 64 × length 128, and dense S·A up to 10⁴; ``--size small`` (the CPU default)
d_model 128, 2 layers, batch 16 × 64, vocab 1024, dense S·A up to 4·10³; ``--tiny`` (smoke test)
one small size of each.

    python benchmarks/mpo_bench.py --device cpu [--tiny] [--size small|full]
    python benchmarks/mpo_bench.py --device gpu
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lions_jax.models import LMConfig, TransformerLM, init_model, token_logprobs
from lions_jax.mpo import marginal_q, mpo_loss, mpo_update, occupancy, ompo_policy_update
from lions_jax.mpo.structured import (
    random_structured_game,
    structured_marginal_q,
    structured_occupancy,
    to_dense,
)

BENCH = "mpo"
H, A, FAN_OUT, RANK = 3, 10, 4, 8
BETA = 1.0
DENSE_MAX_SA = 4_000  # the dense comparison in the structured rows

LM_SIZES = {
    "tiny": dict(vocab=64, d_model=32, layers=1, heads=2, batch=4, length=16),
    "small": dict(vocab=1024, d_model=128, layers=2, heads=4, batch=16, length=64),
    "full": dict(vocab=2048, d_model=256, layers=4, heads=4, batch=64, length=128),
}


# ---------------------------------------------------------------------------------- JAX programs
def make_run(method: str, occ, mq, n: int):
    """``run(game, log_pi0) -> log_pi`` after ``n`` MPO or OMPO self-play updates (one scan)."""

    def run(game, log_pi0):
        def body(carry, _):
            log_pi, d_prev = carry
            pi = jnp.exp(log_pi)
            d = occ(game, pi)
            if method == "mpo":
                new = mpo_update(log_pi, mq(game, pi, d), BETA)
            else:
                new = ompo_policy_update(log_pi, mq(game, pi, d), mq(game, pi, d_prev), BETA)
            return (new, d), None

        d0 = occ(game, jnp.exp(log_pi0))
        (log_pi, _), _ = jax.lax.scan(body, (log_pi0, d0), None, length=n)
        return log_pi

    return run


# -------------------------------------------------------------------------- NumPy baselines
def _np_normalise(z: np.ndarray) -> np.ndarray:
    m = z.max(-1, keepdims=True)
    return z - (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))


def _np_backward(g: np.ndarray, pi: np.ndarray, expect) -> np.ndarray:
    """Q̄ by the backward recursion; ``expect(h, v_next)`` = E[v_next(s') | s, a] at step h."""
    q = np.empty_like(g)
    v = None
    for h in range(g.shape[0] - 1, -1, -1):
        q[h] = g[h] if v is None else g[h] + expect(h, v)
        v = (pi[h] * q[h]).sum(-1)
    return q


def numpy_dense_occupancy(f: np.ndarray, pi: np.ndarray) -> np.ndarray:
    h, s, a = pi.shape
    d = np.zeros_like(pi)
    d[0, 0] = pi[0, 0]
    for t in range(h - 1):
        states = d[t].reshape(-1) @ f[t].reshape(s * a, s)
        d[t + 1] = states[:, None] * pi[t + 1]
    return d


def numpy_dense_marginal_q(f, r, pi, d) -> np.ndarray:
    h, s, a = pi.shape
    g = np.matmul(r.reshape(h, s * a, s * a), d.reshape(h, s * a, 1)).reshape(h, s, a)
    return _np_backward(g, pi, lambda t, v: f[t] @ v)


def numpy_structured_occupancy(ns, p, pi) -> np.ndarray:
    h, s, _ = pi.shape
    d = np.zeros_like(pi)
    d[0, 0] = pi[0, 0]
    for t in range(h - 1):
        w = (d[t][..., None] * p[t]).reshape(-1)
        states = np.bincount(ns[t].reshape(-1), weights=w, minlength=s).astype(pi.dtype)
        d[t + 1] = states[:, None] * pi[t + 1]
    return d


def numpy_structured_marginal_q(ns, p, phi, skew, pi, d) -> np.ndarray:
    h, s, a, k = phi.shape
    g = np.empty_like(pi)
    for t in range(h):
        flat = phi[t].reshape(s * a, k)
        m = flat.T @ d[t].reshape(-1)
        g[t] = (0.5 * d[t].sum() + flat @ (skew[t] @ m)).reshape(s, a)
    return _np_backward(g, pi, lambda t, v: (p[t] * v[ns[t]]).sum(-1))


def numpy_run(method: str, occ, mq, log_pi0: np.ndarray, n: int) -> np.ndarray:
    """The NumPy twin of :func:`make_run` (``occ(pi)``, ``mq(pi, d)`` close over the game)."""
    log_pi = log_pi0.copy()
    d_prev = occ(np.exp(log_pi))
    for _ in range(n):
        pi = np.exp(log_pi)
        d = occ(pi)
        q = mq(pi, d)
        x = q if method == "mpo" else 2 * q - mq(pi, d_prev)
        log_pi = _np_normalise(log_pi + BETA * x)
        d_prev = d
    return log_pi


def _time_numpy(fn, reps: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), out


# ----------------------------------------------------------------------------------- games
def _updates(cost_per_update: float, budget: float = 2e8) -> int:
    """Updates per run: enough work to time (``budget`` flop-ish units), between 5 and 500."""
    return int(np.clip(budget / cost_per_update, 5, 500))


def _bench_games(args, case: str, sa_grid: list[int], dense_cache: dict) -> None:
    """Rows for ``case`` (dense / structured); ``dense_cache[(method, S·A)]`` holds the dense JAX
    milliseconds per update (filled by the dense rows, reused by the structured ones)."""
    for sa in sa_grid:
        s = sa // A
        game = jax.block_until_ready(
            random_structured_game(jax.random.key(0), s, A, H, fan_out=FAN_OUT, rank=RANK)
        )
        log_pi0 = jnp.full((H, s, A), -np.log(A), jnp.float32)
        log_pi0_np = np.asarray(log_pi0)
        if case == "dense":
            g = jax.block_until_ready(to_dense(game))
            f_np, r_np = np.asarray(g.transitions), np.asarray(g.reward)
            occ, mq = occupancy, marginal_q
            cost = H * sa * sa

            def np_occ(pi, f_np=f_np):
                return numpy_dense_occupancy(f_np, pi)

            def np_mq(pi, d, f_np=f_np, r_np=r_np):
                return numpy_dense_marginal_q(f_np, r_np, pi, d)

            shapes = {"H": H, "S": s, "A": A, "SA": sa}
        else:
            g = game
            ns, p, phi, skew = (np.asarray(x) for x in game)
            occ, mq = structured_occupancy, structured_marginal_q
            cost = H * sa * (FAN_OUT + RANK) * 4

            def np_occ(pi, ns=ns, p=p):
                return numpy_structured_occupancy(ns, p, pi)

            def np_mq(pi, d, ns=ns, p=p, phi=phi, skew=skew):
                return numpy_structured_marginal_q(ns, p, phi, skew, pi, d)

            shapes = {"H": H, "S": s, "A": A, "SA": sa, "fan_out": FAN_OUT, "rank": RANK}
        n = 5 if args.tiny else _updates(cost)
        n_np = min(n, 5 if args.tiny else max(5, n // 10))
        for method in ("mpo", "ompo"):
            run = make_run(method, occ, mq, n)
            compiled, compile_s, mem = _common.compile_fn(run, g, log_pi0)
            ms = _common.time_compiled(compiled, g, log_pi0, iters=args.iters)
            np_ms, np_out = _time_numpy(
                lambda method=method, x0=log_pi0_np, k=n_np: numpy_run(
                    method, np_occ, np_mq, x0, k
                ),
                reps=1 if args.tiny or sa >= 100_000 else 3,
            )
            short = compiled if n_np == n else jax.jit(make_run(method, occ, mq, n_np))
            jax_short = short(g, log_pi0)
            baseline_ms = np_ms / n_np * n
            row = {
                "case": case,
                "method": method,
                "dtype": "float32",
                "shapes": shapes,
                "updates": n,
                "median_ms": ms,
                "updates_per_s": n / (ms / 1e3),
                "compile_s": compile_s,
                **mem,
                "baseline": f"NumPy float32 {case} update (host), same updates",
                "baseline_updates": n_np,
                "baseline_median_ms": baseline_ms,
                "baseline_updates_per_s": n / (baseline_ms / 1e3),
                "speedup_vs_baseline": baseline_ms / ms,
                "max_abs_diff_vs_numpy": float(np.max(np.abs(np.asarray(jax_short) - np_out))),
            }
            if case == "dense":
                dense_cache[(method, sa)] = ms / n
            elif sa <= DENSE_MAX_SA or (method, sa) in dense_cache:
                dense_ms = dense_cache.get((method, sa))
                if dense_ms is None:
                    dg = to_dense(game)
                    c, _, _ = _common.compile_fn(
                        make_run(method, occupancy, marginal_q, n), dg, log_pi0
                    )
                    dense_ms = _common.time_compiled(c, dg, log_pi0, iters=args.iters) / n
                row["dense_jax_median_ms"] = dense_ms * n
                row["speedup_vs_dense_jax"] = dense_ms * n / ms
            _common.emit(args, BENCH, row)


# --------------------------------------------------------------------------------------- LM
def bench_lm(args, size: str) -> None:
    c = LM_SIZES[size]
    cfg = LMConfig(
        vocab_size=c["vocab"],
        d_model=c["d_model"],
        num_layers=c["layers"],
        num_heads=c["heads"],
        max_len=c["length"],
    )
    graphdef, params = init_model(lambda rngs: TransformerLM(cfg, rngs=rngs), jax.random.key(0))
    tx = optax.adam(1e-4)
    opt_state = tx.init(params)
    b, t = c["batch"], c["length"]
    rng = np.random.default_rng(0)
    answer = np.arange(t)[None, :] >= t // 2  # prompt: first half; answer: second half
    batch = {
        "tokens": jnp.asarray(rng.integers(0, c["vocab"], (b, t)), jnp.int32),
        "mask": jnp.asarray(np.broadcast_to(answer[:, 1:], (b, t - 1)), jnp.float32),
        "logp_old": jnp.asarray(rng.normal(-3.0 * t, 1.0, b), jnp.float32),
        "q_hat": jnp.asarray(rng.uniform(0, H, b), jnp.float32),
        "step": jnp.asarray(rng.integers(0, H, b), jnp.int32),
    }

    def answer_logprobs(params, batch):
        logits = nnx.merge(graphdef, params)(batch["tokens"])
        lp = token_logprobs(logits[:, :-1], batch["tokens"][:, 1:])
        return lp * batch["mask"]

    def mpo_objective(params, batch):
        logp_new = answer_logprobs(params, batch).sum(-1)
        losses = jax.vmap(mpo_loss, in_axes=(0, 0, 0, 0, None, None))(
            logp_new, batch["logp_old"], batch["q_hat"], batch["step"], H, 0.1
        )
        return losses.mean()

    def sft_objective(params, batch):
        return -answer_logprobs(params, batch).sum() / batch["mask"].sum()

    def make_step(objective):
        def step(params, opt_state, batch):
            loss, grads = jax.value_and_grad(objective)(params, batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        return step

    compiled = {}
    for name, objective in (("mpo", mpo_objective), ("sft", sft_objective)):
        compiled[name] = _common.compile_fn(make_step(objective), params, opt_state, batch)
    # the two steps are timed alternately (same machine load for both), median of each
    samples: dict[str, list[float]] = {name: [] for name in compiled}
    for i in range(args.iters + 2):  # two warm-up rounds
        for name, (step, _, _) in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(step(params, opt_state, batch))
            if i >= 2:
                samples[name].append((time.perf_counter() - t0) * 1e3)
    mpo_ms, sft_ms = (float(np.median(samples[name])) for name in ("mpo", "sft"))
    _, compile_s, mem = compiled["mpo"]
    num_params = sum(x.size for x in jax.tree.leaves(params))
    _common.emit(
        args,
        BENCH,
        {
            "case": "lm_loss",
            "method": "mpo_loss",
            "size": size,
            "dtype": "float32",
            "shapes": {
                "batch": b,
                "length": t,
                "answer_tokens": t - t // 2,
                "vocab": c["vocab"],
                "d_model": c["d_model"],
                "layers": c["layers"],
                "heads": c["heads"],
                "params": int(num_params),
            },
            "median_ms": mpo_ms,
            "compile_s": compile_s,
            **mem,
            "baseline": "the same Adam step on SFT cross-entropy over the answer tokens",
            "baseline_median_ms": sft_ms,
            "baseline_compile_s": compiled["sft"][1],
            "speedup_vs_baseline": sft_ms / mpo_ms,
            "mpo_over_sft": mpo_ms / sft_ms,
        },
    )


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--size", choices=sorted(LM_SIZES), default=None)
    pre_args, rest = pre.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        size = pre_args.size or "tiny"
        dense_grid, structured_grid = [100], [100]
    else:
        size = pre_args.size or ("small" if args.device == "cpu" else "full")
        dense_grid = [100, 400, 1_000, 4_000] + ([10_000] if size == "full" else [])
        structured_grid = [1_000, 10_000, 100_000, 1_000_000]
    dense_cache: dict = {}
    _bench_games(args, "dense", dense_grid, dense_cache)
    _bench_games(args, "structured", structured_grid, dense_cache)
    bench_lm(args, size)


if __name__ == "__main__":
    main()

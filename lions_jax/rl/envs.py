"""Environments: brax's, a tiny pure-JAX test env, and the episode wrapper our agents step.

Everything here is unbatched; batch with ``jax.vmap`` (or :class:`BatchedEnv`, whose ``reset``
takes one key *or* a batch of keys — brax's ``VmapWrapper.reset`` takes only one).

* :func:`make_env` returns a bare environment with brax's interface (``reset(key) -> state``,
  ``step(state, action) -> state``, ``observation_size``, ``action_size``; ``state.obs``,
  ``state.reward``, ``state.done``): a :mod:`brax.envs` environment (backend ``generalized`` by
  default, ``mjx``/``positional``/``spring`` selectable) or one of the pure-JAX :data:`TEST_ENVS`.
* :class:`EpisodeEnv` adds what training needs: an episode-length limit that *truncates*
  (``truncation = 1``, distinct from a terminal ``done`` of the task), action repeat, automatic
  reset with a fresh random initial state (``reset_mode="fresh"``, the default) or brax's reuse
  of the episode's first state (``"initial"``), the true next observation of every transition
  (``next_obs``, taken before the reset), per-episode return/length, and dtype canonicalisation.
* :func:`canonicalize` casts every leaf of an environment state to a fixed, non-weak dtype. brax
  states change dtype after their first step (weak-typed Python scalars in ``info``/``metrics``),
  so a jitted rollout fed its own output recompiles once; canonicalised states do not.

brax is imported lazily: ``lions_jax.rl`` works without it (install the ``rl`` extra for brax).
"""

import contextlib
import io
import warnings
from typing import Any, Literal, Protocol

import jax
import jax.numpy as jnp
from flax import struct
from jax.typing import ArrayLike

__all__ = [
    "BRAX_BACKENDS",
    "TEST_ENVS",
    "BatchedEnv",
    "Env",
    "EnvState",
    "EpisodeEnv",
    "EpisodeState",
    "PointMass",
    "canonicalize",
    "make_env",
]

BRAX_BACKENDS = ("generalized", "mjx", "positional", "spring")


class Env(Protocol):
    """The brax environment interface (unbatched) that everything in :mod:`lions_jax.rl` uses."""

    def reset(self, key: ArrayLike) -> Any: ...

    def step(self, state: Any, action: ArrayLike) -> Any: ...

    @property
    def observation_size(self) -> int: ...

    @property
    def action_size(self) -> int: ...


@struct.dataclass
class EnvState:
    """State of the pure-JAX test envs; same field names as ``brax.envs.State``."""

    pipeline_state: Any
    obs: Any
    reward: Any
    done: Any
    metrics: Any = struct.field(default_factory=dict)
    info: Any = struct.field(default_factory=dict)


class PointMass:
    r"""A point in :math:`[-2, 2]^d` pushed towards the origin: solvable by SAC in seconds on CPU.

    ``x_0 ~ U(-1, 1)^d``; ``x' = clip(x + step_size * clip(a, -1, 1), -2, 2)``; reward
    :math:`1 - \lVert x' \rVert^2 / d`; the episode *terminates* (``done = 1``) when any
    :math:`|x'_i| > 1.5`, so falling off costs the remaining positive rewards. The observation is
    ``x``. Like brax's ``fast`` env it counts how often ``reset``/``step`` are *traced*
    (``reset_count``/``step_count``), which tests use to check that jitted loops trace once.

    Example:
        >>> import jax
        >>> env = PointMass(dim=2)
        >>> s = env.reset(jax.random.key(0))
        >>> s = env.step(s, jax.numpy.ones(2))
        >>> s.obs.shape, s.reward.dtype
        ((2,), dtype('float32'))
    """

    def __init__(self, dim: int = 1, *, step_size: float = 0.1, bound: float = 1.5):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if not 0 < step_size:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if not 1.0 < bound < 2.0:
            raise ValueError(f"bound must lie in (1, 2), got {bound}")
        self.dim, self.step_size, self.bound = int(dim), float(step_size), float(bound)
        self.reset_count = 0
        self.step_count = 0

    @property
    def observation_size(self) -> int:
        return self.dim

    @property
    def action_size(self) -> int:
        return self.dim

    def reset(self, key: Any) -> EnvState:
        self.reset_count += 1
        x = jax.random.uniform(key, (self.dim,), jnp.float32, -1.0, 1.0)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(pipeline_state=x, obs=x, reward=zero, done=zero)

    def step(self, state: Any, action: Any) -> EnvState:
        self.step_count += 1
        a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        x = jnp.clip(state.pipeline_state + self.step_size * a, -2.0, 2.0)
        reward = 1.0 - jnp.sum(x**2) / self.dim
        done = jnp.any(jnp.abs(x) > self.bound).astype(jnp.float32)
        return state.replace(pipeline_state=x, obs=x, reward=reward, done=done)

    def optimal_action(self, obs: ArrayLike) -> jax.Array:
        """The greedy controller (drive straight to the origin): a reference for tests."""
        return jnp.clip(-obs / self.step_size, -1.0, 1.0)


TEST_ENVS = {"point_mass": PointMass}


def make_env(name: str, *, backend: str = "generalized", **kwargs: Any) -> Any:
    """A bare, unbatched environment by name.

    Args:
      name: a brax environment (``inverted_pendulum``, ``hopper``, ``halfcheetah``, ...) or one of
        :data:`TEST_ENVS` (``point_mass``).
      backend: brax physics backend, one of :data:`BRAX_BACKENDS` (ignored for test envs).
      **kwargs: passed to the environment's constructor.
    """
    if name in TEST_ENVS:
        return TEST_ENVS[name](**kwargs)
    if backend not in BRAX_BACKENDS:
        raise ValueError(f"backend must be one of {BRAX_BACKENDS}, got {backend!r}")
    try:
        # mujoco.mjx prints "Failed to import warp" when the optional NVIDIA Warp is absent.
        with contextlib.redirect_stdout(io.StringIO()):
            from brax import envs as brax_envs
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise ValueError(
            f"env {name!r} needs brax: pip install 'lions_jax[rl]' (test envs: {sorted(TEST_ENVS)})"
        ) from e
    known = sorted(brax_envs._envs)
    if name not in known:
        raise ValueError(f"env must be one of {known + sorted(TEST_ENVS)}, got {name!r}")
    with warnings.catch_warnings():
        # brax >= 0.13 warns on every construction that its envs are no longer developed.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return brax_envs.get_environment(name, backend=backend, **kwargs)


def canonicalize(tree: Any) -> Any:
    """Casts every array leaf to its canonical, non-weak dtype (floats to the default float).

    Typed PRNG keys and non-array leaves pass through unchanged.
    """

    def cast(x: Any) -> Any:
        if not (hasattr(x, "dtype") or isinstance(x, float | int | bool)):
            return x
        if jax.dtypes.issubdtype(jnp.result_type(x), jax.dtypes.prng_key):
            return x
        dtype = jnp.result_type(x)
        if jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        elif jnp.issubdtype(dtype, jnp.integer) and dtype != jnp.uint32:
            dtype = jnp.result_type(int)
        return jax.lax.convert_element_type(x, dtype)

    return jax.tree.map(cast, tree)


@struct.dataclass
class EpisodeState:
    """The state :class:`EpisodeEnv` steps; one environment (``jax.vmap`` for batches).

    Attributes:
      env_state: the wrapped environment's state (after any automatic reset).
      obs: observation to act on next (the reset observation after an episode ended).
      next_obs: the observation this step reached, *before* any reset: the transition's s'.
      reward: reward of the last step (summed over action repeats).
      done: 1 where the last step ended the episode (terminal or truncated).
      truncation: 1 where it ended only because the time limit was reached (bootstrap from s').
      steps: environment steps taken in the current episode (0 right after a reset).
      episode_return, episode_length: running totals of the current episode; at a step with
        ``done = 1`` they hold the finished episode's totals (the reset zeroes them next step).
      key: PRNG key for the next automatic reset.
      first: the episode's first environment state (``reset_mode="initial"`` only, else None).
    """

    env_state: Any
    obs: Any
    next_obs: Any
    reward: Any
    done: Any
    truncation: Any
    steps: Any
    episode_return: Any
    episode_length: Any
    key: Any
    first: Any = None


class _Wrapper:
    """Forwards the wrapped environment's sizes."""

    env: Any

    @property
    def observation_size(self) -> int:
        return int(self.env.observation_size)

    @property
    def action_size(self) -> int:
        return int(self.env.action_size)


class EpisodeEnv(_Wrapper):
    """Time limit, action repeat and automatic reset around an unbatched environment.

    Args:
      env: an environment with brax's interface (:func:`make_env`).
      episode_length: environment steps after which an episode is truncated.
      action_repeat: each action is applied this many times (rewards summed).
      auto_reset: reset ended episodes inside ``step`` (training); ``False`` freezes them
        (evaluation: later steps of an ended episode have ``reward = 0``).
      reset_mode: ``"fresh"`` resets to a new random initial state (one ``env.reset`` per step,
        selected where done); ``"initial"`` reuses the episode's first state as brax's
        ``AutoResetWrapper`` does (cheaper, but every episode of an env starts the same).
    """

    def __init__(
        self,
        env: Any,
        *,
        episode_length: int = 1000,
        action_repeat: int = 1,
        auto_reset: bool = True,
        reset_mode: Literal["fresh", "initial"] = "fresh",
    ):
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if reset_mode not in ("fresh", "initial"):
            raise ValueError(f"reset_mode must be 'fresh' or 'initial', got {reset_mode!r}")
        self.env = env
        self.episode_length = int(episode_length)
        self.action_repeat = int(action_repeat)
        self.auto_reset = bool(auto_reset)
        self.reset_mode = reset_mode

    def _reset_env(self, key: Any) -> Any:
        return canonicalize(self.env.reset(key))

    def reset(self, key: Any) -> EpisodeState:
        key, sub = jax.random.split(key)
        env_state = self._reset_env(sub)
        obs = jnp.asarray(env_state.obs)
        zero = jnp.zeros((), jnp.result_type(float))
        izero = jnp.zeros((), jnp.int32)
        state = EpisodeState(
            env_state=env_state,
            obs=obs,
            next_obs=obs,
            reward=zero,
            done=zero,
            truncation=zero,
            steps=izero,
            episode_return=zero,
            episode_length=izero,
            key=key,
            first=env_state if self.reset_mode == "initial" else None,
        )
        return state

    def step(self, state: EpisodeState, action: ArrayLike) -> EpisodeState:
        action = jnp.asarray(action)
        if action.shape != (self.action_size,):
            raise ValueError(
                f"action: expected shape ({self.action_size},) for one env, got {action.shape}"
            )
        # A finished episode restarts its counters (its env_state was already reset).
        was_done = state.done > 0
        steps = jnp.where(was_done, 0, state.steps)
        ep_return = jnp.where(was_done, 0.0, state.episode_return)
        ep_length = jnp.where(was_done, 0, state.episode_length)

        def repeat(carry: Any, _: Any) -> tuple[Any, None]:
            env_state, total, done = carry
            nxt = canonicalize(self.env.step(env_state, action))
            # Once the task terminates inside a repeat, later sub-steps add nothing.
            total = total + (1.0 - done) * nxt.reward
            return (nxt, total, jnp.maximum(done, nxt.done)), None

        init = (state.env_state, jnp.zeros_like(state.reward), jnp.zeros_like(state.done))
        (env_state, reward, terminal), _ = jax.lax.scan(
            repeat, init, None, length=self.action_repeat
        )
        if not self.auto_reset:
            # Evaluation: an episode that already ended stays frozen with zero reward.
            env_state = jax.tree.map(
                lambda old, new: jnp.where(was_done, old, new), state.env_state, env_state
            )
            reward = jnp.where(was_done, 0.0, reward)
            terminal = jnp.where(was_done, 1.0, terminal)
        steps = steps + self.action_repeat
        timeout = (steps >= self.episode_length).astype(terminal.dtype)
        done = jnp.maximum(terminal, timeout)
        truncation = timeout * (1.0 - terminal)
        next_obs = jnp.asarray(env_state.obs)
        ep_return = ep_return + reward
        ep_length = ep_length + self.action_repeat
        if not self.auto_reset:
            ep_return = jnp.where(was_done, state.episode_return, ep_return)
            ep_length = jnp.where(was_done, state.episode_length, ep_length)
            steps = jnp.where(was_done, state.steps, steps)
            done = jnp.where(was_done, 1.0, done)
            truncation = jnp.where(was_done, state.truncation, truncation)
            key = state.key
        else:
            env_state, key = self._auto_reset(state, done, env_state)
        return EpisodeState(
            env_state=env_state,
            obs=jnp.asarray(env_state.obs),
            next_obs=next_obs,
            reward=reward,
            done=done,
            truncation=truncation,
            steps=steps,
            episode_return=ep_return,
            episode_length=ep_length,
            key=key,
            first=state.first,
        )

    def _auto_reset(self, state: EpisodeState, done: ArrayLike, env_state: Any) -> tuple[Any, Any]:
        if self.reset_mode == "initial":
            first, new_key = state.first, state.key
        else:
            new_key, sub = jax.random.split(state.key)
            first = self._reset_env(sub)
        merged = jax.tree.map(lambda a, b: jnp.where(done > 0, a, b), first, env_state)
        return merged, new_key


class BatchedEnv(_Wrapper):
    """``num_envs`` copies of an unbatched environment (e.g. :class:`EpisodeEnv`), vmapped.

    ``reset`` accepts one key (split into ``num_envs``) or a ``(num_envs,)`` batch of keys.
    """

    def __init__(self, env: Any, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env = env
        self.num_envs = int(num_envs)

    def reset(self, key: Any) -> Any:
        key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
        if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            raise ValueError(
                f"key: expected a typed PRNG key (jax.random.key), got dtype {key.dtype}"
            )
        if key.shape == ():
            key = jax.random.split(key, self.num_envs)
        elif key.shape != (self.num_envs,):
            raise ValueError(
                f"key: expected one key or a batch of shape ({self.num_envs},), got {key.shape}"
            )
        return jax.vmap(self.env.reset)(key)

    def step(self, state: Any, action: ArrayLike) -> Any:
        action = jnp.asarray(action)
        if action.shape != (self.num_envs, self.action_size):
            raise ValueError(
                f"action: expected shape ({self.num_envs}, {self.action_size}), got {action.shape}"
            )
        return jax.vmap(self.env.step)(state, action)

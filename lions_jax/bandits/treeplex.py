r"""Sequence-form strategy spaces (treeplexes) and the pure operations on them.

A player's strategy in a perfect-recall extensive-form game is a point of the *treeplex*
:math:`Q = \{x \ge 0 : x_\varnothing = 1,\ \sum_{a} x_{(h,a)} = x_{p(h)}\ \forall h\}`: one
*realisation weight* per sequence (the product of the player's own action probabilities along
it), indexed here with the empty sequence at index 0. A normal-form game is the special case of
one information set (:meth:`Treeplex.simplex`), so every function below also covers plain
bandits. Losses are linear on :math:`Q`: :math:`\langle x, \ell\rangle` with one entry per
sequence.

* :func:`behavioural_to_sequence` / :func:`sequence_to_behavioural` — the two maps
  (realisation-equivalent strategies have the same sequence form; the behavioural strategy of a
  sequence-form point is unique where its parent weight is positive, uniform elsewhere).
* :func:`counterfactual_losses` — bottom-up pass: the loss of each (infoset, action) when the
  player plays ``behavioural`` below it (the CFR "counterfactual" loss, with the opponent's and
  chance's reach folded into ``loss``).
* :func:`best_response` — :math:`\min_{x \in Q}\langle x, \ell\rangle` by backward induction,
  with the minimiser (a pure strategy) in both forms.

The tree structure is static NumPy data (``parent``, ``sequences``, ``levels``); every function is
pure, jit/vmap-able in its array arguments, and loops only over the (static) depth. Every
information set has the same number of actions (Kuhn: 2; a simplex: K).
"""

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "BestResponse",
    "Treeplex",
    "behavioural_to_sequence",
    "best_response",
    "counterfactual_losses",
    "sequence_to_behavioural",
]


@dataclasses.dataclass(frozen=True, eq=False)
class Treeplex:
    """The static structure of one player's sequence-form strategy space.

    Attributes:
      parent: ``(num_infosets,)`` index of each infoset's parent sequence (0 = the empty sequence).
      sequences: ``(num_infosets, num_actions)`` index of the sequence "infoset h, action a".
      levels: infoset indices grouped by depth, top-down (parents of level d+1 lie in level d).
      infoset_names: one label per infoset (Kuhn: OpenSpiel's info-state strings).
      action_names: one label per action.
    """

    parent: np.ndarray
    sequences: np.ndarray
    levels: tuple[np.ndarray, ...]
    infoset_names: tuple[str, ...]
    action_names: tuple[str, ...]

    @classmethod
    def from_infosets(
        cls,
        parents: Sequence[int],
        num_actions: int,
        *,
        infoset_names: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
    ) -> "Treeplex":
        """Builds a treeplex from each infoset's parent sequence; infoset ``h`` owns sequences
        ``1 + h * num_actions + a``. Parents must refer to sequences of earlier infosets (or 0)."""
        parent = np.asarray(parents, dtype=np.int32)
        num_infosets = parent.shape[0]
        if parent.ndim != 1 or num_infosets == 0:
            raise ValueError(f"parents: expected a non-empty list of ints, got {parents!r}")
        if num_actions < 2:
            raise ValueError(f"num_actions: expected >= 2, got {num_actions}")
        sequences = 1 + np.arange(num_infosets * num_actions, dtype=np.int32).reshape(
            num_infosets, num_actions
        )
        depth = np.zeros(num_infosets, dtype=np.int32)
        for h, p in enumerate(parent):
            if p == 0:
                continue
            owner = (p - 1) // num_actions
            if not 0 <= owner < h:
                raise ValueError(
                    f"parents: infoset {h} has parent sequence {p}, which is not a sequence of an "
                    "earlier infoset (list infosets top-down)"
                )
            depth[h] = depth[owner] + 1
        levels = tuple(np.flatnonzero(depth == d).astype(np.int32) for d in range(depth.max() + 1))
        names = (
            tuple(infoset_names)
            if infoset_names is not None
            else tuple(map(str, range(num_infosets)))
        )
        actions = (
            tuple(action_names) if action_names is not None else tuple(map(str, range(num_actions)))
        )
        if len(names) != num_infosets or len(actions) != num_actions:
            raise ValueError("infoset_names/action_names: lengths must match the infosets/actions")
        return cls(parent, sequences, levels, names, actions)

    @classmethod
    def simplex(cls, num_actions: int, action_names: Sequence[str] | None = None) -> "Treeplex":
        """The probability simplex as a treeplex: one infoset; ``x = [1, p_1, ..., p_K]``."""
        return cls.from_infosets(
            [0], num_actions, infoset_names=("root",), action_names=action_names
        )

    @functools.cached_property
    def child_matrix(self) -> np.ndarray:
        """``(num_infosets, num_sequences - 1)``: 1 where the infoset hangs below the sequence
        (a dense 0/1 matrix: one small matmul beats a scatter on every backend)."""
        c = np.zeros((self.num_infosets, self.num_sequences))
        c[np.arange(self.num_infosets), self.parent] = 1.0
        return c[:, 1:]

    @property
    def num_infosets(self) -> int:
        return int(self.parent.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.sequences.shape[1])

    @property
    def num_sequences(self) -> int:
        """Including the empty sequence (index 0)."""
        return 1 + self.sequences.size

    def sequence_name(self, index: int) -> str:
        if index == 0:
            return "∅"
        h, a = divmod(index - 1, self.num_actions)
        return f"{self.infoset_names[h]}:{self.action_names[a]}"

    def uniform(self) -> np.ndarray:
        """The uniform behavioural strategy, ``(num_infosets, num_actions)``."""
        return np.full(self.sequences.shape, 1.0 / self.num_actions)

    def check_behavioural(self, behavioural: Any, name: str) -> None:
        """Concrete validation: shape ``(num_infosets, num_actions)``, rows on the simplex."""
        b = np.asarray(behavioural, dtype=np.float64)
        if b.shape != self.sequences.shape:
            raise ValueError(
                f"{name}: expected a behavioural strategy of shape {self.sequences.shape} "
                f"(infosets, actions), got {b.shape}"
            )
        if not np.all(np.isfinite(b)) or b.min() < -1e-6 or np.abs(b.sum(-1) - 1).max() > 1e-4:
            bad = int(np.argmax(np.abs(b.sum(-1) - 1) + (b.min(-1) < 0)))
            raise ValueError(
                f"{name}: every row must be a probability vector; infoset "
                f"{self.infoset_names[bad]!r} has {b[bad].tolist()}"
            )


def behavioural_to_sequence(treeplex: Treeplex, behavioural: ArrayLike) -> jax.Array:
    """Realisation weights ``x`` (``(num_sequences,)``, ``x[0] = 1``) of a behavioural strategy."""
    b = jnp.asarray(behavioural)
    reach = jnp.ones(treeplex.num_infosets, b.dtype)
    for _ in treeplex.levels:  # after d passes, the reach of every infoset above depth d is exact
        x = jnp.concatenate([jnp.ones(1, b.dtype), (reach[:, None] * b).reshape(-1)])
        reach = x[treeplex.parent]
    return x


def sequence_to_behavioural(treeplex: Treeplex, x: ArrayLike) -> jax.Array:
    """The behavioural strategy of a sequence-form point: ``x[(h,a)] / x[parent(h)]``; uniform at
    infosets the strategy never reaches (parent weight 0)."""
    x = jnp.asarray(x)
    parent = x[treeplex.parent][:, None]
    reached = parent > 0
    ratio = x[treeplex.sequences] / jnp.where(reached, parent, 1)
    return jnp.where(reached, ratio, 1.0 / treeplex.num_actions)


def counterfactual_losses(
    treeplex: Treeplex, loss: ArrayLike, behavioural: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """Bottom-up pass. Returns ``(q, v)``: ``q[h, a] = loss[(h,a)] + Σ_{h' below (h,a)} v[h']`` and
    ``v[h] = Σ_a behavioural[h, a] q[h, a]``; then ``⟨x, loss⟩ = loss[0] + Σ_{h at the root} v[h]``
    for ``x`` the sequence form of ``behavioural``."""
    loss = jnp.asarray(loss)
    b = jnp.asarray(behavioural)
    own = loss[1:].reshape(treeplex.sequences.shape)
    below = jnp.zeros(treeplex.sequences.shape, jnp.result_type(loss, b))
    for _ in treeplex.levels:  # after d passes, every infoset within d levels of a leaf is exact
        q = own + below
        v = jnp.sum(b * q, axis=-1)
        below = _children_sum(treeplex, v)
    return q, v


def _children_sum(treeplex: Treeplex, v: jax.Array) -> jax.Array:
    """``(num_infosets, num_actions)``: the sum of ``v`` over the infosets below each sequence."""
    summed = v @ jnp.asarray(treeplex.child_matrix, v.dtype)
    return summed.reshape(treeplex.sequences.shape)


class BestResponse(NamedTuple):
    """``value = min_{x ∈ Q} ⟨x, loss⟩``; ``behavioural``/``sequence``: a pure minimiser."""

    value: jax.Array
    behavioural: jax.Array
    sequence: jax.Array


def best_response(treeplex: Treeplex, loss: ArrayLike) -> BestResponse:
    """Minimises the linear loss over the treeplex by backward induction (ties: lowest action)."""
    loss = jnp.asarray(loss)
    own = loss[1:].reshape(treeplex.sequences.shape)
    below = jnp.zeros_like(own)
    for _ in treeplex.levels:
        q = own + below
        below = _children_sum(treeplex, jnp.min(q, axis=-1))
    value = loss[0] + jnp.sum(jnp.where(treeplex.parent == 0, jnp.min(q, axis=-1), 0))
    behavioural = jax.nn.one_hot(jnp.argmin(q, axis=-1), treeplex.num_actions, dtype=loss.dtype)
    return BestResponse(
        value=value,
        behavioural=behavioural,
        sequence=behavioural_to_sequence(treeplex, behavioural),
    )

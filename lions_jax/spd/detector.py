"""The SPD detector: features of one greedy decode → a balanced RBF-SVM, fit, saved, loaded and
applied in one pass.

``SPDDetector(r, k, top_logprobs)`` fixes the feature map (``top_logprobs=5`` simulates an API
that returns only the five most likely tokens per position: the paper's partial-logit variant);
:meth:`SPDDetector.fit` returns a fitted copy; :meth:`SPDDetector.decision` scores new decodes
(positive = jailbreak). :meth:`SPDDetector.save` writes one ``.npz`` atomically (the feature
settings, the SVM's training features, dual variables, labels, box and γ), and
:meth:`SPDDetector.load` restores it exactly.
"""

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lions_jax._src.results import atomic_write_bytes
from lions_jax.spd.features import feature_vector, surprisal_features
from lions_jax.spd.svm import RBFSVM, fit_rbf_svm, svm_decision

__all__ = ["SPDDetector", "api_top_logprobs"]


def api_top_logprobs(logprobs: ArrayLike, n: int) -> jax.Array:
    """The ``n`` largest log-probabilities per position, descending — what an API returns with
    ``top_logprobs=n`` — from full ``(..., T, V)`` log-probabilities."""
    lp = jnp.asarray(logprobs)
    if lp.ndim < 2 or not 1 <= n <= lp.shape[-1]:
        raise ValueError(f"n: expected 1 <= n <= {lp.shape[-1] if lp.ndim else 0}, got {n}")
    return jax.lax.top_k(lp, n)[0]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SPDDetector:
    """Attributes:
    r: output positions used.
    k: candidates kept per position.
    top_logprobs: None for the full vocabulary, else keep only this many log-probs per position
      before re-normalising (must be >= k).
    c, gamma: the SVM's C and γ (``"scale"``: 1 / (d · Var(X)), scikit-learn's default).
    num_steps: dual solver steps.
    svm: the fitted SVM (None before :meth:`fit`).
    """

    r: int = 5
    k: int = 25
    top_logprobs: int | None = None
    c: float = 1.0
    gamma: Any = "scale"
    num_steps: int = 3_000
    svm: RBFSVM | None = None

    def __post_init__(self) -> None:
        for name in ("r", "k", "num_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        if self.top_logprobs is not None and (
            not isinstance(self.top_logprobs, int) or self.top_logprobs < self.k
        ):
            raise ValueError(
                f"top_logprobs: expected None or an int >= k = {self.k}, got {self.top_logprobs!r}"
            )

    def features(self, logprobs: ArrayLike, lengths: ArrayLike | None = None) -> jax.Array:
        """``(n, r·k + r)`` feature vectors of ``n`` decodes ``(n, T, V)``."""
        lp = jnp.asarray(logprobs)
        if self.top_logprobs is not None:
            lp = api_top_logprobs(lp, self.top_logprobs)
        return feature_vector(surprisal_features(lp, r=self.r, k=self.k, lengths=lengths))

    def fit(
        self, logprobs: ArrayLike, labels: ArrayLike, lengths: ArrayLike | None = None
    ) -> "SPDDetector":
        """A fitted copy; ``labels`` 1 for a successful jailbreak, 0 for a benign prompt."""
        x = self.features(logprobs, lengths)
        svm = fit_rbf_svm(x, jnp.asarray(labels), c=self.c, gamma=self.gamma,
                          num_steps=self.num_steps)  # fmt: skip
        return dataclasses.replace(self, svm=svm)

    def decision(self, logprobs: ArrayLike, lengths: ArrayLike | None = None) -> jax.Array:
        """SVM decision values (positive = jailbreak)."""
        if self.svm is None:
            raise ValueError("svm: the detector is not fitted (call fit first)")
        return svm_decision(self.svm, self.features(logprobs, lengths))

    def predict(self, logprobs: ArrayLike, lengths: ArrayLike | None = None) -> jax.Array:
        return self.decision(logprobs, lengths) > 0

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the fitted detector to ``path`` (``.npz``) atomically."""
        if self.svm is None:
            raise ValueError("svm: the detector is not fitted (call fit first)")
        settings = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "svm"
        }
        buf = io.BytesIO()
        np.savez(buf, settings=np.array(repr(settings)),
                 **{f: np.asarray(v) for f, v in self.svm._asdict().items()})  # fmt: skip
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SPDDetector":
        import ast

        with np.load(path) as data:
            settings = ast.literal_eval(str(data["settings"]))
            svm = RBFSVM(**{f: jnp.asarray(data[f]) for f in RBFSVM._fields})
        return cls(**settings, svm=svm)

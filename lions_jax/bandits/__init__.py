"""Best of both worlds: bandit play with O(1) regret to a comparator and Õ(√T) to the best fixed
strategy (Müller, Schneider, Skoulakis, Viano, Cevher, arXiv 2502.11673, ICML 2025).

* :mod:`~lions_jax.bandits.core` — importance-weighted loss estimates, Exp3 in log space, and
  phased aggression (``pa_mix``, ``pa_update``, ``pa_threshold``, ``pa_gap``).
* :mod:`~lions_jax.bandits.treeplex` — sequence-form strategy spaces: behavioural ↔ sequence
  form, counterfactual losses, best response by backward induction.
* :mod:`~lions_jax.bandits.learners` — Hedge (= Exp3 on a simplex) and regret matching
  (= outcome-sampling MCCFR) per infoset.
* :mod:`~lions_jax.bandits.games` — matrix games (rock-paper-scissors), Kuhn poker (one seat or
  seat-symmetrised), equilibria, exploitable strategies, exploitability, ε-floors.
* :mod:`~lions_jax.bandits.train` — ``make_train(cfg) -> train(key)``: repeated play against a
  fixed, best-responding or switching opponent, one ``lax.scan``; seeds vmap.
"""

from lions_jax.bandits.core import (
    PAState,
    exp3_probs,
    exp3_update,
    iw_loss_estimate,
    pa_gap,
    pa_init,
    pa_mix,
    pa_threshold,
    pa_update,
)
from lions_jax.bandits.games import (
    KUHN_INFOSETS,
    Game,
    epsilon_floor,
    expected_loss,
    exploitability,
    kuhn_always_bet_call,
    kuhn_nash,
    kuhn_never_bluff,
    kuhn_poker,
    kuhn_strategy,
    matrix_game,
    min_realisation_weight,
    rock_paper_scissors,
    solve_matrix_game,
    terminal_probs,
    worst_case_loss,
)
from lions_jax.bandits.learners import learner_init, learner_policy, learner_update
from lions_jax.bandits.train import (
    OPPONENTS,
    VARIANTS,
    BanditConfig,
    LearnerParams,
    OpponentParams,
    TrainOutput,
    learner_params,
    make_run,
    make_train,
    opponent_params,
    realisation_weights,
)
from lions_jax.bandits.treeplex import (
    BestResponse,
    Treeplex,
    behavioural_to_sequence,
    best_response,
    counterfactual_losses,
    sequence_to_behavioural,
)

__all__ = [
    "KUHN_INFOSETS",
    "OPPONENTS",
    "VARIANTS",
    "BanditConfig",
    "BestResponse",
    "Game",
    "LearnerParams",
    "OpponentParams",
    "PAState",
    "TrainOutput",
    "Treeplex",
    "behavioural_to_sequence",
    "best_response",
    "counterfactual_losses",
    "epsilon_floor",
    "exp3_probs",
    "exp3_update",
    "expected_loss",
    "exploitability",
    "iw_loss_estimate",
    "kuhn_always_bet_call",
    "kuhn_nash",
    "kuhn_never_bluff",
    "kuhn_poker",
    "kuhn_strategy",
    "learner_init",
    "learner_params",
    "learner_policy",
    "learner_update",
    "make_run",
    "make_train",
    "matrix_game",
    "min_realisation_weight",
    "opponent_params",
    "pa_gap",
    "pa_init",
    "pa_mix",
    "pa_threshold",
    "pa_update",
    "realisation_weights",
    "rock_paper_scissors",
    "sequence_to_behavioural",
    "solve_matrix_game",
    "terminal_probs",
    "worst_case_loss",
]

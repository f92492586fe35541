"""The answer-blind cascade's gate: a verifier for open-ended answers (issue 11, point 2).

Chat, summaries and code have no final answer to extract, so the staged cascade's agreement
signal does not exist there. This cascade never reads an answer. It calls the learned router's
cheap choice (``first_knob``: the log10 willingness to pay of that first pick), then decides
from what the gateway knows after that call without parsing it, whether to call the strong
model (``strong``) and return its answer instead:

* the heads' predictions for the cheap model on this prompt: P(good) and log completion tokens;
* the completion tokens the call actually returned, as a *surprise*: the log length's distance
  from the predicted one in units of the head's residual spread (a cheap model that rambles or
  loops far past the usual length for such a prompt tends to be wrong), alone, positive part,
  and per predicted category (the sign and size of the effect differ between tasks);
* the prompt's tokens.

A logistic model over these features (standardised; fitted out of fold, ``train_blind``) gives
P(the cheap answer is good); the cascade escalates when it is under ``tau``. The knob ``tau``
is calibrated like the others: realised share of the best model's quality and cost share on
held-back prompts (cross-fitted), so a ``quality_target`` maps to it.

No I/O and no look at anything but token counts: training and the gateway share these rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelmix.routing.learned.calibration import Calibration


def blind_features(
    p_cheap: np.ndarray,
    pred_log_tokens: np.ndarray,
    token_var: np.ndarray,
    completion_tokens: np.ndarray,
    prompt_tokens: np.ndarray,
    category: np.ndarray,
    n_categories: int,
) -> np.ndarray:
    """Gate features per prompt (rows): every argument is one value per prompt (``category``:
    the predicted category's index). Columns: logit P(good), surprise, its positive part, log
    actual and predicted tokens, log prompt tokens, then the surprise per category."""
    q = np.clip(np.asarray(p_cheap, dtype=np.float64), 0.02, 0.98)
    actual = np.log1p(np.asarray(completion_tokens, dtype=np.float64))
    pred = np.asarray(pred_log_tokens, dtype=np.float64)
    surprise = (actual - pred) / np.sqrt(np.maximum(np.asarray(token_var, np.float64), 1e-6))
    onehot = np.eye(max(n_categories, 1))[np.asarray(category, dtype=int)]
    return np.column_stack(
        [
            np.log(q / (1 - q)),
            surprise,
            np.maximum(surprise, 0.0),
            actual,
            pred,
            np.log1p(np.asarray(prompt_tokens, dtype=np.float64)),
            onehot * surprise[:, None],
        ]
    )


@dataclass(slots=True)
class BlindGate:
    """The answer-blind cascade: first pick, escalation model, the gate and its calibration."""

    #: log10 willingness to pay (USD per unit of quality) of the first, cheap pick.
    first_knob: float
    #: The model called when the gate escalates.
    strong: str
    n_categories: int
    #: Logistic weights over the standardised features, the intercept last.
    weights: list[float]
    mu: list[float]
    sd: list[float]
    #: knob = tau (escalate when P(cheap answer good) < tau); held-back share and cost share.
    calibration: Calibration = field(default_factory=lambda: Calibration([0.0], [1.0]))

    def p_good(self, x: np.ndarray) -> np.ndarray:
        """P(the cheap answer is good) per row of ``blind_features``."""
        w = np.asarray(self.weights)
        z = (x - np.asarray(self.mu)) / np.asarray(self.sd)
        out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z @ w[:-1] + w[-1], -30, 30)))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "first_knob": self.first_knob,
            "strong": self.strong,
            "n_categories": self.n_categories,
            "weights": self.weights,
            "mu": self.mu,
            "sd": self.sd,
            "calibration": self.calibration.as_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlindGate:
        cal = d["calibration"]
        return cls(
            first_knob=float(d["first_knob"]),
            strong=str(d["strong"]),
            n_categories=int(d["n_categories"]),
            weights=[float(x) for x in d["weights"]],
            mu=[float(x) for x in d["mu"]],
            sd=[float(x) for x in d["sd"]],
            calibration=Calibration(
                [float(x) for x in cal["knob"]],
                [float(x) for x in cal["share"]],
                [float(x) for x in cal.get("cost_share", [])],
                [float(x) for x in cal.get("se", [])],
            ),
        )

"""The calibration table of a trained router: a user's knob (``quality_target``) -> the internal
threshold, measured on held-back prompts.

Its own module, below ``artifact.py`` (which stores it) and ``staged.py`` (whose gate carries
one), so that the artifact can load a staged gate without the two importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Calibration"]


@dataclass(slots=True)
class Calibration:
    """Monotone map from an internal knob (``knob``, ascending) to the realised share of the
    best model's quality measured on held-back prompts (``share``), and the cost share."""

    knob: list[float]
    share: list[float]
    cost_share: list[float] = field(default_factory=list)
    #: Standard error of each share (over the held-back prompts), when measured.
    se: list[float] = field(default_factory=list)

    def knob_for(self, target: float) -> float:
        """The cheapest knob whose held-back quality share reaches ``target`` (interpolated)."""
        shares = np.maximum.accumulate(np.asarray(self.share))
        k = np.asarray(self.knob)
        if target <= shares[0]:
            return float(k[0])
        if target >= shares[-1]:
            return float(k[-1])
        i = int(np.searchsorted(shares, target))
        lo, hi = shares[i - 1], shares[i]
        frac = 0.0 if hi <= lo else (target - lo) / (hi - lo)
        return float(k[i - 1] + frac * (k[i] - k[i - 1]))

    def as_dict(self) -> dict[str, list[float]]:
        out = {"knob": self.knob, "share": self.share, "cost_share": self.cost_share}
        if self.se:
            out["se"] = self.se
        return out

"""A trained router: weights only, in one ``.npz`` file (arrays plus a JSON header).

No data rows are stored: linear weights over hashed features, per-model calibration, and the
calibration tables that turn a user's knob (``quality_target``) into the internal threshold.
Loading uses ``allow_pickle=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from modelmix.routing.learned.blind import BlindGate
from modelmix.routing.learned.calibration import Calibration as Calibration  # re-exported
from modelmix.routing.learned.familiar import Familiarity
from modelmix.routing.learned.features import Features, FloatArray, featurize
from modelmix.routing.learned.model import FoldedHeads, LinearHeads, sigmoid
from modelmix.routing.learned.shift import ShiftCalibration
from modelmix.routing.learned.staged import StagedGate

FORMAT = "modelmix-router/1"
DEFAULT_ARTIFACT = Path(__file__).with_name("default_router.npz")


@dataclass(slots=True)
class CascadeGate:
    """The learned part of a cascade: the voters' order, the agreement rule, and a logistic
    model of P(the best-supported answer is right) at the voters' exit state."""

    voters: list[str]
    strong: list[str]
    need: int
    weights: list[float]
    calibration: Calibration


@dataclass(slots=True)
class RouterArtifact:
    models: list[str]
    #: USD per token (input, output) the router was trained with; the gateway prefers the
    #: portfolio's prices.
    prices: dict[str, tuple[float, float]]
    quality: LinearHeads
    platt: FloatArray  # (M, 2): a, c of sigmoid(a·z + c)
    tokens: LinearHeads  # log1p(completion tokens) per model
    token_var: FloatArray  # (M,) residual variance of the log
    difficulty: LinearHeads  # one output: logit of the mean score over models (easiness)
    best_model: str
    calibration: Calibration  # knob = log10(willingness to pay, USD per unit of quality)
    gate: CascadeGate | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: Prompt categories of the training data and a head scoring each (argmax = predicted).
    categories: list[str] = field(default_factory=list)
    category: LinearHeads | None = None
    #: The staged cascade's learned gate.
    staged: StagedGate | None = None
    #: The profile router's quality_target -> per-prompt threshold (knob), held-back.
    profile_calibration: Calibration | None = None
    #: Centroids of the training prompts' hashed vectors (``novelty``); the similarity
    #: threshold under which a prompt counts as unlike them is ``meta["ood_threshold"]``.
    centroids: FloatArray | None = None
    #: The training tasks' vocabularies and the out-of-fold familiarity threshold
    #: (``familiar``): a prompt under it is unlike every training task.
    familiarity: Familiarity | None = None
    #: (category, model): what the predicted category's prior (its mean score in training)
    #: adds to each model's logit of P(good); None without categories.
    prior_shift: FloatArray | None = None
    #: The answer-blind cascade's gate (``blind``): escalation decided on token counts only.
    blind: BlindGate | None = None
    #: The quality_target table that holds on unseen categories too (``shift``: measured on
    #: random and on category-grouped folds, with a boost for prompts the category head
    #: cannot place); None with too few categories (the target then uses ``calibration``).
    shift: ShiftCalibration | None = None
    #: The profile router's table that holds on unseen categories too (``profile_shift``:
    #: ``boost`` is the lift of an unplaced prompt's threshold); None with too few categories.
    profile_shift: ShiftCalibration | None = None

    #: Every head side by side (built on first use): one product per prompt gives them all.
    _folded: FoldedHeads | None = field(default=None, init=False, repr=False, compare=False)

    # -- inference ----------------------------------------------------------------------

    def outputs(self, f: Features) -> FloatArray:
        """Every head's raw output for one prompt, in one pass, laid out as
        ``[quality (M) | tokens (M) | difficulty (1) | category (C)]``."""
        folded = self._folded
        if folded is None:
            heads = [self.quality, self.tokens, self.difficulty]
            if self.category is not None:
                heads.append(self.category)
            folded = self._folded = FoldedHeads(heads)
        return folded.apply(f)

    def quality_from(self, z: FloatArray) -> FloatArray:
        """P(good answer) per model, from :meth:`outputs`."""
        m = len(self.models)
        lz = self.platt[:, 0] * z[:m] + self.platt[:, 1]
        if self.prior_shift is not None and self.category is not None:
            lz = lz + self.prior_shift[int(np.argmax(z[2 * m + 1 :]))]
        p: FloatArray = sigmoid(lz).astype(np.float32)
        return p

    def tokens_from(self, z: FloatArray) -> FloatArray:
        """Expected completion tokens per model (at least 1), from :meth:`outputs`."""
        m = len(self.models)
        toks: FloatArray = np.expm1(z[m : 2 * m] + self.token_var / 2).astype(np.float32)
        return np.maximum(toks, 1.0)

    def easiness_from(self, z: FloatArray) -> float:
        return float(z[2 * len(self.models)])

    def typical_tokens(self) -> tuple[LinearHeads, float]:
        """One head for a prompt's typical completion length, for a portfolio the artifact
        does not know: the mean of the models' log-token heads (a mean of linear heads is
        linear), and half their mean residual variance (``expm1(z + that)`` is the estimate)."""
        t = self.tokens
        head = LinearHeads(t.W.mean(axis=1, keepdims=True), t.b.mean(keepdims=True), t.mu, t.sd)
        return head, float(self.token_var.mean()) / 2

    def category_from(self, z: FloatArray) -> str:
        """The predicted category ("" when the artifact has none), from :meth:`outputs`."""
        if self.category is None or not self.categories:
            return self.categories[0] if self.categories else ""
        return self.categories[int(np.argmax(z[2 * len(self.models) + 1 :]))]

    def predict(self, f: Features) -> tuple[FloatArray, FloatArray]:
        """P(good answer) and expected completion tokens, one per model in ``models``."""
        z = self.outputs(f)
        return self.quality_from(z), self.tokens_from(z)

    def easiness(self, f: Features) -> float:
        return self.easiness_from(self.outputs(f))

    def category_of(self, f: Features) -> str:
        """The predicted category of a prompt ("" when the artifact has none)."""
        return self.category_from(self.outputs(f))

    @property
    def target_calibration(self) -> Calibration:
        """The table a ``quality_target`` maps through (``shift``'s when trained with one)."""
        return self.shift.calibration if self.shift is not None else self.calibration

    @property
    def profile_target_calibration(self) -> Calibration | None:
        """The table a profile route's ``quality_target`` maps through (``profile_shift``'s
        when trained with one)."""
        if self.profile_shift is not None:
            return self.profile_shift.calibration
        return self.profile_calibration

    def featurize(self, text: str) -> Features:
        return featurize(text)

    @property
    def checks_novelty(self) -> bool:
        """Whether the artifact can tell a prompt unlike its training prompts."""
        return self.familiarity is not None or (
            self.centroids is not None and "ood_threshold" in self.meta
        )

    def is_novel(self, f: Features) -> dict[str, float] | None:
        """Why the prompt is unlike the training prompts (its familiarity to the training
        tasks' vocabularies, or its similarity to their centroids, under the out-of-fold
        threshold), or None when it is like them."""
        fam = self.familiarity
        if fam is not None:
            score = fam.score(f.tokens)
            if score < fam.threshold:
                return {"familiarity": round(score, 4), "threshold": round(fam.threshold, 4)}
        threshold = self.meta.get("ood_threshold")
        if self.centroids is None or threshold is None:
            return None
        from modelmix.routing.learned.novelty import similarity

        sim = similarity(f, self.centroids)
        if sim < float(threshold):
            return {"similarity": round(sim, 4), "threshold": round(float(threshold), 4)}
        return None

    # -- storage ------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        header: dict[str, Any] = {
            "format": FORMAT,
            "models": self.models,
            "prices": {m: list(v) for m, v in self.prices.items()},
            "best_model": self.best_model,
            "calibration": self.calibration.as_dict(),
            "meta": self.meta,
        }
        arrays: dict[str, np.ndarray] = {}
        named = [
            ("quality", self.quality),
            ("tokens", self.tokens),
            ("difficulty", self.difficulty),
        ]
        if self.category is not None:
            named.append(("category", self.category))
            header["categories"] = self.categories
        elif self.categories:
            header["categories"] = self.categories
        if self.staged is not None:
            header["staged"] = self.staged.as_dict()
        if self.blind is not None:
            header["blind"] = self.blind.as_dict()
        if self.profile_calibration is not None:
            header["profile_calibration"] = self.profile_calibration.as_dict()
        if self.shift is not None:
            header["shift"] = self.shift.as_dict()
        if self.profile_shift is not None:
            header["profile_shift"] = self.profile_shift.as_dict()
        for name, heads in named:
            arrays[f"{name}_W"] = heads.W.astype(np.float16)
            arrays[f"{name}_b"] = heads.b.astype(np.float32)
        arrays["mu"] = self.quality.mu
        arrays["sd"] = self.quality.sd
        arrays["platt"] = self.platt.astype(np.float32)
        arrays["token_var"] = self.token_var.astype(np.float32)
        if self.centroids is not None:
            arrays["centroids"] = self.centroids.astype(np.float16)
        if self.prior_shift is not None:
            arrays["prior_shift"] = self.prior_shift.astype(np.float32)
        if self.familiarity is not None:
            fam = self.familiarity
            arrays["known_tokens"] = fam.tokens.astype(np.uint32)
            arrays["known_groups"] = fam.packed()
            header["familiarity"] = {"groups": fam.groups, "threshold": fam.threshold}
        if self.gate is not None:
            header["gate"] = {
                "voters": self.gate.voters,
                "strong": self.gate.strong,
                "need": self.gate.need,
                "weights": self.gate.weights,
                "calibration": self.gate.calibration.as_dict(),
            }
        arrays["header"] = np.frombuffer(orjson.dumps(header), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]


def _calibration(d: dict[str, Any]) -> Calibration:
    return Calibration(
        [float(x) for x in d["knob"]],
        [float(x) for x in d["share"]],
        [float(x) for x in d.get("cost_share", [])],
        [float(x) for x in d.get("se", [])],
    )


def load_artifact(path: str | Path | None = None) -> RouterArtifact:
    """Load an artifact; ``None`` or ``"default"`` is the one shipped with modelmix."""
    p = DEFAULT_ARTIFACT if path in (None, "default") else Path(str(path))
    with np.load(p, allow_pickle=False) as z:
        header = orjson.loads(z["header"].tobytes())
        if header.get("format") != FORMAT:
            raise ValueError(f"{p}: not a modelmix router artifact ({header.get('format')!r})")
        mu = z["mu"].astype(np.float32)
        sd = z["sd"].astype(np.float32)

        def heads(name: str) -> LinearHeads:
            return LinearHeads(
                z[f"{name}_W"].astype(np.float32), z[f"{name}_b"].astype(np.float32), mu, sd
            )

        gate = None
        if "gate" in header:
            g = header["gate"]
            gate = CascadeGate(
                list(g["voters"]),
                list(g["strong"]),
                int(g["need"]),
                [float(w) for w in g["weights"]],
                _calibration(g["calibration"]),
            )
        staged = None
        if "staged" in header:
            staged = StagedGate.from_dict(header["staged"])
        return RouterArtifact(
            categories=[str(c) for c in header.get("categories", [])],
            category=heads("category") if "category_W" in z.files else None,
            staged=staged,
            models=list(header["models"]),
            prices={m: (float(v[0]), float(v[1])) for m, v in header["prices"].items()},
            quality=heads("quality"),
            platt=z["platt"].astype(np.float32),
            tokens=heads("tokens"),
            token_var=z["token_var"].astype(np.float32),
            difficulty=heads("difficulty"),
            best_model=str(header["best_model"]),
            calibration=_calibration(header["calibration"]),
            gate=gate,
            profile_calibration=(
                _calibration(header["profile_calibration"])
                if "profile_calibration" in header
                else None
            ),
            meta=dict(header.get("meta", {})),
            centroids=z["centroids"].astype(np.float32) if "centroids" in z.files else None,
            familiarity=_familiarity(header, z),
            prior_shift=z["prior_shift"].astype(np.float32) if "prior_shift" in z.files else None,
            blind=BlindGate.from_dict(header["blind"]) if "blind" in header else None,
            shift=ShiftCalibration.from_dict(header["shift"]) if "shift" in header else None,
            profile_shift=(
                ShiftCalibration.from_dict(header["profile_shift"])
                if "profile_shift" in header
                else None
            ),
        )


def _familiarity(header: dict[str, Any], z: Any) -> Familiarity | None:
    fam = header.get("familiarity")
    if fam is None or "known_tokens" not in z.files:
        return None
    groups = [str(g) for g in fam["groups"]]
    return Familiarity.unpack(z["known_tokens"], z["known_groups"], groups, float(fam["threshold"]))

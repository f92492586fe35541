"""Is a prompt familiar to the router? The share of its distinct word tokens that the training
prompts of one task (category) used, at best over the tasks.

The vocabulary of each training task ships in the artifact (the tokens' CRC32 hashes, sorted,
with one bit per task); a prompt's familiarity is the largest share of its distinct tokens
known to one task. The threshold is measured out of fold: vocabularies built without one fold,
the familiarity of each held-back (new but in-distribution) prompt, and the ``QUANTILE`` of
those. A prompt under it looks like no task the router was calibrated on (an unseen task's
template, notation or language), so the learned heads cannot promise a target for it: the
route sends it to the single models that keep the target by themselves (``safety``).

Per decision: one ``searchsorted`` of the prompt's tokens and a column sum over the tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modelmix.routing.learned.features import TokenArray, featurize

#: Share of new in-distribution prompts allowed under the threshold (they get the safe
#: choice: a little dearer, never worse).
QUANTILE = 0.05

BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Familiarity:
    """Training vocabularies per task: ``tokens`` (sorted distinct hashes), ``known[t, g]``
    (token ``t`` occurs in task ``g``'s prompts), the tasks' names and the threshold."""

    tokens: TokenArray
    known: BoolArray
    groups: list[str]
    threshold: float = 0.0

    def score(self, toks: TokenArray) -> float:
        """The largest share of the prompt's distinct tokens (``Features.tokens``) that one
        task's training prompts used (1.0 for a prompt without words)."""
        if not len(toks) or not len(self.tokens):
            return 1.0 if not len(toks) else 0.0
        pos = np.minimum(np.searchsorted(self.tokens, toks), len(self.tokens) - 1)
        hit = pos[self.tokens[pos] == toks]
        if not len(hit):
            return 0.0
        return float(self.known[hit].sum(axis=0).max()) / len(toks)

    def is_unfamiliar(self, toks: TokenArray) -> float | None:
        """The prompt's familiarity when under the threshold, else None."""
        s = self.score(toks)
        return s if s < self.threshold else None

    def packed(self) -> npt.NDArray[np.uint8]:
        out: npt.NDArray[np.uint8] = np.packbits(self.known, axis=1)
        return out

    @staticmethod
    def unpack(
        tokens: TokenArray, packed: npt.NDArray[np.uint8], groups: list[str], threshold: float
    ) -> Familiarity:
        known = np.unpackbits(packed, axis=1, count=len(groups)).astype(bool)
        return Familiarity(tokens.astype(np.uint32), known, groups, threshold)


def token_sets(texts: list[str]) -> list[TokenArray]:
    """Each text's distinct token hashes (as ``featurize`` gives them)."""
    return [featurize(t).tokens for t in texts]


def fit(sets: list[TokenArray], groups: list[str]) -> Familiarity:
    """The vocabularies of the prompts ``sets`` per task ``groups`` (threshold 0)."""
    names = sorted(set(groups))
    empty = np.zeros(0, dtype=np.uint32)
    vocab = {
        g: np.unique(
            np.concatenate([empty, *(s for s, x in zip(sets, groups, strict=True) if x == g)])
        )
        for g in names
    }
    tokens = np.unique(np.concatenate([*vocab.values(), empty])).astype(np.uint32)
    known = np.zeros((len(tokens), len(names)), dtype=bool)
    for j, g in enumerate(names):
        known[np.searchsorted(tokens, vocab[g]), j] = True
    return Familiarity(tokens, known, names)


def train(sets: list[TokenArray], groups: list[str], fid: npt.NDArray[np.int_]) -> Familiarity:
    """Vocabularies of every prompt, with the threshold measured out of fold: the
    ``QUANTILE`` of held-back prompts' familiarity to the other folds' vocabularies."""
    scores = oof_scores(sets, groups, fid)
    fam = fit(sets, groups)
    fam.threshold = float(np.quantile(scores, QUANTILE)) if len(scores) else 0.0
    return fam


def oof_scores(
    sets: list[TokenArray], groups: list[str], fid: npt.NDArray[np.int_]
) -> npt.NDArray[np.float64]:
    """Each prompt's familiarity to vocabularies built without its fold."""
    out = np.zeros(len(sets))
    for f in np.unique(fid):
        tr = np.where(fid != f)[0]
        fam = fit([sets[i] for i in tr], [groups[i] for i in tr])
        for i in np.where(fid == f)[0]:
            out[i] = fam.score(sets[i])
    return out

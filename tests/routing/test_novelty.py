"""Prompts unlike the training prompts: measured out of fold, sent to the safe model."""

import numpy as np

from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.calibrate import fold_ids, train_artifact
from modelmix.routing.learned.features import feature_matrix, featurize
from modelmix.routing.learned.novelty import (
    fit_centroids,
    oof_threshold,
    similarity,
    similarity_matrix,
)
from modelmix.routing.learned.strategy import LearnedStrategy
from tests.routing.test_learned import decide, synthetic

STRANGE = "Translate into French: the weather in Lyon is grey, les nuages sont bas aujourd'hui."


def test_similarity_of_one_prompt_matches_the_matrix_form():
    data = synthetic(n=60)
    X = feature_matrix(data.prompts)
    C = fit_centroids(X, k=4)
    assert np.allclose(np.linalg.norm(C, axis=1), 1.0, atol=1e-5)
    sims = similarity_matrix(X[:5], C)
    for i in range(5):
        assert abs(similarity(featurize(data.prompts[i]), C) - sims[i]) < 1e-5
    threshold = oof_threshold(X, fold_ids(60, 3, 0))
    assert 0.0 < threshold <= float(np.quantile(sims, 0.5))


def test_a_prompt_unlike_the_training_ones_gets_the_single_models_keeping_the_target(tmp_path):
    art = train_artifact(synthetic(n=160), folds=4, voters=["small"])
    path = tmp_path / "r.npz"
    art.save(path)
    again = load_artifact(path)
    assert again.centroids is not None and again.meta["ood_threshold"] > 0
    s = LearnedStrategy("r", ["small", "large"], again, quality_target=1.0)
    model, decision = decide(s, STRANGE)
    assert model == "large" and decision["out_of_distribution"]["served"] == "large"
    _model, usual = decide(s, "What is 15 plus 27?")
    assert "out_of_distribution" not in usual
    # a raw willingness to pay is the user's own price: no substitution
    raw = LearnedStrategy("r", ["small", "large"], again, wtp=1e-9)
    assert "out_of_distribution" not in decide(raw, STRANGE)[1]

"""Prompts unlike the training prompts: measured out of fold, sent to the safe model."""

import numpy as np

from modelmix.routing.learned import familiar
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


def test_familiarity_is_the_best_share_of_a_prompts_tokens_known_to_one_task():
    sets = familiar.token_sets(["the cat sat", "a dog ran", "the cat ran far"])
    fam = familiar.fit(sets, ["pets", "dogs", "pets"])
    assert fam.groups == ["dogs", "pets"]
    assert fam.score(featurize("the cat ran").tokens) == 1.0  # all three known to "pets"
    # "dog" is known to "dogs" only, "cat" to "pets" only: at best 2 of 3 tokens for one task
    assert abs(fam.score(featurize("cat dog ran").tokens) - 2 / 3) < 1e-9
    assert fam.score(featurize("zebra quokka").tokens) == 0.0
    assert fam.score(featurize("").tokens) == 1.0  # no words: nothing to judge
    again = familiar.Familiarity.unpack(fam.tokens, fam.packed(), fam.groups, 0.5)
    assert np.array_equal(again.known, fam.known) and again.threshold == 0.5


def test_familiarity_threshold_is_measured_out_of_fold():
    data = synthetic(n=80)
    sets = familiar.token_sets(data.prompts)
    fid = fold_ids(80, 4, 0)
    scores = familiar.oof_scores(sets, data.categories, fid)
    fam = familiar.train(sets, data.categories, fid)
    assert fam.threshold == float(np.quantile(scores, familiar.QUANTILE))
    # held-back prompts of a known task are mostly familiar; a new task is not
    assert np.median(scores) > 0.8
    assert fam.is_unfamiliar(featurize(STRANGE).tokens) is not None
    assert fam.is_unfamiliar(featurize("What is 11 plus 4?").tokens) is None


def test_an_unfamiliar_prompt_is_flagged_by_the_saved_artifact_and_the_profile_router(tmp_path):
    art = train_artifact(synthetic(n=160), folds=4, voters=["small"])
    path = tmp_path / "r.npz"
    art.save(path)
    again = load_artifact(path)
    assert again.familiarity is not None and art.familiarity is not None
    assert np.array_equal(again.familiarity.tokens, art.familiarity.tokens)
    assert again.familiarity.groups == ["easy", "hard"]
    assert again.familiarity.threshold == art.familiarity.threshold
    note = again.is_novel(featurize(STRANGE))
    assert note is not None and note["familiarity"] < note["threshold"]
    profiles = again.meta["model_quality"]
    s = LearnedStrategy("p", ["small", "large"], again, quality_target=1.0, profiles=profiles)
    model, decision = decide(s, STRANGE)
    assert model == "large" and decision["out_of_distribution"]["served"] == "large"
    assert "out_of_distribution" not in decide(s, "What is 15 plus 27?")[1]

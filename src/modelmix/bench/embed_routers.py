"""The embedding-based routers in the routing benchmark (``routing.learned.knn``).

Per fold: the k nearest training prompts in the shipped static MiniLM embedding decide
(``knn``), alone and blended half and half with the fold's learned quality heads
(``knn+heads``), and the clusters of the training prompts with their per-cluster model scores
(``cluster``, ``routing.learned.clusters``), swept over the same relative thresholds as the
per-category prior.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.clusters import ClusterRouter
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.embedding import default_embedding
from modelmix.routing.learned.knn import KnnRouter

#: Thresholds swept (share of the best estimated quality a choice must reach).
KNN_TARGETS = tuple(float(x) for x in np.linspace(0.5, 1.0, 26))
#: Clusters of the ``cluster`` router.
CLUSTERS = 32


def embed_prompts(data: RoutingData) -> np.ndarray:
    """Every prompt's embedding (rows in data order)."""
    return default_embedding().embed_many(data.prompts)


def embedding_routers(
    emb: np.ndarray,
    train_rows: np.ndarray,
    data: RoutingData,
    test: np.ndarray,
    artifact: RouterArtifact,
    run_of: Callable[..., Any],
) -> None:
    """Replay ``knn``, ``knn+heads`` and ``cluster`` over the held-out ``test`` rows, trained
    on ``train_rows`` of the same data."""
    if list(artifact.models) != list(data.models):
        raise ValueError("the artifact's models differ from the data's")
    router = KnnRouter(emb[train_rows], data.score[train_rows], data.cost[train_rows])
    clusters = ClusterRouter.fit(
        emb[train_rows], data.score[train_rows], data.cost[train_rows], CLUSTERS
    )
    heads = {int(i): artifact.predict(artifact.featurize(data.prompts[int(i)]))[0] for i in test}
    for t in KNN_TARGETS:
        alone = run_of("knn", f"t={t:.2f}", "baseline", t)
        both = run_of("knn+heads", f"t={t:.2f}", "baseline", t)
        grouped = run_of("cluster", f"t={t:.2f}", "baseline", t)
        for i in test:
            i = int(i)
            j = clusters.choose(emb[i], t)
            grouped.add(float(data.score[i, j]), float(data.cost[i, j]), [data.models[j]], False, i)
            for run, other in ((alone, None), (both, heads[i])):
                j = router.choose(emb[i], t, other)
                run.add(float(data.score[i, j]), float(data.cost[i, j]), [data.models[j]], False, i)

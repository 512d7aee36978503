"""Recommenders over an implicit-feedback user x item matrix (scikit-learn style estimators).

``MODELS`` maps a registry name to its class; ``make_model(name, **params)`` builds one. Every
model has ``fit(X, **context)``, ``recommend(X, rows, k, exclude)`` and ``explain(X, rows, items)``.
"""

from ml.recommend.base import InteractionData, Recommender
from ml.recommend.blend import Blend
from ml.recommend.content import ContentBased
from ml.recommend.factor import ALS, BPR
from ml.recommend.knn import ItemKNN, UserKNN
from ml.recommend.linear import EASE
from ml.recommend.neural import TwoTower
from ml.recommend.popularity import Popularity
from ml.recommend.rerank import ContextReranker

MODELS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "item_knn": ItemKNN,
    "user_knn": UserKNN,
    "als": ALS,
    "bpr": BPR,
    "ease": EASE,
    "content": ContentBased,
    "two_tower": TwoTower,
    "context": ContextReranker,
    "blend": Blend,
}


def make_model(name: str, **params: object) -> Recommender:
    """Build a model by registry name, e.g. ``make_model("item_knn", neighbours=50)``."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**params)  # type: ignore[arg-type]


__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "MODELS",
    "Blend",
    "ContentBased",
    "ContextReranker",
    "InteractionData",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "TwoTower",
    "UserKNN",
    "make_model",
]

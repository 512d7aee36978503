"""Recommenders over an implicit-feedback user x item matrix (scikit-learn style estimators)."""

from ml.recommend.base import InteractionData, Recommender
from ml.recommend.knn import ItemKNN
from ml.recommend.popularity import Popularity

MODELS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "item_knn": ItemKNN,
}


def make_model(name: str, **params: object) -> Recommender:
    """Build a model by registry name, e.g. ``make_model("item_knn", neighbours=50)``."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**params)  # type: ignore[arg-type]


__all__ = ["MODELS", "InteractionData", "ItemKNN", "Popularity", "Recommender", "make_model"]

"""Matrix factorisation through the ``implicit`` library (CPU): ALS and BPR.

We do not re-implement the solvers; these classes wrap them in the scikit-learn style of this
package, limit threads (``num_threads`` for implicit, BLAS pinned to one thread while fitting, as
implicit recommends), and handle users unseen at fit time: ALS solves the exact least-squares
user step against the learned item factors (fold-in); BPR, which has no such step, uses a ridge
projection of the user's history onto its item factors.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.recommend.base import Recommender, binarize, explain_by_item_vectors, lookup_rows, row_keys


class _ImplicitFactors(Recommender):
    """Shared fit/score logic; subclasses build the implicit model and fold in new users."""

    @abstractmethod
    def _model(self) -> Any:
        """A fresh implicit model with this estimator's hyper-parameters."""

    @abstractmethod
    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        """User factors (n_rows, d) for histories not seen at fit time."""

    def _input(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(X, dtype=np.float32)

    def fit(self, X: sp.csr_matrix, **context: Any) -> _ImplicitFactors:
        import warnings

        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # BLAS is limited to one thread here; implicit's check also sees libraries it does not use
            warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
            model = self._model()
            model.fit(self._input(X), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)  # (n_users, d)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)  # (n_items, d)
        self.keys_ = row_keys(X)
        self._fit_fallback(X)
        return self

    def user_vectors(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """(len(rows), d) user factors: learned ones for histories seen at fit, fold-in otherwise."""
        found = lookup_rows(self.keys_, X, rows)
        U = np.zeros((len(rows), self.item_factors_.shape[1]), dtype=np.float32)
        known = found >= 0
        U[known] = self.user_factors_[found[known]]
        if (~known).any():
            U[~known] = self._fold_in(sp.csr_matrix(X[np.asarray(rows)[~known]]))
        return U

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return self.user_vectors(X, rows) @ self.item_factors_.T

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        """The history item whose factor is closest (dot product) to the recommended item's."""
        return explain_by_item_vectors(X, rows, items, self.item_factors_)


class ALS(_ImplicitFactors):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) via ``implicit``: confidence
    ``1 + alpha * x_ui``; ``binary`` uses the interaction pattern instead of the weights."""

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.1,
        alpha: float = 1.0,
        iterations: int = 15,
        binary: bool = False,
        num_threads: int = 2,
        random_state: int = 42,
    ):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.binary = binary
        self.num_threads = num_threads
        self.random_state = random_state

    def _model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            num_threads=self.num_threads,
            random_state=self.random_state,
        )

    def _input(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return binarize(X) if self.binary else sp.csr_matrix(X, dtype=np.float32)

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        import warnings

        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
            m = AlternatingLeastSquares(
                factors=self.item_factors_.shape[1],
                regularization=self.regularization,
                alpha=self.alpha,
                num_threads=self.num_threads,
            )
            m.item_factors = self.item_factors_
            U = m.recalculate_user(np.arange(X.shape[0]), self._input(X))
        return np.asarray(U, dtype=np.float32)


class BPR(_ImplicitFactors):
    """Bayesian personalised ranking (Rendle et al. 2009) via ``implicit`` on the binary
    interaction pattern (BPR ignores weights)."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        fold_in_l2: float = 1.0,
        num_threads: int = 2,
        random_state: int = 42,
    ):
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.fold_in_l2 = fold_in_l2
        self.num_threads = num_threads
        self.random_state = random_state

    def _input(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return binarize(X)

    def _model(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=self.num_threads,
            random_state=self.random_state,
        )

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        # implicit's BPR item factors carry a bias column (the user side holds a constant 1)
        Y = self.item_factors_[:, :-1].astype(np.float64)
        A = Y.T @ Y + self.fold_in_l2 * np.eye(Y.shape[1])
        U = np.linalg.solve(A, (binarize(X) @ Y).T).T
        return np.hstack([U, np.ones((X.shape[0], 1))]).astype(np.float32)

"""A two-tower retrieval model in TensorFlow/Keras 3, trained like a denoising autoencoder.

User tower: the user's L2-normalised history (n_items multi-hot, input dropout) and optional
user features (n_users, d_u) -> Dense(hidden, tanh) -> Dense(dim).
Item tower: a free item embedding plus a linear map of item features (categories/tags/genres)
-> (n_items, dim), plus an item bias.
Score: dot(user, item) + bias; trained with the multinomial likelihood over all items
(softmax cross-entropy against the user's normalised history, as in Mult-DAE).

Validation split and early stopping: ``validation_users`` of the users are held out; their
history is split into a fold-in part (input) and a held-out part (target) and Keras'
``EarlyStopping`` watches the loss on those held-out items, restoring the best epoch.

After fitting, the weights are copied into NumPy arrays, so scoring, pickling and the smoke
load never import TensorFlow. Users unseen at fit time are scored from their history (their
user features are unknown and set to zero).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.evaluate.splits import holdout_matrix
from ml.recommend.base import Recommender, binarize, explain_by_item_vectors, lookup_rows, row_keys


def _l2_rows_dense(M: np.ndarray) -> np.ndarray:
    return M / np.maximum(np.linalg.norm(M, axis=1, keepdims=True), 1e-12)


class TwoTower(Recommender):
    name = "two_tower"

    def __init__(
        self,
        dim: int = 64,
        hidden: int = 256,
        dropout: float = 0.5,
        epochs: int = 50,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        l2: float = 1e-6,
        validation_users: float = 0.1,
        holdout: float = 0.25,
        patience: int = 4,
        num_threads: int = 2,
        seed: int = 42,
    ):
        self.dim = dim
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.validation_users = validation_users
        self.holdout = holdout
        self.patience = patience
        self.num_threads = num_threads
        self.seed = seed

    def fit(self, X: sp.csr_matrix, **context: Any) -> TwoTower:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.num_threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # TensorFlow already initialised in this process: keep its thread pools
        keras.utils.set_random_seed(self.seed)
        rng = np.random.default_rng(self.seed)

        n_users, n_items = X.shape
        B = binarize(X)
        F = context.get("item_features")
        F_dense = None if F is None else np.asarray(sp.csr_matrix(F, dtype=np.float32).todense())
        if F_dense is not None and F_dense.shape[0] != n_items:
            raise ValueError(f"two_tower: item_features has {F_dense.shape[0]} rows but X has {n_items} items")
        U = context.get("user_features")
        U_dense = None if U is None else np.asarray(U, dtype=np.float32)
        if U_dense is not None and U_dense.shape[0] != n_users:
            raise ValueError(f"two_tower: user_features has {U_dense.shape[0]} rows but X has {n_users} users")
        d_u = 0 if U_dense is None else U_dense.shape[1]

        # validation users: fold-in part as input, held-out part as target
        active = np.flatnonzero(np.diff(B.indptr) >= 2)
        n_val = round(self.validation_users * len(active)) if len(active) >= 10 else 0
        val_users = rng.choice(active, size=n_val, replace=False) if n_val else np.zeros(0, np.int64)
        train_users = np.setdiff1d(np.arange(n_users), val_users)
        train_users = train_users[np.diff(B.indptr)[train_users] > 0]
        fold_in, held = holdout_matrix(B[val_users], self.holdout, rng)
        has_target = np.diff(held.indptr) > 0
        ufeat = (lambda idx: U_dense[idx]) if U_dense is not None else (lambda idx: np.zeros((len(idx), 0), np.float32))

        class Batches(keras.utils.PyDataset):
            def __init__(
                self, inputs: sp.csr_matrix, targets: sp.csr_matrix, users: np.ndarray, size: int, shuffle: bool
            ):
                super().__init__()
                self.inputs, self.targets, self.users, self.size, self.shuffle = inputs, targets, users, size, shuffle
                self.order = np.arange(inputs.shape[0])

            def __len__(self) -> int:
                return max(1, int(np.ceil(self.inputs.shape[0] / self.size)))

            def __getitem__(self, i: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
                idx = self.order[i * self.size : (i + 1) * self.size]
                x = _l2_rows_dense(np.asarray(self.inputs[idx].todense(), dtype=np.float32))
                y = np.asarray(self.targets[idx].todense(), dtype=np.float32)
                y /= np.maximum(y.sum(axis=1, keepdims=True), 1e-12)
                return (x, ufeat(self.users[idx])), y

            def on_epoch_end(self) -> None:
                if self.shuffle:
                    rng.shuffle(self.order)

        model, item_tower = self._network(keras, n_items, d_u, F_dense)
        train = Batches(B[train_users], B[train_users], train_users, self.batch_size, shuffle=True)
        callbacks = []
        validation = None
        if has_target.any():
            v_users = val_users[has_target]
            validation = Batches(fold_in[has_target], held[has_target], v_users, self.batch_size, shuffle=False)
            callbacks.append(
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
            )
        history = model.fit(train, validation_data=validation, epochs=self.epochs, callbacks=callbacks, verbose=0)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.epochs_trained_ = len(self.history_.get("loss", []))

        self._keep_weights(model, item_tower, d_u)
        self.user_features_ = U_dense
        self.keys_ = row_keys(X)
        self._fit_fallback(X)
        return self

    def _network(self, keras: Any, n_items: int, d_u: int, F_dense: np.ndarray | None) -> tuple[Any, Any]:
        """The compiled two-tower Keras model (history and user features -> user vector; item
        tower -> logits over every item) and its item tower."""
        reg = keras.regularizers.L2(self.l2)
        hist_in = keras.Input(shape=(n_items,), name="history")
        user_in = keras.Input(shape=(d_u,), name="user_features")
        h = keras.layers.Dropout(self.dropout)(hist_in)
        h = keras.layers.Dense(self.hidden, kernel_regularizer=reg, name="history_proj")(h)
        if d_u:
            h = keras.layers.Add()([h, keras.layers.Dense(self.hidden, use_bias=False, name="user_proj")(user_in)])
        h = keras.layers.Activation("tanh")(h)
        user_vec = keras.layers.Dense(self.dim, kernel_regularizer=reg, name="user_out")(h)
        item_tower = _item_tower(n_items, self.dim, F_dense, self.l2, name="item_tower")
        model = keras.Model([hist_in, user_in], item_tower(user_vec))
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        )
        return model, item_tower

    def _keep_weights(self, model: Any, item_tower: Any, d_u: int) -> None:
        """Copy the trained weights out as NumPy arrays (scoring needs no TensorFlow)."""
        W = {w.path: np.asarray(w.numpy()) for w in model.weights}

        def get(suffix: str) -> np.ndarray:
            return next(v for k, v in W.items() if k.endswith(suffix))

        self.w_hist_ = get("history_proj/kernel").astype(np.float32)  # (n_items, hidden)
        self.b_hist_ = get("history_proj/bias").astype(np.float32)  # (hidden,)
        self.w_user_ = get("user_proj/kernel").astype(np.float32) if d_u else None  # (d_u, hidden)
        self.w_out_ = get("user_out/kernel").astype(np.float32)  # (hidden, dim)
        self.b_out_ = get("user_out/bias").astype(np.float32)  # (dim,)
        self.item_vectors_ = item_tower.item_matrix().numpy().astype(np.float32)  # (n_items, dim)
        self.item_bias_ = get("item_tower/item_bias").ravel().astype(np.float32)  # (n_items,)

    def user_vectors(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """(len(rows), dim) user-tower outputs, computed with NumPy from the fitted weights."""
        x = _l2_rows_dense(np.asarray(binarize(X[rows]).todense(), dtype=np.float32))
        h = x @ self.w_hist_ + self.b_hist_
        if self.w_user_ is not None and self.user_features_ is not None:
            found = lookup_rows(self.keys_, X, rows)
            uf = np.zeros((len(rows), self.w_user_.shape[0]), np.float32)
            uf[found >= 0] = self.user_features_[found[found >= 0]]
            h = h + uf @ self.w_user_
        return np.tanh(h) @ self.w_out_ + self.b_out_

    def _score(self, X: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        return self.user_vectors(X, rows) @ self.item_vectors_.T + self.item_bias_[None, :]

    def explain(self, X: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> list[list[dict[str, Any]]]:
        return explain_by_item_vectors(X, rows, items, self.item_vectors_)


def _item_tower_class() -> Any:
    import keras

    class ItemTower(keras.layers.Layer):
        """Item vectors = free embedding + features @ W (n_items, dim); logits = u V^T + b."""

        def __init__(self, n_items: int, dim: int, features: np.ndarray | None, l2: float, **kw: Any):
            super().__init__(**kw)
            self.n_items, self.dim, self.l2 = n_items, dim, l2
            self.features = None if features is None else keras.ops.convert_to_tensor(features)

        def build(self, input_shape: Any) -> None:
            reg = keras.regularizers.L2(self.l2)
            self.item_embedding = self.add_weight(
                name="item_embedding", shape=(self.n_items, self.dim), initializer="glorot_uniform", regularizer=reg
            )
            self.item_bias = self.add_weight(name="item_bias", shape=(self.n_items,), initializer="zeros")
            if self.features is not None:
                self.feature_map = self.add_weight(
                    name="feature_map", shape=(int(self.features.shape[1]), self.dim), initializer="glorot_uniform"
                )

        def item_matrix(self) -> Any:
            V = self.item_embedding
            if self.features is not None:
                V = V + keras.ops.matmul(self.features, self.feature_map)
            return V

        def call(self, user_vec: Any) -> Any:
            return keras.ops.matmul(user_vec, keras.ops.transpose(self.item_matrix())) + self.item_bias

    return ItemTower


def _item_tower(n_items: int, dim: int, features: np.ndarray | None, l2: float, name: str) -> Any:
    return _item_tower_class()(n_items, dim, features, l2, name=name)

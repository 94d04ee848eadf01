"""Fast, exact prediction of a fitted HistGradientBoostingRegressor for ``recommend()``.

scikit-learn predicts tree by tree in a Python loop (about 0.05 ms per tree per call, whatever
the batch), so ranking hundreds of candidates with 200-tree ensembles costs tens of ms. Here the
ensemble is rewritten as leaves with their path conditions: a row lands in leaf L when every
split on L's path sends it the right way, so with ``d[j]`` = 1 if split j sends the row left,

    pred(x) = baseline + sum_L value[L] * [ paths[L] @ d == left turns on L's path ]

with ``paths[L, j]`` = +1 / -1 for a left / right turn: one sparse product. For ``recommend()``
the split nodes are partitioned: those on config features are decided once per candidate table
(:meth:`LeafEnsemble.partial`), those on context features once per call, and the prediction of
every candidate is one sparse mat-vec.

It reads the fitted trees (``_predictors``, ``_baseline_prediction``, ``_loss``): private
scikit-learn attributes, stable since 0.21; tests check the output equals ``model.predict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingRegressor


def _decide(x: np.ndarray, threshold: np.ndarray, missing_left: np.ndarray) -> np.ndarray:
    """True where the split sends the value left (HistGradientBoosting's numeric rule)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(x), missing_left, x <= threshold)


@dataclass(frozen=True)
class LeafEnsemble:
    """A tree ensemble as leaves (rows of ``paths``) over split nodes (columns).

    ``paths[L, j]`` is +1 where leaf L's path goes left at split j, -1 where it goes right, so
    with ``d`` the 0/1 "goes left" decisions a row is in leaf L iff ``paths[L] @ d`` equals the
    number of left turns on L's path (``lefts[L]``).
    """

    feature: np.ndarray  # (n_splits,) feature index of each split node
    threshold: np.ndarray  # (n_splits,)
    missing_left: np.ndarray  # (n_splits,) bool
    paths: sparse.csr_matrix  # (n_leaves, n_splits) +1 left / -1 right turns
    lefts: np.ndarray  # (n_leaves,) left turns per path
    value: np.ndarray  # (n_leaves,)
    baseline: float

    @classmethod
    def from_model(cls, model: HistGradientBoostingRegressor) -> LeafEnsemble:
        """Rewrite a fitted single-output regressor with numeric features and identity link.

        Raises:
            ValueError: Categorical splits or a loss with a non-identity link.
        """
        if type(model._loss.link).__name__ != "IdentityLink":
            raise ValueError(f"only identity-link losses can be rewritten, not {model.loss!r}")
        feature, threshold, missing_left, value = [], [], [], []
        rows, cols, signs = [], [], []
        for (predictor,) in model._predictors:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            stack: list[tuple[int, list[tuple[int, float]]]] = [(0, [])]
            while stack:
                idx, path = stack.pop()
                node = nodes[idx]
                if node["is_leaf"]:
                    for split, sign in path:
                        rows.append(len(value))
                        cols.append(split)
                        signs.append(sign)
                    value.append(float(node["value"]))
                    continue
                split = len(feature)
                feature.append(int(node["feature_idx"]))
                threshold.append(float(node["num_threshold"]))
                missing_left.append(bool(node["missing_go_to_left"]))
                stack.append((int(node["left"]), [*path, (split, 1.0)]))
                stack.append((int(node["right"]), [*path, (split, -1.0)]))
        paths = sparse.csr_matrix((signs, (rows, cols)), shape=(len(value), len(feature)))
        return cls(
            np.array(feature, dtype=np.intp),
            np.array(threshold),
            np.array(missing_left, dtype=bool),
            paths,
            _lefts(paths),
            np.array(value),
            float(np.ravel(model._baseline_prediction)[0]),
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``X`` (n, n_features); equal to the source model's."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        dec = _decide(X[:, self.feature], self.threshold, self.missing_left)  # (n, n_splits)
        in_leaf = (self.paths @ dec.T.astype(float)) == self.lefts[:, None]  # (n_leaves, n)
        return self.baseline + self.value @ in_leaf

    def partial(self, config_block: np.ndarray, n_context: int) -> PartialEnsemble:
        """Decide the config-feature splits for fixed candidates (rows of ``config_block``,
        whose columns are features ``n_context`` onward)."""
        on_cfg = self.feature >= n_context
        cfg, ctx = np.flatnonzero(on_cfg), np.flatnonzero(~on_cfg)
        dec = _decide(
            config_block[:, self.feature[cfg] - n_context], self.threshold[cfg], self.missing_left[cfg]
        )  # (n_candidates, n_cfg_splits)
        cfg_paths = self.paths[:, cfg]
        cfg_ok = (cfg_paths @ dec.T.astype(float)) == _lefts(cfg_paths)[:, None]  # (n_leaves, n_candidates)
        ctx_paths = self.paths[:, ctx].tocsr()
        return PartialEnsemble(
            self.baseline,
            self.value,
            self.feature[ctx],
            self.threshold[ctx],
            self.missing_left[ctx],
            ctx_paths,
            _lefts(ctx_paths),
            sparse.csr_matrix(cfg_ok.T, dtype=float),
        )


def _lefts(paths: sparse.csr_matrix) -> np.ndarray:
    """Left turns per leaf path (count of +1 entries per row)."""
    return np.asarray((paths > 0).sum(axis=1)).ravel().astype(float)


@dataclass(frozen=True)
class PartialEnsemble:
    """A :class:`LeafEnsemble` with its config splits decided for one candidate table."""

    baseline: float
    value: np.ndarray  # (n_leaves,)
    feature: np.ndarray  # (n_ctx_splits,) context splits only
    threshold: np.ndarray
    missing_left: np.ndarray
    ctx_paths: sparse.csr_matrix  # (n_leaves, n_ctx_splits)
    ctx_lefts: np.ndarray  # (n_leaves,)
    cfg_ok: sparse.csr_matrix  # (n_candidates, n_leaves) 1 where the config conditions hold

    def predict(self, context: np.ndarray) -> np.ndarray:
        """(n_candidates,) predictions for one context vector (the first features of a row)."""
        dec = _decide(context[self.feature], self.threshold, self.missing_left).astype(float)
        ctx_ok = (self.ctx_paths @ dec) == self.ctx_lefts  # (n_leaves,)
        return self.baseline + self.cfg_ok @ np.where(ctx_ok, self.value, 0.0)

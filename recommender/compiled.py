"""Fast, exact prediction of a fitted HistGradientBoostingRegressor for ``recommend()``.

scikit-learn predicts tree by tree in a Python loop (about 0.05 ms per tree per call, whatever
the batch), so ranking hundreds of candidates with 200-tree ensembles costs tens of ms. Here the
ensemble is rewritten as leaves with their path conditions: a row lands in leaf L when every
split on L's path sends it the right way, so with ``d[j]`` = 1 if split j sends the row left,

    pred(x) = baseline + sum_L value[L] * [ paths[L] @ d == left turns on L's path ]

with ``paths[L, j]`` = +1 / -1 for a left / right turn: one sparse product. For ``recommend()``
the split nodes are partitioned: those on config features are decided once per candidate table
(:meth:`LeafEnsemble.partial`), those on context features once per call. A candidate's config
leaves each tree only a few leaves it can land in; candidates that are left the same leaves of a
tree form a class, so per call each class gets one value (the sum over its leaves that the
context allows) and each candidate sums one class value per tree: a sparse product with one
entry per candidate and tree, where a product over (candidate, leaf) pairs would have half of all
pairs. Leaves whose path has no context split add a per-candidate constant, summed once.

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
    tree: np.ndarray  # (n_leaves,) index of the tree each leaf belongs to

    @classmethod
    def from_model(cls, model: HistGradientBoostingRegressor) -> LeafEnsemble:
        """Rewrite a fitted single-output regressor with numeric features and identity link.

        Raises:
            ValueError: Categorical splits or a loss with a non-identity link.
        """
        if type(model._loss.link).__name__ != "IdentityLink":
            raise ValueError(f"only identity-link losses can be rewritten, not {model.loss!r}")
        feature, threshold, missing_left, value, tree = [], [], [], [], []
        rows, cols, signs = [], [], []
        for t, (predictor,) in enumerate(model._predictors):
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
                    tree.append(t)
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
            np.array(tree, dtype=np.intp),
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``X`` (n, n_features); equal to the source model's."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        dec = _decide(X[:, self.feature], self.threshold, self.missing_left)  # (n, n_splits)
        in_leaf = (self.paths @ dec.T.astype(float)) == self.lefts[:, None]  # (n_leaves, n)
        return self.baseline + self.value @ in_leaf

    def partial(self, config_block: np.ndarray, n_context: int) -> PartialEnsemble:
        """Decide the config-feature splits for fixed candidates (rows of ``config_block``,
        whose columns are features ``n_context`` onward), and group candidates into classes."""
        on_cfg = self.feature >= n_context
        cfg, ctx = np.flatnonzero(on_cfg), np.flatnonzero(~on_cfg)
        dec = _decide(
            config_block[:, self.feature[cfg] - n_context], self.threshold[cfg], self.missing_left[cfg]
        )  # (n_candidates, n_cfg_splits)
        cfg_paths = self.paths[:, cfg]
        cfg_ok = (cfg_paths @ dec.T.astype(float)) == _lefts(cfg_paths)[:, None]  # (n_leaves, n_candidates)
        ctx_paths = self.paths[:, ctx].tocsr()
        n_candidates = cfg_ok.shape[1]
        fixed = np.diff(ctx_paths.indptr) == 0  # no context split on the path: always allowed
        constant = self.value[fixed] @ cfg_ok[fixed]  # (n_candidates,)
        # Per tree, the context-dependent leaves each candidate's config allows, as a class.
        class_rows, class_cols = [], []  # class -> its leaves
        member_rows, member_cols = [], []  # candidate -> its class (one per tree)
        dynamic = ~fixed
        n_classes = 0
        for t in np.unique(self.tree[dynamic]):
            leaves = np.flatnonzero(dynamic & (self.tree == t))
            masks, member = _distinct_rows(cfg_ok[leaves].T)
            for m, mask in enumerate(masks):
                if not mask.any():
                    continue  # this config lands in a fixed leaf of tree t whatever the context
                class_rows.extend([n_classes] * int(mask.sum()))
                class_cols.extend(leaves[mask].tolist())
                who = np.flatnonzero(member == m)
                member_rows.extend(who.tolist())
                member_cols.extend([n_classes] * who.size)
                n_classes += 1
        classes = sparse.csr_matrix(
            (np.ones(len(class_rows)), (class_rows, class_cols)), shape=(n_classes, self.value.size)
        )
        members = sparse.csr_matrix(
            (np.ones(len(member_rows)), (member_rows, member_cols)), shape=(n_candidates, n_classes)
        )
        return PartialEnsemble(
            self.baseline,
            self.value,
            self.feature[ctx],
            self.threshold[ctx],
            self.missing_left[ctx],
            ctx_paths,
            _lefts(ctx_paths),
            classes,
            members,
            constant,
        )


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix and each row's index among them (as ``np.unique``
    with ``axis=0``, which is several times slower: rows of up to 62 bits are packed into
    integers first)."""
    if rows.shape[1] > 62:
        masks, member = np.unique(rows, axis=0, return_inverse=True)
        return masks, member.ravel()
    codes = rows.astype(np.int64) @ (np.int64(1) << np.arange(rows.shape[1], dtype=np.int64))
    _, first, member = np.unique(codes, return_index=True, return_inverse=True)
    return rows[first], member.ravel()


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
    classes: sparse.csr_matrix  # (n_classes, n_leaves) 1 for the leaves a class's configs allow
    members: sparse.csr_matrix  # (n_candidates, n_classes) 1 for the candidate's class in a tree
    constant: np.ndarray  # (n_candidates,) sum of the leaves without context splits

    def predict(self, context: np.ndarray) -> np.ndarray:
        """(n_candidates,) predictions for one context vector (the first features of a row)."""
        dec = _decide(context[self.feature], self.threshold, self.missing_left).astype(float)
        ctx_ok = (self.ctx_paths @ dec) == self.ctx_lefts  # (n_leaves,)
        per_class = self.classes @ np.where(ctx_ok, self.value, 0.0)
        return self.baseline + self.constant + self.members @ per_class

"""The rewritten tree ensemble predicts exactly what scikit-learn predicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from recommender.compiled import LeafEnsemble, _distinct_rows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((400, 9))
    X[rng.random(X.shape) < 0.2] = np.nan  # missing values take each split's learned side
    y = np.nan_to_num(X[:, 0]) + np.sin(5 * np.nan_to_num(X[:, 6])) + 0.1 * rng.random(400)
    X_new = rng.random((120, 9))
    X_new[rng.random(X_new.shape) < 0.3] = np.nan
    return X, y, X_new


@pytest.mark.parametrize("loss", [{}, {"loss": "quantile", "quantile": 0.1}, {"loss": "absolute_error"}])
def test_full_prediction_equals_sklearn(data, loss):
    X, y, X_new = data
    model = HistGradientBoostingRegressor(
        max_iter=40, max_leaf_nodes=11, early_stopping=False, random_state=0, **loss
    ).fit(X, y)
    np.testing.assert_allclose(
        LeafEnsemble.from_model(model).predict(X_new), model.predict(X_new), rtol=0, atol=1e-12
    )


# 0: every split on config features (all leaves fixed per candidate); 9: none (one class each)
@pytest.mark.parametrize("n_context", [0, 1, 5, 9])
def test_partial_prediction_equals_sklearn(data, n_context):
    X, y, X_new = data
    model = HistGradientBoostingRegressor(max_iter=40, early_stopping=False, random_state=0).fit(X, y)
    partial = LeafEnsemble.from_model(model).partial(X_new[:, n_context:], n_context)
    for row in (0, 7):  # one context vector against every candidate's config features
        context = X_new[row, :n_context]
        full = np.hstack([np.tile(context, (len(X_new), 1)), X_new[:, n_context:]])
        np.testing.assert_allclose(partial.predict(context), model.predict(full), rtol=0, atol=1e-12)


def test_non_identity_link_is_refused(data):
    X, y, _ = data
    model = HistGradientBoostingRegressor(max_iter=3, loss="poisson").fit(np.nan_to_num(X), np.abs(y) + 0.1)
    with pytest.raises(ValueError, match="identity-link"):
        LeafEnsemble.from_model(model)


@pytest.mark.parametrize("width", [3, 62, 63, 70])
def test_distinct_rows_packs_narrow_rows_and_falls_back_for_wide_ones(width):
    rng = np.random.default_rng(width)
    base = rng.random((6, width)) < 0.5
    rows = base[rng.integers(0, 6, size=50)]
    masks, member = _distinct_rows(rows)
    assert len({m.tobytes() for m in masks}) == len(masks) == len({r.tobytes() for r in rows})
    np.testing.assert_array_equal(masks[member], rows)

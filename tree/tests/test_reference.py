"""The level-by-level builder grows exactly the tree of a plain recursive ID3 (reference.py)."""

import numpy as np
import pandas as pd
import pytest

from tree import ID3Classifier

from .reference import as_nested, c45_fractional, id3


def random_data(seed, n_rows, n_cat, n_num):
    """Categorical columns of 2-4 letters, small-integer numeric columns, 3 noisy classes."""
    rng = np.random.default_rng(seed)
    columns = {}
    for j in range(n_cat):
        columns[f"c{j}"] = rng.choice(list("abcd"[: rng.integers(2, 5)]), size=n_rows)
    for j in range(n_num):
        columns[f"n{j}"] = rng.integers(0, 6, size=n_rows).astype(float)
    X = pd.DataFrame(columns)
    signal = (X.iloc[:, 0] == "a").to_numpy() * 1 + (rng.random(n_rows) < 0.4)
    y = np.array(["no", "maybe", "yes"])[np.clip(signal + rng.integers(0, 2, n_rows), 0, 2)]
    return X, y


@pytest.mark.parametrize("criterion", ["entropy", "gain_ratio", "unweighted_entropy"])
@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_the_recursive_reference_on_random_categorical_data(criterion, seed):
    X, y = random_data(seed, n_rows=120, n_cat=5, n_num=0)
    clf = ID3Classifier(criterion=criterion).fit(X, y)
    expected = id3(list(X.itertuples(index=False)), y.tolist(), ["categorical"] * 5, criterion)
    assert as_nested(clf.root_, list(X.columns)) == expected


@pytest.mark.parametrize("criterion", ["entropy", "gain_ratio", "unweighted_entropy"])
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_the_reference_with_numeric_columns_too(criterion, seed):
    X, y = random_data(100 + seed, n_rows=90, n_cat=3, n_num=2)
    kinds = ["categorical"] * 3 + ["numeric"] * 2
    clf = ID3Classifier(criterion=criterion, log_base=10).fit(X, y)
    expected = id3(list(X.itertuples(index=False)), y.tolist(), kinds, criterion, base=10)
    assert as_nested(clf.root_, list(X.columns)) == expected


def test_predictions_match_a_walk_down_the_reference_tree():
    X, y = random_data(7, n_rows=150, n_cat=6, n_num=0)
    clf = ID3Classifier().fit(X, y)
    tree = id3(list(X.itertuples(index=False)), y.tolist(), ["categorical"] * 6)
    test, _ = random_data(8, n_rows=200, n_cat=6, n_num=0)

    def walk(node, row):
        while "children" in node and row[node["feature"]] in node["children"]:
            node = node["children"][row[node["feature"]]]
        counts = node["counts"]
        return min(counts, key=lambda c: (-counts[c], c))  # majority, first class on ties

    expected = [walk(tree, row) for row in test.itertuples(index=False)]
    assert clf.predict(test).tolist() == expected


def as_nested_weights(node, names):
    out = {"counts": {k: round(v, 9) for k, v in node.class_counts.items() if v > 1e-12}}
    if node.is_leaf:
        return out
    out["feature"] = names.index(node.feature)
    out["children"] = {k: as_nested_weights(c, names) for k, c in node.children.items()}
    return out


def rounded(node):
    out = {"counts": {k: round(v, 9) for k, v in node["counts"].items() if v > 1e-12}}
    if "children" in node:
        out["feature"] = node["feature"]
        out["children"] = {k: rounded(c) for k, c in node["children"].items()}
    return out


@pytest.mark.parametrize("seed", range(6))
def test_fractional_missing_values_agree_with_a_plain_c45(seed):
    X, y = random_data(200 + seed, n_rows=80, n_cat=4, n_num=0)
    holes = np.random.default_rng(seed).random(X.shape) < 0.15
    X = X.mask(holes, None)
    clf = ID3Classifier(missing="fractional").fit(X, y)
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in X.itertuples(index=False)]
    expected = c45_fractional(rows, y.tolist(), [1.0] * len(y))
    assert as_nested_weights(clf.root_, list(X.columns)) == rounded(expected)
    assert np.any(clf.tree_.counts % 1 > 1e-9)  # rows really were split by weight

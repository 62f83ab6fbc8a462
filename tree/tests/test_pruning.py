"""Pruning and stopping: C4.5's error-based pruning by hand, and scikit-learn's rules against it."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeClassifier

from tree import ID3Classifier
from tree._arrays import TreeArrays
from tree._c45prune import added_errors, prune_errors
from tree._encode import Encoded


def upper_limit_exact(e, n, cf):
    """The binomial upper confidence limit by bisection: P(X <= e | n, p) = cf."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        p = (lo + hi) / 2
        tail = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(e + 1))
        lo, hi = (p, hi) if tail > cf else (lo, p)
    return lo


def test_added_errors_is_the_binomial_upper_limit_of_c45():
    # E = 0: exact, 1 - CF^(1/N); the book's U_25%(0, 6) = 0.206
    for n in (1, 6, 9, 40):
        assert math.isclose((0 + added_errors(n, 0)) / n, upper_limit_exact(0, n, 0.25))
    # E >= 1: Release 8's normal approximation, within a few per cent of the exact limit
    for e, n in ((1, 16), (3, 20), (10, 50)):
        exact = upper_limit_exact(e, n, 0.25)
        assert abs((e + added_errors(n, e)) / n - exact) < 0.03 * exact
    assert round((1 + added_errors(16, 1)) / 16, 3) == 0.157  # the book's U_25%(1, 16)
    assert added_errors(10, 2, cf=0.1) > added_errors(10, 2, cf=0.25)  # lower CF, more errors


# Quinlan (1993), p. 41: under "physician fee freeze = n", "education spending" splits 16
# cases into leaves of 6 (n), 9 (y) and 1 (u) cases with no errors. Predicted errors:
#   6 U(0,6) + 9 U(0,9) + 1 U(0,1) = 6(0.206) + 9(0.143) + 1(0.750) = 3.273
# As one leaf (15 democrats, 1 republican): 16 U(1,16) = 16(0.157) = 2.512 < 3.273: prune.
EDUCATION = pd.DataFrame({"education": ["n"] * 6 + ["y"] * 9 + ["u"]})
PARTY = ["democrat"] * 15 + ["republican"]


def test_error_based_pruning_reproduces_quinlans_worked_example():
    grown = ID3Classifier().fit(EDUCATION, PARTY)
    assert grown.get_n_leaves() == 3
    pruned = ID3Classifier(prune="error").fit(EDUCATION, PARTY)
    assert pruned.root_.is_leaf
    assert pruned.root_.class_counts == {"democrat": 15, "republican": 1}
    subtree = sum(n * (added_errors(n, 0) / n) for n in (6, 9, 1))
    leaf = 1 + added_errors(16, 1)
    assert round(subtree, 3) == 3.273 and round(leaf, 2) == 2.51
    # with twice the cases in each leaf, the leaves' estimates fall below the single leaf's
    assert (
        not ID3Classifier(prune="error").fit(pd.concat([EDUCATION] * 3), PARTY * 3).root_.is_leaf
        or ID3Classifier(prune="error", confidence=0.99).fit(EDUCATION, PARTY).get_n_leaves() == 3
    )


def test_subtree_raising_replaces_a_node_by_its_largest_branch():
    # A hand-built tree: A at the root; A = x (12 cases) splits on B into pure leaves of 6
    # and 6; A = y is a leaf of 1 case. Estimates (CF 0.25):
    #   tree   = 6 U(0,6) + 6 U(0,6) + 1 U(0,1) = 1.238 + 1.238 + 0.750 = 3.226
    #   leaf   = 13 cases, 6 errors: far more
    #   branch = the B subtree with all 13 cases: 7 U(0,7) + 6 U(0,6) = 1.258 + 1.238 = 2.495
    # 2.495 <= 3.226 + 0.1, so B replaces A and its leaves hold 7 a and 6 b.
    a_codes = np.array([0] * 12 + [1])
    b_codes = np.array([0] * 6 + [1] * 6 + [0])
    y = np.array([0] * 6 + [1] * 6 + [0])
    enc = Encoded(
        codes=np.stack([a_codes, b_codes]).astype(np.uint8),
        n_values=np.array([2, 2]),
        numeric=np.array([False, False]),
        uniques=[None, None],
    )
    tree = TreeArrays(
        feature=np.array([0, 1, -1, -1, -1]),
        threshold=np.full(5, np.nan),
        counts=np.array([[7.0, 6], [6, 6], [1, 0], [6, 0], [0, 6]]),
        first_child=np.array([1, 3, -1, -1, -1]),
        n_children=np.array([2, 2, 0, 0, 0]),
        branch=np.array([-1, 0, 1, 0, 1]),
        parent=np.array([-1, 0, 0, 1, 1]),
        depth=np.array([0, 1, 1, 2, 2]),
        n_rows=np.array([13.0, 12, 1, 6, 6]),
    )
    branch = 7 * added_errors(7, 0) / 7 + added_errors(6, 0)
    assert round(branch, 3) == 2.495
    pruned = prune_errors(tree, enc, y, np.ones(13), 2, cf=0.25)
    assert pruned.feature.tolist() == [1, -1, -1]
    assert pruned.counts.tolist() == [[7, 6], [7, 0], [0, 6]]


def numeric_data(seed=0, n=120, d=4):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = ((X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.standard_normal(n)) > 0.8).astype(int)
    return X, y


def test_cost_complexity_path_and_pruning_match_scikit_learn():
    X, y = numeric_data()
    ours = ID3Classifier().cost_complexity_pruning_path(X, y)
    sk = DecisionTreeClassifier(criterion="entropy", random_state=0)
    theirs = sk.cost_complexity_pruning_path(X, y)
    assert np.allclose(np.unique(ours.ccp_alphas.round(12)), np.unique(theirs.ccp_alphas.round(12)))
    assert np.isclose(ours.impurities[0], theirs.impurities[0])
    assert np.isclose(ours.impurities[-1], theirs.impurities[-1])
    alpha = float(ours.ccp_alphas[len(ours.ccp_alphas) // 2])
    pruned = ID3Classifier(ccp_alpha=alpha).fit(X, y)
    sk_pruned = DecisionTreeClassifier(criterion="entropy", ccp_alpha=alpha, random_state=0)
    assert pruned.get_n_leaves() == sk_pruned.fit(X, y).get_n_leaves()
    assert (pruned.predict(X) == sk_pruned.predict(X)).all()


@pytest.mark.parametrize("params", [{"max_leaf_nodes": 6}, {"min_samples_leaf": 7}])
def test_max_leaf_nodes_and_min_samples_leaf_grow_scikit_learns_tree(params):
    X, y = numeric_data(seed=3)
    ours = ID3Classifier(**params).fit(X, y)
    theirs = DecisionTreeClassifier(criterion="entropy", random_state=0, **params).fit(X, y)
    assert ours.get_n_leaves() == theirs.get_n_leaves()
    assert ours.get_depth() == theirs.get_depth()
    # the same partitions of the training rows (thresholds differ: sklearn cuts at midpoints)
    assert (ours.apply(X) != ours.apply(X[:1])[0]).sum() == (
        theirs.apply(X) != theirs.apply(X[:1])[0]
    ).sum()
    assert (ours.predict(X) == theirs.predict(X)).all()
    if "max_leaf_nodes" in params:  # (with min_samples_leaf, two nodes tie between features)
        assert np.allclose(ours.feature_importances_, theirs.feature_importances_)
    else:
        leaves = ours.tree_.leaves()
        assert ours.tree_.n_rows[leaves].min() >= params["min_samples_leaf"]


def test_sklearn_attributes(mails):
    X, y = mails.drop(columns="label"), mails["label"]
    clf = ID3Classifier().fit(X, y)
    assert clf.n_classes_ == 2 and clf.get_depth() == 3 and clf.get_n_leaves() == 4
    assert np.isclose(clf.feature_importances_.sum(), 1.0)
    assert clf.feature_importances_.argmax() == list(X.columns).index("image")
    leaves = clf.apply(X)
    assert all(clf.tree_.feature[leaves] == -1)
    path = clf.decision_path(X)
    assert path.shape == (10, clf.tree_.n_nodes)
    assert (path[np.arange(10), leaves] == 1).all() and (path[:, 0].toarray() == 1).all()
    assert path.sum(1).A1.tolist() == (clf.tree_.depth[leaves] + 1).tolist()


def test_pruning_parameters_are_checked_in_fit(mails):
    X, y = mails.drop(columns="label"), mails["label"]
    for params, message in [
        ({"prune": "pessimistic"}, "prune must be None or 'error'"),
        ({"confidence": 0}, "confidence must be a number in"),
        ({"ccp_alpha": -1}, "ccp_alpha must be a finite number >= 0"),
        ({"max_leaf_nodes": 1}, "max_leaf_nodes must be None or an int >= 2"),
        ({"min_samples_leaf": 0}, "min_samples_leaf must be an int >= 1"),
        ({"missing": "drop"}, "missing must be one of"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            ID3Classifier(**params).fit(X, y)

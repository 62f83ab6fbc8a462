"""Weights (sample_weight, class_weight) and C4.5's fractional missing values, checked by hand."""

import numpy as np
import pandas as pd
import pytest

from tree import ID3Classifier, export_text


def mixed(seed=0, n=60):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue", None], size=n, p=[0.3, 0.3, 0.3, 0.1]),
            "size": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 8, n).astype(float)),
            "flag": rng.choice(["y", "n"], size=n),
        }
    )
    y = np.where((X.colour == "red") ^ (X["size"] > 4), "a", "b")
    y[rng.random(n) < 0.2] = "c"
    return X, y


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"criterion": "gain_ratio", "prune": "error"},
        {"missing": "fractional", "ccp_alpha": 0.02},
        {"max_leaf_nodes": 5, "min_weight_fraction_leaf": 0.05},
    ],
)
def test_integer_weights_give_the_tree_of_repeated_rows(params):
    X, y = mixed()
    w = np.random.default_rng(1).integers(0, 4, len(y))  # 0 drops the row
    weighted = ID3Classifier(**params).fit(X, y, sample_weight=w)
    repeated = ID3Classifier(**params).fit(X.loc[X.index.repeat(w)], np.repeat(y, w))
    assert export_text(weighted) == export_text(repeated)
    assert np.allclose(weighted.tree_.counts, repeated.tree_.counts)
    test, _ = mixed(seed=2)
    assert np.allclose(weighted.predict_proba(test), repeated.predict_proba(test))


def test_class_weight_multiplies_the_sample_weights():
    X, y = mixed()
    balanced = ID3Classifier(class_weight="balanced").fit(X, y)
    classes, n = np.unique(y, return_counts=True)
    per_class = dict(zip(classes, len(y) / (len(classes) * n), strict=True))
    by_hand = ID3Classifier().fit(X, y, sample_weight=[per_class[c] for c in y])
    assert export_text(balanced) == export_text(by_hand)
    heavy = ID3Classifier(class_weight={"c": 100.0}, max_depth=1).fit(X, y)
    assert heavy.predict(X).tolist().count("c") > (np.asarray(y) == "c").sum()


def test_bad_weights_raise_value_error():
    X, y = mixed()
    with pytest.raises(ValueError, match="sample_weight"):
        ID3Classifier().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="non-zero"):
        ID3Classifier().fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="class_weight"):
        ID3Classifier(class_weight="even").fit(X, y)


# Six rows; the sixth lacks A. Known A: x has a,a,b and y has b,b; so the root splits on A:
#   gain(A) = 5/6 * (H(2a,3b) - 3/5 H(2,1)) = 0.350 bits > gain(B) = 1 - H(2,1) = 0.082.
# Fractional (C4.5): row 6 (class a) goes to x with 3/5 of its weight, to y with 2/5:
#   x: a 2.6, b 1 (3.6 rows); y: a 0.4, b 2 (2.4 rows). Both then split on B:
#   x/p: a 2; x/q: a 0.6, b 1; y/p: b 1; y/q: a 0.4, b 1.
# A new row with A missing and B = q: 0.6 of it reaches x/q, 0.4 reaches y/q:
#   P(a) = 0.6 * 0.6/1.6 + 0.4 * 0.4/1.4 = 0.225 + 0.1142857 = 19/56.
FRACTIONAL = pd.DataFrame(
    {"A": ["x", "x", "x", "y", "y", None], "B": ["p", "p", "q", "p", "q", "q"]}
)
LABELS = ["a", "a", "b", "b", "b", "a"]


def test_fractional_missing_values_on_a_hand_checked_case():
    clf = ID3Classifier(missing="fractional").fit(FRACTIONAL, LABELS)
    root = clf.root_
    assert root.feature == "A"
    x, y = root.children["x"], root.children["y"]
    assert np.allclose(list(x.class_counts.values()), [2.6, 1.0])
    assert np.allclose(list(y.class_counts.values()), [0.4, 2.0])
    assert np.isclose(x.n_samples, 3.6) and np.isclose(y.n_samples, 2.4)
    assert x.feature == y.feature == "B"
    assert np.allclose(list(x.children["q"].class_counts.values()), [0.6, 1.0])
    assert np.allclose(list(y.children["q"].class_counts.values()), [0.4, 1.0])
    proba = clf.predict_proba(pd.DataFrame({"A": [None], "B": ["q"]}))
    assert np.allclose(proba, [[19 / 56, 37 / 56]])
    # the row passes through the root, both A branches and both q leaves
    path = clf.decision_path(pd.DataFrame({"A": [None], "B": ["q"]})).toarray()[0]
    assert path.sum() == 5 and path[0] == 1
    assert clf.apply(pd.DataFrame({"A": [None, "x"], "B": ["q", "p"]})).tolist()[0] == 0


def test_stop_keeps_the_seeds_behaviour_and_auto_picks_by_criterion():
    stop = ID3Classifier(missing="stop").fit(FRACTIONAL, LABELS)
    assert sum(c.n_samples for c in stop.root_.children.values()) == 5  # row 6 stays
    proba = stop.predict_proba(pd.DataFrame({"A": [None], "B": ["q"]}))
    assert np.allclose(proba, [[0.5, 0.5]])  # the root's distribution
    assert ID3Classifier()._fractional is False
    assert ID3Classifier(criterion="gain_ratio")._fractional is True
    assert ID3Classifier(prune="error")._fractional is True


def test_the_trace_says_where_missing_rows_go():
    lines = []
    ID3Classifier(missing="fractional").fit(FRACTIONAL, LABELS, trace=lines.append)
    assert "1 of 6 rows missing go down every branch by weight" in lines[0]
    assert lines[1].startswith("[A = x] 3.6 rows: a 2.6/3.6, b 1/3.6")


@pytest.mark.parametrize("criterion", ["entropy", "gain_ratio"])
def test_the_trace_takes_fractional_counts_left_by_subtraction(criterion):
    """A numeric cut's right side is the node's weight minus the left side's: with fractional
    weights that leaves residues like -1e-16, which the trace's entropy used to refuse
    (ValueError) in 112 of 120 of these fits."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        X = rng.random((60, 3)).round(1)
        X[rng.random((60, 3)) < 0.2] = np.nan
        weights = rng.random(60) * 3 if seed % 2 else None
        lines = []
        clf = ID3Classifier(criterion=criterion, missing="fractional")
        clf.fit(X, rng.integers(0, 3, 60), sample_weight=weights, trace=lines.append)
        assert len(lines) >= clf.get_n_leaves() and lines[0].startswith("[root]")


def test_missing_values_is_configurable_so_question_mark_can_be_a_category():
    X = pd.DataFrame({"answer": ["yes", "no", "?", "?", "yes", "no"]})
    y = ["p", "n", "u", "u", "p", "n"]
    default = ID3Classifier().fit(X, y)
    assert default.features_[0].categories == ["no", "yes"]
    real = ID3Classifier(missing_values=None).fit(X, y)
    assert real.features_[0].categories == ["?", "no", "yes"]
    assert real.predict(pd.DataFrame({"answer": ["?"]})).tolist() == ["u"]
    na = ID3Classifier(missing_values=["n/a", "?"]).fit(X.replace("no", "n/a"), y)
    assert na.features_[0].categories == ["yes"]
    with pytest.raises(ValueError, match="missing_values"):
        ID3Classifier(missing_values=[1]).fit(X, y)


def test_the_child_table_walk_agrees_with_the_level_by_level_step():
    from tree._node import spread, walk

    X, y = mixed(seed=5, n=200)
    clf = ID3Classifier(missing="stop").fit(X, y)
    test, _ = mixed(seed=6, n=300)
    test.loc[::7, "colour"] = "purple"  # unseen: stops at the colour node
    xe = clf._encode(test)
    numeric, widths = clf._kinds()
    rows, nodes, _ = spread(clf.tree_, numeric, widths, xe, fractional=False)
    by_step = np.empty(len(test), dtype=np.int64)
    by_step[rows] = nodes
    assert (walk(clf.tree_, numeric, widths, xe) == by_step).all()
    assert (clf.tree_.feature[by_step] >= 0).any()  # some rows stop at inner nodes


def test_fractional_predict_of_a_category_a_node_never_saw_stops_there():
    # "blue" is a category of colour, but the node under size > 2 never saw it
    colour = ["blue"] * 2 + ["red"] * 3 + ["green"] * 3 + ["red", "red", "green", "green"]
    X = pd.DataFrame({"colour": colour, "size": [1] * 8 + [5, 6, 7, 8]})
    y = ["a"] * 8 + ["b", "b", "a", "a"]
    clf = ID3Classifier(missing="fractional").fit(X, y)
    node = clf.root_.children["> 1"]
    assert node.feature == "colour" and "blue" not in node.children
    row = pd.DataFrame({"colour": ["blue"], "size": [6]})
    assert np.allclose(clf.predict_proba(row), [[0.5, 0.5]])  # the node's 2 a and 2 b
    assert clf.apply(row).tolist() == [node.id]

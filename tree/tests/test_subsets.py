"""categorical_split="subsets": C4.5's groups of category values."""

import json

import numpy as np
import pandas as pd
import pytest

from tree import ID3Classifier, ModelFileError, export_text, from_json, to_json

# a and b are all yes, c and d all no: one branch per value gains 1 bit, and so do the two
# subsets {a, b} and {c, d}; the tie goes to fewer branches.
GRADES = pd.DataFrame({"grade": list("aaabbbcccddd")})
ANSWERS = ["yes"] * 6 + ["no"] * 6


def test_values_with_the_same_classes_share_a_branch():
    clf = ID3Classifier(categorical_split="subsets").fit(GRADES, ANSWERS)
    assert list(clf.root_.children) == [("a", "b"), ("c", "d")]
    assert export_text(clf) == "grade in {a, b}: yes (6/6)\ngrade in {c, d}: no (6/6)"
    assert clf.predict(pd.DataFrame({"grade": ["b", "d"]})).tolist() == ["yes", "no"]
    assert np.allclose(clf.predict_proba(pd.DataFrame({"grade": ["e"]})), [[0.5, 0.5]])
    multiway = ID3Classifier().fit(GRADES, ANSWERS)
    assert len(multiway.root_.children) == 4


def ordinal(seed, n=600, card=24):
    """The label depends on ranges (of 8 values) of two ordinal-like attributes; 10% noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, card, n), rng.integers(0, card, n)
    y = (a * 3 // card + b * 3 // card) % 3
    y = np.where(rng.random(n) < 0.1, rng.integers(0, 3, n), y)
    return pd.DataFrame({"a": [f"a{c:02d}" for c in a], "b": [f"b{c:02d}" for c in b]}), y


def test_c45_subsets_do_not_fragment_ordinal_like_attributes():
    X, y = ordinal(0)
    test, truth = ordinal(10, n=2000)
    c45 = dict(criterion="gain_ratio", prune="error")
    subsets = ID3Classifier(categorical_split="subsets", **c45).fit(X, y)
    multiway = ID3Classifier(**c45).fit(X, y)
    groups = list(subsets.root_.children)
    assert 2 <= len(groups) <= 4 and all(isinstance(g, tuple) for g in groups)
    values = X[subsets.root_.feature].unique()
    assert sorted(v for g in groups for v in g) == sorted(values)
    assert subsets.score(test, truth) > multiway.score(test, truth) + 0.1  # 0.80 against 0.62
    assert subsets.get_n_leaves() < multiway.get_n_leaves()


def test_subsets_round_trip_through_json_and_damaged_groups_are_named():
    X, y = ordinal(2)
    clf = ID3Classifier(criterion="gain_ratio", categorical_split="subsets").fit(X, y)
    assert clf.tree_.groups
    loaded = from_json(to_json(clf))
    assert export_text(loaded) == export_text(clf)
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    data = json.loads(to_json(clf))
    node, mapping = next(iter(data["tree"]["groups"].items()))
    data["tree"]["groups"][node] = [0] * len(mapping)
    with pytest.raises(ModelFileError, match=rf"tree.groups\[{node}\]: branches do not match"):
        from_json(json.dumps(data))


def test_subset_weights_equal_repeated_rows_and_the_trace_shows_the_subsets():
    X, y = ordinal(3, n=120)
    w = np.random.default_rng(4).integers(0, 3, len(y))
    params = dict(criterion="gain_ratio", categorical_split="subsets")
    weighted = ID3Classifier(**params).fit(X, y, sample_weight=w)
    repeated = ID3Classifier(**params).fit(X.loc[X.index.repeat(w)], np.repeat(y, w))
    assert export_text(weighted) == export_text(repeated)
    lines = []
    ID3Classifier(categorical_split="subsets").fit(GRADES, ANSWERS, trace=lines.append)
    assert "scored as the subsets a+b | c+d" in lines[0]
    with pytest.raises(ValueError, match="categorical_split must be one of"):
        ID3Classifier(categorical_split="binary").fit(GRADES, ANSWERS)

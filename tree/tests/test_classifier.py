"""ID3Classifier: the seed's tree, Quinlan's tree, criteria, inputs, missing and unseen values."""

import numpy as np
import pandas as pd
import pytest

from tree import ID3Classifier, export_text

SEED_TREE = """\
image = N: spam (3/3)
image = Y
|   bitcoin = N: ham (4/4)
|   bitcoin = Y
|   |   length = long: spam (2/2)
|   |   length = short: ham (1/1)"""


def xy(df, target):
    return df.drop(columns=[target]), df[target]


@pytest.mark.parametrize("criterion", ["entropy", "unweighted_entropy", "gain_ratio"])
@pytest.mark.parametrize("log_base", [10, 2])
def test_the_seed_mails_give_the_seeds_tree(mails, criterion, log_base):
    clf = ID3Classifier(criterion=criterion, log_base=log_base).fit(*xy(mails, "label"))
    root = clf.root_
    assert root.feature == "image"
    assert root.children["N"].is_leaf and root.children["N"].prediction == "spam"
    bitcoin = root.children["Y"]
    assert bitcoin.feature == "bitcoin"
    assert bitcoin.children["N"].prediction == "ham"
    length = bitcoin.children["Y"]
    assert length.feature == "length"
    assert {k: v.prediction for k, v in length.children.items()} == {
        "long": "spam",
        "short": "ham",
    }
    assert export_text(clf) == SEED_TREE


def test_nodes_expose_feature_children_prediction_and_class_counts(mails):
    clf = ID3Classifier().fit(*xy(mails, "label"))
    root = clf.root_
    assert root.class_counts == {"ham": 5, "spam": 5}
    assert root.prediction == "ham"  # a tie goes to the first class in classes_ order
    assert root.threshold is None and root.n_samples == 10 and root.depth == 0
    leaf = root.children["N"]
    assert leaf.feature is None and leaf.children == {}
    assert leaf.class_counts == {"ham": 0, "spam": 3}
    assert list(clf.classes_) == ["ham", "spam"]
    assert clf.n_features_in_ == 3
    assert list(clf.feature_names_in_) == ["length", "image", "bitcoin"]
    assert clf.predict(mails.drop(columns="label")).tolist() == mails["label"].tolist()


def test_play_tennis_has_outlook_at_the_root_humidity_under_sunny_wind_under_rain(tennis):
    clf = ID3Classifier().fit(*xy(tennis, "play"))
    root = clf.root_
    assert root.feature == "outlook"
    assert set(root.children) == {"sunny", "overcast", "rain"}
    assert root.children["overcast"].is_leaf and root.children["overcast"].prediction == "yes"
    sunny, rain = root.children["sunny"], root.children["rain"]
    assert sunny.feature == "humidity"
    assert {k: v.prediction for k, v in sunny.children.items()} == {"high": "no", "normal": "yes"}
    assert rain.feature == "wind"
    assert {k: v.prediction for k, v in rain.children.items()} == {"weak": "yes", "strong": "no"}


def test_the_seeds_unweighted_rule_builds_a_worse_play_tennis_tree(tennis):
    weighted = ID3Classifier().fit(*xy(tennis, "play"))
    unweighted = ID3Classifier(criterion="unweighted_entropy").fit(*xy(tennis, "play"))
    assert unweighted.root_.feature == "humidity"
    assert unweighted.tree_.n_nodes > weighted.tree_.n_nodes


def test_gain_ratio_prefers_a_good_binary_attribute_to_an_identifier():
    X = pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(8)],
            "good": ["y", "y", "y", "y", "n", "n", "n", "y"],
        }
    )
    y = ["a"] * 4 + ["b"] * 4
    assert ID3Classifier().fit(X, y).root_.feature == "id"  # gain 1 bit beats 0.549
    assert ID3Classifier(criterion="gain_ratio").fit(X, y).root_.feature == "good"


def test_numeric_columns_split_at_thresholds_keyed_le_and_gt():
    X = pd.DataFrame({"temperature": [64, 65, 68, 69, 70, 71, 72, 75, 80, 81, 83, 85]})
    y = ["y", "n", "y", "y", "y", "n", "n", "y", "n", "y", "y", "n"]
    clf = ID3Classifier(max_depth=1).fit(X, y)
    root = clf.root_
    assert root.feature == "temperature"
    # brute force: the cut with the highest gain, written as the largest value on its left
    from tree import entropy

    def gain(v):
        left = [c for x, c in zip(X.temperature, y, strict=True) if x <= v]
        right = [c for x, c in zip(X.temperature, y, strict=True) if x > v]
        counts = [[side.count("n"), side.count("y")] for side in (left, right)]
        return entropy([y.count("n"), y.count("y")]) - sum(
            sum(c) / len(y) * entropy(c) for c in counts
        )

    best = max(sorted(set(X.temperature))[:-1], key=lambda v: round(gain(v), 10))
    assert root.threshold == best
    assert list(root.children) == [f"<= {best}", f"> {best}"]
    # a value between training values goes by the comparison
    assert clf.apply(pd.DataFrame({"temperature": [best + 0.5]}))[0] == (
        root.children[f"> {best}"].id
    )


def test_numbers_declared_categorical_split_one_branch_per_value():
    X = pd.DataFrame({"grade": [1, 1, 2, 2, 3, 3]})
    y = ["a", "a", "b", "b", "a", "a"]
    as_numbers = ID3Classifier().fit(X, y)
    assert as_numbers.root_.threshold is not None
    multiway = ID3Classifier(categorical_features=["grade"]).fit(X, y)
    assert multiway.root_.threshold is None
    assert list(multiway.root_.children) == [1, 2, 3]
    assert multiway.predict(pd.DataFrame({"grade": [2, 4]})).tolist() == ["b", "a"]
    assert ID3Classifier(categorical_features=[0]).fit(X.to_numpy(), y).root_.threshold is None
    assert ID3Classifier(categorical_features=[True]).fit(X, y).root_.threshold is None


@pytest.mark.parametrize("dtype", [object, "str", "string", "category"])
def test_object_str_and_category_columns_give_the_same_tree(mails, dtype):
    X, y = xy(mails, "label")
    clf = ID3Classifier().fit(X.astype(dtype), y)
    assert export_text(clf) == SEED_TREE
    assert clf.predict(X.astype(dtype)).tolist() == y.tolist()
    assert clf.predict(X.astype(object)).tolist() == y.tolist()


def test_a_plain_array_or_list_of_lists_works_and_names_columns_x0_x1(mails):
    X, y = xy(mails, "label")
    clf = ID3Classifier().fit(X.to_numpy().tolist(), y.tolist())
    assert clf.root_.feature == "x1"
    assert not hasattr(clf, "feature_names_in_")
    assert clf.predict(X.to_numpy()).tolist() == y.tolist()


def test_missing_values_stay_at_the_node_and_scale_the_gain():
    X = pd.DataFrame(
        {
            "colour": ["red", "red", "blue", "blue", None, "?", np.nan, "red"],
            "size": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan, 7.0, 8.0],
        }
    )
    y = ["a", "a", "b", "b", "b", "a", "b", "a"]
    clf = ID3Classifier().fit(X, y)
    root = clf.root_
    assert root.feature == "colour"
    assert clf.features_[0].categories == ["blue", "red"]  # "?" and None are not categories
    assert root.n_samples == 8
    assert sum(c.n_samples for c in root.children.values()) == 5  # 3 rows missing stay here
    # a row missing the root's attribute gets the root's distribution
    proba = clf.predict_proba(pd.DataFrame({"colour": [None, "?"], "size": [1.0, 1.0]}))
    assert proba.tolist() == [[0.5, 0.5], [0.5, 0.5]]
    # missing numbers: NaN in a float column
    numeric = ID3Classifier().fit(X[["size"]], y)
    assert numeric.root_.feature == "size"
    assert sum(c.n_samples for c in numeric.root_.children.values()) == 7


def test_gain_with_missing_values_is_scaled_by_the_known_share():
    # with 2 of 4 rows missing, a perfect split of the other two gains half their entropy
    X = pd.DataFrame({"a": ["x", "y", None, None]})
    trace = []
    ID3Classifier().fit(X, ["p", "q", "p", "q"], trace=trace.append)
    assert "gain 0.5" in trace[0]
    assert "2 of 4 rows missing stay here" in trace[0]


def test_unseen_values_fall_back_to_the_nodes_class_distribution(mails):
    clf = ID3Classifier().fit(*xy(mails, "label"))
    rows = pd.DataFrame(
        {
            "length": ["medium", "long"],
            "image": ["Y", "maybe"],
            "bitcoin": ["Y", "N"],
        }
    )
    proba = clf.predict_proba(rows)
    # row 0 stops at [image=Y, bitcoin=Y]: 2 spam, 1 ham; row 1 at the root: 5 and 5
    assert np.allclose(proba, [[1 / 3, 2 / 3], [0.5, 0.5]])
    assert clf.predict(rows).tolist() == ["spam", "ham"]


def test_ties_go_to_the_first_column_and_row_order_does_not_matter(mails):
    X, y = xy(mails, "label")
    X.insert(0, "image_again", X["image"])
    clf = ID3Classifier().fit(X, y)
    assert clf.root_.feature == "image_again"
    shuffled = np.random.default_rng(0).permutation(len(X))
    again = ID3Classifier().fit(X.iloc[shuffled], y.iloc[shuffled])
    assert export_text(again) == export_text(clf)


def test_max_depth_min_samples_split_and_min_gain_stop_growth(mails, tennis):
    X, y = xy(mails, "label")
    assert ID3Classifier(max_depth=0).fit(X, y).root_.is_leaf
    assert ID3Classifier(max_depth=1).fit(X, y).tree_.depth.max() == 1
    assert ID3Classifier(min_samples_split=11).fit(X, y).root_.is_leaf
    # XOR needs a zero-gain first split: made with min_gain=0, refused above it
    xor = pd.DataFrame({"a": [0, 0, 1, 1], "b": [0, 1, 0, 1]}).astype(str)
    labels = ["n", "y", "y", "n"]
    assert ID3Classifier().fit(xor, labels).score(xor, labels) == 1.0
    assert ID3Classifier(min_gain=1e-9).fit(xor, labels).root_.is_leaf


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"criterion": "gini"}, "criterion must be one of 'entropy', 'gain_ratio'"),
        ({"log_base": 1}, "log_base must be a positive number other than 1"),
        ({"log_base": 0}, "log_base must be a positive number other than 1"),
        ({"log_base": -10}, "log_base must be a positive number other than 1"),
        ({"max_depth": -1}, "max_depth must be None or an int >= 0"),
        ({"min_samples_split": 1}, "min_samples_split must be an int >= 2"),
        ({"min_gain": -0.1}, "min_gain must be a finite number >= 0"),
        ({"categorical_features": ["nope"]}, "not a column of X"),
    ],
)
def test_bad_parameters_raise_value_error_in_fit(mails, params, message):
    clf = ID3Classifier(**params)  # __init__ only stores them
    with pytest.raises(ValueError, match=message):
        clf.fit(*xy(mails, "label"))


def test_bad_inputs_raise_clear_value_errors(mails):
    X, y = xy(mails, "label")
    with pytest.raises(ValueError, match="X has 10 rows but y has 9 labels"):
        ID3Classifier().fit(X, y[:9])
    with pytest.raises(ValueError, match="0 sample"):
        ID3Classifier().fit(X.iloc[:0], y[:0])
    with pytest.raises(ValueError, match="0 feature"):
        ID3Classifier().fit(X[[]], y)
    with pytest.raises(ValueError, match="target y is None"):
        ID3Classifier().fit(X, None)
    with pytest.raises(ValueError, match="missing label"):
        ID3Classifier().fit(X, ["spam"] * 9 + [None])
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        ID3Classifier().fit(X, np.linspace(0, 1, 10))
    clf = ID3Classifier().fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but ID3Classifier is expecting 3"):
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            clf.predict(X.iloc[:, :2].to_numpy())
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing"):
        clf.predict(X.rename(columns={"image": "picture"}))
    # the fitted names in another order: sklearn's check runs (the fast path takes them in
    # order only)
    with pytest.raises(ValueError, match="must be in the same order as they were in fit"):
        clf.predict(X[X.columns[::-1]])
    with pytest.raises(TypeError, match="Feature names are only supported if all input"):
        clf.predict(X.set_axis(["length", "image", 3], axis=1))


@pytest.mark.parametrize(
    "params", [{}, {"criterion": "gain_ratio", "prune": "error"}, {"min_samples_leaf": 3}]
)
def test_memory_savers_leave_the_tree_as_it_was(monkeypatch, params):
    # Numeric values not kept after encoding (read again from the input for the thresholds,
    # the pruning and the trace) and the numeric scorer's cuts taken a few at a time give
    # the tree of the plain path, thresholds, counts and trace included.
    import tree._encode
    import tree._score

    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.integers(0, 40, size=(400, 3)) / 4, columns=["a", "b", "c"])
    X.loc[rng.random(400) < 0.1, "b"] = np.nan
    X.loc[:9, "a"] = -0.0  # 0.0 and -0.0 are one value: the same one must stand for both
    X["d"] = rng.choice(["p", "q", "r"], 400)
    y = (X["a"].fillna(0) + rng.normal(0, 3, 400) > 5).astype(int)

    def fitted():
        lines = []
        clf = ID3Classifier(**params).fit(X, y, trace=lines.append)
        return export_text(clf), clf.tree_.counts.tolist(), clf.predict_proba(X).tolist(), lines

    plain = fitted()
    monkeypatch.setattr(tree._encode, "_KEEP_VALUES", 0)
    monkeypatch.setattr(tree._score, "_BLOCK", 5)
    assert fitted() == plain


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"criterion": "gain_ratio", "missing": "fractional"},
        {"criterion": "unweighted_entropy", "min_samples_leaf": 3},
        {"max_depth": 2, "weights": True},
        {"array": True},
    ],
)
def test_float32_columns_keyed_on_their_own_values_grow_the_ranked_tree(monkeypatch, params):
    # float32 columns are not copied to ranks: the builder keys them on their own bits, level
    # by level. Same tree, thresholds, counts and probabilities as ranks, with duplicates,
    # -0.0 and 0.0, infinities, NaN, categorical columns beside them, weights, and a 2-D array.
    import tree._build
    import tree._numbers

    params = dict(params)
    rng = np.random.default_rng(11)
    n = 600
    X = pd.DataFrame(rng.standard_normal((n, 3)).astype(np.float32), columns=["a", "b", "c"])
    X["a"] = X["a"].round(1)
    signs = np.array([-0.0, 0.0, 1.5, -np.inf, np.inf], dtype=np.float32)
    X["c"] = rng.choice(signs, n)
    X.loc[rng.random(n) < 0.1, "b"] = np.nan
    X["d"] = pd.Categorical(rng.choice(["p", "q", "r"], n))
    y = (X["a"] + X["c"].clip(-1, 1) + rng.normal(0, 1, n) > 0).astype(int) + (X["d"] == "r")
    w = rng.random(n) + 0.5 if params.pop("weights", False) else None
    if params.pop("array", False):  # columns that are strided views of one 2-D array
        X = X[["a", "b", "c"]].to_numpy()
    calls = []
    keys = tree._build.float_keys
    monkeypatch.setattr(tree._build, "float_keys", lambda v: calls.append(1) or keys(v))

    def fitted():
        clf = ID3Classifier(**params).fit(X, y, sample_weight=w)
        threshold = np.nan_to_num(clf.tree_.threshold, nan=-9.0)
        return (
            export_text(clf),
            threshold.tolist(),
            clf.tree_.counts.tolist(),
            clf.predict_proba(X).tolist(),
        )

    monkeypatch.setattr(tree._numbers, "_FEW_VALUES", 0)  # every float32 column keyed
    keyed = fitted()
    assert calls  # the keyed path ran
    monkeypatch.setattr(tree._numbers, "_FEW_VALUES", 2**40)  # every one ranked
    calls.clear()
    assert fitted() == keyed
    assert not calls


def test_float_keys_sort_as_the_numbers():
    from tree._numbers import FLOAT_MISSING, float_keys, float_values

    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.standard_normal(1000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 1000),
            np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38], dtype=np.float32),
        ]
    ).astype(np.float32)
    keys = float_keys(x)
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(keys[order].astype(np.int64)) >= 0)
    assert np.array_equal(np.unique(keys).size, np.unique(x).size)  # -0.0 and 0.0: one key
    assert np.array_equal(float_values(keys), x.astype(np.float64) + 0.0)
    nan = float_keys(np.array([np.nan, -np.nan], dtype=np.float32))
    assert nan.tolist() == [FLOAT_MISSING, FLOAT_MISSING] and keys.max() < FLOAT_MISSING


@pytest.mark.parametrize(
    "params", [{}, {"criterion": "gain_ratio"}, {"min_samples_leaf": 4}, {"max_depth": 2}]
)
def test_scoring_boundary_cuts_only_picks_the_cut_scoring_every_cut_picks(monkeypatch, params):
    # Gains rounded to 2 decimals tie often, also at cuts between two values of one class,
    # which the numeric scorer does not score: the first tied cut must still win.
    import tree._score

    rng = np.random.default_rng(3)
    X = rng.integers(0, 60, size=(500, 3)).astype(float)
    y = (X[:, 0] // 15 + (rng.random(500) < 0.2)) % 3  # runs of one class, some noise
    X[rng.random(X.shape) < 0.05] = np.nan
    w = rng.integers(1, 3, 500).astype(float)

    def fitted():
        clf = ID3Classifier(**params).fit(X, y, sample_weight=w)
        threshold = np.nan_to_num(clf.tree_.threshold, nan=-1.0)  # NaN at non-numeric nodes
        return export_text(clf), threshold.tolist(), clf.tree_.counts.tolist()

    def every_cut(cuts):
        cuts.scored = ~cuts.last if cuts.ok is None else cuts.ok.copy()
        return np.flatnonzero(cuts.scored)

    monkeypatch.setattr(tree._score, "DECIMALS", 2)
    fast = fitted()
    monkeypatch.setattr(tree._score._Cuts, "candidates", every_cut)
    assert fitted() == fast


def test_float32_and_float64_arrays_walk_as_their_exact_values_compare():
    # Thresholds fitted on float64 values that float32 cannot hold (0.1, 0.3): a float32 row
    # goes where its exact value goes; a plain array walks as its DataFrame does.
    rng = np.random.default_rng(4)
    X = np.round(rng.random((400, 3)), 1)
    y = (X[:, 0] + X[:, 1] > 0.9).astype(int)
    clf = ID3Classifier().fit(X, y)
    X32 = rng.random((1000, 3)).astype(np.float32)
    X32[:100, 0] = np.float32(0.1)  # just above 0.1
    assert np.array_equal(clf.apply(X32), clf.apply(X32.astype(np.float64)))
    assert np.array_equal(clf.apply(X32), clf.apply(pd.DataFrame(X32)))
    X32[::7, 1] = np.nan  # missing values: the walk with the row of zeros
    assert np.array_equal(clf.apply(X32), clf.apply(pd.DataFrame(X32.astype(np.float64))))

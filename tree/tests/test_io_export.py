"""JSON save/load (never pickle), and the text, DOT and PNG views of a tree."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from tree import (
    ID3Classifier,
    ModelFileError,
    export_graphviz,
    export_png,
    export_text,
    from_json,
    load_json,
    save_json,
    to_json,
)

from .test_classifier import SEED_TREE


def mixed_model():
    """Categorical, numeric and missing values, integer labels."""
    X = pd.DataFrame(
        {
            "colour": pd.Categorical(["red", "blue", None, "red", "green", "blue", "red", "?"]),
            "size": [1.5, 2.0, 3.5, np.nan, 5.0, 6.5, 7.0, 8.0],
            "flag": [True, False, True, False, True, False, True, False],
        }
    )
    y = np.array([0, 1, 1, 0, 2, 1, 0, 2])
    return ID3Classifier(criterion="gain_ratio", log_base=10).fit(X, y), X, y


def test_json_round_trip_keeps_predictions_text_and_attributes(tmp_path, mails):
    X, y = mails.drop(columns="label"), mails["label"]
    clf = ID3Classifier(log_base=10).fit(X, y)
    path = tmp_path / "model.json"
    save_json(clf, path, target="label")
    loaded = load_json(path)
    assert export_text(loaded) == SEED_TREE
    assert loaded.get_params() == clf.get_params()
    assert list(loaded.feature_names_in_) == ["length", "image", "bitcoin"]
    assert loaded.classes_.tolist() == clf.classes_.tolist()
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert loaded.predict(X).tolist() == y.tolist()
    data = json.loads(path.read_text())
    assert data["format"] == "tree.ID3Classifier" and data["meta"] == {"target": "label"}


def test_json_round_trip_with_numbers_booleans_and_missing_values():
    clf, X, y = mixed_model()
    loaded = from_json(to_json(clf))
    test = pd.concat([X, pd.DataFrame({"colour": ["purple"], "size": [4.0], "flag": [True]})])
    assert np.array_equal(loaded.predict_proba(test), clf.predict_proba(test))
    assert loaded.predict(X).tolist() == clf.predict(X).tolist()
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert export_text(loaded) == export_text(clf)
    assert loaded.root_.children.keys() == clf.root_.children.keys()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"hello": "world"}', 'no "format"'),
        ("[1, 2, 3]", 'no "format"'),
        ("label,length\nspam,long\n", "not JSON"),
        ('{"format": "tree.ID3Classifier", "version": 99}', "format version 99"),
        ('{"format": "tree.ID3Classifier", "version": 1, "params": {}}', "damaged"),
    ],
)
def test_files_that_are_not_our_models_raise_model_file_error(tmp_path, content, why):
    path = tmp_path / "model.json"
    path.write_text(content)
    with pytest.raises(ModelFileError, match=why):
        load_json(path)


def test_a_binary_file_is_not_a_model(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04\x95\xff\xfe binary")
    with pytest.raises(ModelFileError, match="not UTF-8"):
        load_json(path)


def test_unfitted_models_cannot_be_saved():
    with pytest.raises(ValueError, match="not fitted"):
        to_json(ID3Classifier())


def test_export_text_cuts_at_max_depth(mails):
    clf = ID3Classifier().fit(mails.drop(columns="label"), mails["label"])
    assert export_text(clf, max_depth=1).splitlines() == [
        "image = N: spam (3/3)",
        "image = Y",
        "|   ...",
    ]
    leaf_only = ID3Classifier(max_depth=0).fit(mails.drop(columns="label"), mails["label"])
    assert export_text(leaf_only) == "ham (5/10)"


def test_export_graphviz_writes_nodes_edges_and_escapes_quotes(mails):
    clf = ID3Classifier().fit(mails.drop(columns="label"), mails["label"])
    dot = export_graphviz(clf)
    assert dot.startswith("digraph ID3 {") and dot.rstrip().endswith("}")
    assert '0 [label="image\\n10 rows: ham 5, spam 5"];' in dot
    assert '0 -> 1 [label="N"];' in dot
    assert dot.count(" -> ") == clf.tree_.n_nodes - 1
    quoted = ID3Classifier().fit([['say "hi"'], ["bye"]], ["a", "b"])
    assert 'label="say \\"hi\\""' in export_graphviz(quoted)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_export_png_renders_with_graphviz(tmp_path, mails):
    clf = ID3Classifier().fit(mails.drop(columns="label"), mails["label"])
    path = tmp_path / "tree.png"
    export_png(clf, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # and the DOT text is valid for dot itself
    done = subprocess.run(
        ["dot", "-Tsvg"], input=export_graphviz(clf), text=True, check=False, capture_output=True
    )
    assert done.returncode == 0 and "<svg" in done.stdout


def test_export_png_without_dot_says_what_to_install(monkeypatch, mails):
    clf = ID3Classifier().fit(mails.drop(columns="label"), mails["label"])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        export_png(clf, "never.png")


def _damaged(change):
    clf, _, _ = mixed_model()
    data = json.loads(to_json(clf))
    change(data)
    return json.dumps(data)


def _reverse_parents(d):
    d["tree"]["parent"] = d["tree"]["parent"][::-1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["tree"]["first_child"].__setitem__(0, 999), "tree.first_child[0]"),
        (_reverse_parents, "tree.parent"),
        (lambda d: d["tree"]["counts"][1].__setitem__(0, -1), "tree.counts[1]"),
        (lambda d: d["tree"]["counts"].pop(), "tree.counts"),
        (lambda d: d["tree"]["feature"].__setitem__(0, 7), "tree.feature[0]"),
        (lambda d: d["tree"]["branch"].__setitem__(1, 50), "tree.branch[1]"),
        (lambda d: d["tree"]["depth"].__setitem__(1, 5), "tree.depth[1]"),
        (lambda d: d["tree"]["threshold"].__setitem__(0, "x"), "tree.threshold"),
        (lambda d: d["tree"].pop("n_children"), "tree.n_children: missing"),
        (lambda d: d["features"][0].__setitem__("kind", "ordinal"), "features[0].kind"),
        (
            lambda d: d["features"][0].__setitem__("categories", ["a", "a"]),
            "features[0].categories",
        ),
        (lambda d: d["params"].__setitem__("max_depth", -3), "params: max_depth"),
        (lambda d: d["params"].__setitem__("colour", 1), "params: "),
        (lambda d: d.__setitem__("classes", []), "classes"),
        (lambda d: d.__setitem__("feature_names_in", ["a", "b", "c"]), "feature_names_in"),
    ],
)
def test_from_json_checks_every_field_and_names_the_wrong_one(change, field):
    text = _damaged(change)
    with pytest.raises(ModelFileError) as err:
        from_json(text)
    message = str(err.value)
    assert "\n" not in message and "damaged: " + field in message, message


def test_version_1_files_still_load():
    clf, X, _ = mixed_model()
    data = json.loads(to_json(clf))
    data["version"] = 1
    del data["tree"]["n_rows"]
    assert from_json(json.dumps(data)).predict(X).tolist() == clf.predict(X).tolist()


def test_class_weight_dicts_and_lists_round_trip():
    X, y = [["a"], ["b"], ["a"]], [1, 2, 2]
    clf = ID3Classifier(class_weight={1: 2.0, 2: 1.0}, missing_values=["?", "n/a"]).fit(X, y)
    assert from_json(to_json(clf)).get_params() == clf.get_params()

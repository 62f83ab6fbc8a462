"""``ID3Classifier``: the scikit-learn style estimator around the level-by-level builder."""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from ._build import CRITERIA, grow
from ._encode import encode_fit, encode_predict, encode_y
from ._entropy import check_log_base
from ._node import Node, walk


class _ParamsMixin:
    """``get_params``/``set_params``/``repr`` as scikit-learn defines them, without importing it.

    scikit-learn is optional at run time: it is only needed to run its checks on this class.
    """

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        shown = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            value = getattr(self, name, p.default)
            if value is not p.default and not (
                isinstance(value, (str, int, float, type(None)))
                and type(value) is type(p.default)
                and value == p.default
            ):
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _not_fitted(est):
    message = (
        f"This {type(est).__name__} instance is not fitted yet. Call 'fit' with appropriate "
        "arguments before using this estimator."
    )
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:  # scikit-learn is optional

        class NotFittedError(ValueError, AttributeError):
            pass

    return NotFittedError(message)


class ID3Classifier(_ParamsMixin):
    """ID3 decision tree: one branch per category, binary thresholds on numbers (as C4.5).

    The seed's ten mails: image N is all spam; then bitcoin, then length.

    >>> import pandas as pd
    >>> mails = pd.DataFrame({
    ...     "length": ["long"] * 3 + ["short"] + ["long"] * 4 + ["short"] * 2,
    ...     "image": list("YNNNYYYYYY"),
    ...     "bitcoin": list("YYYNYNNNNY"),
    ... })
    >>> label = ["spam"] * 5 + ["ham"] * 5
    >>> clf = ID3Classifier(log_base=10).fit(mails, label)
    >>> clf.root_.feature, list(clf.root_.children)
    ('image', ['N', 'Y'])
    >>> clf.root_.children["Y"].feature
    'bitcoin'
    >>> clf.predict(pd.DataFrame({"length": ["short"], "image": ["Y"], "bitcoin": ["Y"]}))
    array(['ham'], dtype='<U4')

    Parameters
    ----------
    criterion : {"entropy", "gain_ratio", "unweighted_entropy"}, default "entropy"
        How a node picks its attribute. ``"entropy"`` maximises the information gain (the
        parent's entropy minus the size-weighted entropy of the branches: ID3).
        ``"gain_ratio"`` divides the gain by the entropy of the branch sizes (C4.5), which
        curbs attributes with many values. ``"unweighted_entropy"`` minimises the plain sum
        of the branches' entropies, the seed's teaching rule; it ignores how many rows each
        branch holds, so a tiny pure branch counts as much as a large mixed one, and it is
        worse on real data.
    log_base : float, default 2
        Base of the logarithm (2: bits; 10: the seed's tables). Changes the units of gains and
        of ``min_gain``, not the tree.
    max_depth : int or None, default None
        Depth at which nodes become leaves (0: the root is a leaf). None grows until every
        node is pure or no attribute splits it.
    min_samples_split : int, default 2
        Nodes with fewer training rows become leaves.
    min_gain : float, default 0.0
        A split must gain at least this much information (in ``log_base`` units, after
        rounding to 10 decimals). With 0, as in Quinlan's ID3, zero-gain splits are made
        too (XOR needs them); set a small positive value to stop on them.
    categorical_features : None, column names, column indices or a boolean mask
        Numeric columns to treat as categorical (multiway). Strings, booleans and pandas
        ``category`` columns are always categorical.

    Ties between equal (rounded) scores go to the first column; a numeric column's tie
    between thresholds goes to the lowest. Missing values (None, NaN, ``"?"``): the gain of an
    attribute is computed on the rows that have it and scaled by their share (as C4.5); rows
    missing the chosen attribute stay at the node, and so do rows at predict time, which then
    get the node's class distribution. A value never seen at a node is handled the same way.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    n_features_in_ : int
        The number of columns seen in fit.
    feature_names_in_ : ndarray of str
        The column names, when X was a DataFrame with string column names.
    features_ : list of FeatureSpec
        Per column: name, kind ("categorical" or "numeric") and categories.
    root_ : Node
        The root of the tree (see ``Node``).
    tree_ : TreeArrays
        The tree as flat arrays, one entry per node.
    """

    def __init__(
        self,
        criterion="entropy",
        log_base=2,
        max_depth=None,
        min_samples_split=2,
        min_gain=0.0,
        categorical_features=None,
    ):
        self.criterion = criterion
        self.log_base = log_base
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_gain = min_gain
        self.categorical_features = categorical_features

    def _check_params(self):
        if not isinstance(self.criterion, str) or self.criterion not in CRITERIA:
            raise ValueError(
                f"criterion must be one of {', '.join(map(repr, CRITERIA))}; got {self.criterion!r}"
            )
        check_log_base(self.log_base, "log_base")
        if self.max_depth is not None and (
            isinstance(self.max_depth, bool)
            or not isinstance(self.max_depth, numbers.Integral)
            or self.max_depth < 0
        ):
            raise ValueError(f"max_depth must be None or an int >= 0; got {self.max_depth!r}")
        if (
            isinstance(self.min_samples_split, bool)
            or not isinstance(self.min_samples_split, numbers.Integral)
            or self.min_samples_split < 2
        ):
            raise ValueError(
                f"min_samples_split must be an int >= 2; got {self.min_samples_split!r}"
            )
        if (
            isinstance(self.min_gain, bool)
            or not isinstance(self.min_gain, numbers.Real)
            or not np.isfinite(self.min_gain)
            or self.min_gain < 0
        ):
            raise ValueError(f"min_gain must be a finite number >= 0; got {self.min_gain!r}")

    def fit(self, X, y, *, trace=None):
        """Grow the tree on *X* (DataFrame or 2-D array-like) and labels *y*; return self.

        *trace*, when given, is called once per node (root first, then depth by depth) with a
        text block: each candidate attribute with its per-branch class proportions and
        entropies, and the attribute chosen. ``trace=print`` prints them.
        """
        self._check_params()
        specs, enc, names_in = encode_fit(X, self.categorical_features)
        classes, y_codes = encode_y(y, enc.codes.shape[1])
        records = [] if trace is not None else None
        tree = grow(
            enc,
            y_codes,
            len(classes),
            criterion=self.criterion,
            log_base=float(self.log_base),
            max_depth=self.max_depth,
            min_samples_split=int(self.min_samples_split),
            min_gain=float(self.min_gain),
            trace=records,
        )
        self.classes_ = classes
        self.n_features_in_ = len(specs)
        if names_in is not None:
            self.feature_names_in_ = names_in
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.features_ = specs
        self.tree_ = tree
        self.root_ = Node(tree, specs, classes)
        if trace is not None:
            from ._export import format_trace, trace_orders

            orders = trace_orders(enc, y_codes)
            for record in records:
                trace(format_trace(self, record, orders))
        return self

    def __sklearn_is_fitted__(self):
        return hasattr(self, "tree_")

    def _encode(self, X):
        if not hasattr(self, "tree_"):
            raise _not_fitted(self)
        names = getattr(self, "feature_names_in_", None)
        return encode_predict(X, self.features_, names, type(self).__name__)

    def apply(self, X):
        """Return the id of the node where each row stops (a leaf, or where a value is missing)."""
        xe = self._encode(X)
        numeric = np.array([s.kind == "numeric" for s in self.features_], dtype=bool)
        return walk(self.tree_, numeric, xe)

    def predict_proba(self, X):
        """Class probabilities: the class shares of the training rows at each row's node."""
        leaves = self.apply(X)
        counts = self.tree_.counts[leaves]
        return counts / counts.sum(axis=1, keepdims=True)

    def predict(self, X):
        """The majority class at each row's node (``classes_[argmax(predict_proba(X))]``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against *y*."""
        right = self.predict(X) == np.asarray(y).reshape(-1)
        return float(np.average(right, weights=sample_weight))

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
            # string=False only steers scikit-learn's dtype-object check to expect a
            # TypeError for a dict value (which fit raises); strings work all the same.
            input_tags=InputTags(allow_nan=True, categorical=True, string=False),
        )

"""``ID3Classifier``: the scikit-learn estimator around the level-by-level builder."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._build import CRITERIA, grow
from ._c45prune import prune_errors
from ._encode import encode_fit, encode_predict
from ._entropy import check_log_base
from ._inputs import columns_of, encode_y, row_weights
from ._node import Node, branch_widths, spread, walk
from ._prune import ccp_sequence, feature_importances, limit_leaves

MISSING = ("auto", "fractional", "stop")
SPLITS = ("multiway", "subsets")
PRUNE = (None, "error")


def _int_at_least(value, low, name, none_ok=False):
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        what = f"None or an int >= {low}" if none_ok else f"an int >= {low}"
        raise ValueError(f"{name} must be {what}; got {value!r}")


def _real_in(value, low, high, name, low_open=False, high_open=False):
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and np.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        if high == np.inf:
            raise ValueError(f"{name} must be a finite number >= {low}; got {value!r}")
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be a number in {lo}{low}, {high}{hi}; got {value!r}")


class ID3Classifier(ClassifierMixin, BaseEstimator):
    """ID3 and C4.5 decision trees: one branch per category, binary thresholds on numbers.

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

    C4.5 is ``ID3Classifier(criterion="gain_ratio", prune="error")``.

    Parameters
    ----------
    criterion : {"entropy", "gain_ratio", "unweighted_entropy"}, default "entropy"
        How a node picks its attribute. ``"entropy"`` maximises the information gain (ID3).
        ``"gain_ratio"`` is C4.5's rule: the gain divided by the entropy of the branch sizes,
        among the attributes whose gain is at least the average gain of the candidates, with
        a numeric attribute's gain lowered by ``log(N - 1) / |D|`` for its N - 1 possible
        thresholds among |D| rows. ``"unweighted_entropy"`` minimises the plain sum of the
        branches' entropies, the seed's teaching rule (worse on real data).
    log_base : float, default 2
        Base of the logarithm (2: bits; 10: the seed's tables). Changes the units of gains and
        of ``min_gain``, not the tree.
    max_depth : int or None, default None
        Depth at which nodes become leaves (0: the root is a leaf).
    min_samples_split : int, default 2
        Nodes with fewer training rows become leaves.
    min_samples_leaf : int, default 1
        A split is only made if every branch gets at least this many training rows.
    min_weight_fraction_leaf : float in [0, 0.5], default 0.0
        ... and at least this share of the total training weight (as in scikit-learn).
    max_leaf_nodes : int or None, default None
        Keep the splits a best-first builder (largest impurity decrease first) makes before it
        reaches this many leaves; a multiway split that would pass it is left out.
    min_gain : float, default 0.0
        A split must gain at least this much information (in ``log_base`` units, after
        rounding to 10 decimals). With 0, as in Quinlan's ID3, zero-gain splits are made.
    categorical_features : None, column names, column indices or a boolean mask
        Numeric columns to treat as categorical (multiway). Strings, booleans and pandas
        ``category`` columns are always categorical.
    categorical_split : {"multiway", "subsets"}, default "multiway"
        ``"multiway"``: one branch per value seen at the node (ID3). ``"subsets"``: C4.5's
        value subsets: starting from one branch per value, the two branches whose merge scores
        best are merged down to two, and the best-scoring configuration is the split (ties go
        to fewer branches). Costs about v^3 operations per node for v values.
    class_weight : None, "balanced" or dict, default None
        Weights per class, multiplied into ``sample_weight`` (as in scikit-learn).
    missing : {"auto", "fractional", "stop"}, default "auto"
        Rows missing the chosen attribute. ``"fractional"`` (C4.5): in training and in
        prediction the row goes down every branch with the branch's share of the weight, and
        a prediction sums the leaves' distributions by those shares. ``"stop"`` (the seed's
        ID3): the row stays at the node and gets its distribution. ``"auto"`` is
        ``"fractional"`` for the C4.5 settings (``criterion="gain_ratio"`` or
        ``prune="error"``) and ``"stop"`` otherwise.
    missing_values : str, sequence of str, or None, default "?"
        Strings read as missing besides None and NaN; None or ``()`` makes ``"?"`` a category.
    prune : {None, "error"}, default None
        ``"error"``: C4.5's error-based pruning with subtree raising at ``confidence``.
    confidence : float in (0, 1), default 0.25
        C4.5's CF: lower values prune more.
    ccp_alpha : float >= 0, default 0.0
        Minimal cost-complexity pruning (as in scikit-learn), on the entropy in bits weighted
        by the share of the training weight; see ``cost_complexity_pruning_path``.

    The order is: grow (with the stopping rules), then ``max_leaf_nodes``, then ``prune``,
    then ``ccp_alpha``. Ties between equal (rounded) scores go to the first column; a numeric
    column's tie between thresholds goes to the lowest. A category never seen at a node stops
    there and gets the node's class distribution.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    n_classes_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        The column names, when X was a DataFrame with string column names.
    features_ : list of FeatureSpec
        Per column: name, kind ("categorical" or "numeric") and categories.
    feature_importances_ : ndarray
        Total weighted entropy decrease of each feature's splits, normalised to sum to 1.
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
        min_samples_leaf=1,
        min_weight_fraction_leaf=0.0,
        max_leaf_nodes=None,
        min_gain=0.0,
        categorical_features=None,
        categorical_split="multiway",
        class_weight=None,
        missing="auto",
        missing_values="?",
        prune=None,
        confidence=0.25,
        ccp_alpha=0.0,
    ):
        self.criterion = criterion
        self.log_base = log_base
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.max_leaf_nodes = max_leaf_nodes
        self.min_gain = min_gain
        self.categorical_features = categorical_features
        self.categorical_split = categorical_split
        self.class_weight = class_weight
        self.missing = missing
        self.missing_values = missing_values
        self.prune = prune
        self.confidence = confidence
        self.ccp_alpha = ccp_alpha

    def _check_params(self):
        if not isinstance(self.criterion, str) or self.criterion not in CRITERIA:
            raise ValueError(
                f"criterion must be one of {', '.join(map(repr, CRITERIA))}; got {self.criterion!r}"
            )
        check_log_base(self.log_base, "log_base")
        _int_at_least(self.max_depth, 0, "max_depth", none_ok=True)
        _int_at_least(self.min_samples_split, 2, "min_samples_split")
        _int_at_least(self.min_samples_leaf, 1, "min_samples_leaf")
        _real_in(self.min_weight_fraction_leaf, 0, 0.5, "min_weight_fraction_leaf")
        _int_at_least(self.max_leaf_nodes, 2, "max_leaf_nodes", none_ok=True)
        _real_in(self.min_gain, 0, np.inf, "min_gain", high_open=True)
        if self.missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}; got {self.missing!r}")
        if self.categorical_split not in SPLITS:
            raise ValueError(
                f"categorical_split must be one of {SPLITS}; got {self.categorical_split!r}"
            )
        if self.prune not in PRUNE:
            raise ValueError(f"prune must be None or 'error'; got {self.prune!r}")
        _real_in(self.confidence, 0, 1, "confidence", low_open=True, high_open=True)
        _real_in(self.ccp_alpha, 0, np.inf, "ccp_alpha", high_open=True)
        return self._missing_strings()

    def _missing_strings(self) -> tuple:
        mv = self.missing_values
        if mv is None:
            return ()
        if isinstance(mv, str):
            return (mv,)
        if isinstance(mv, (list, tuple)) and all(isinstance(v, str) for v in mv):
            return tuple(mv)
        raise ValueError(f"missing_values must be None, a string or strings; got {mv!r}")

    @property
    def _fractional(self) -> bool:
        if self.missing == "auto":
            return self.criterion == "gain_ratio" or self.prune == "error"
        return self.missing == "fractional"

    def _grow(self, X, y, sample_weight, trace):
        missing = self._check_params()
        cols, names, _ = columns_of(X)
        validate_data(self, X, skip_check_array=True, reset=True)
        classes, y_codes = encode_y(y, len(cols[0]))
        y_codes = y_codes.astype(np.uint8 if len(classes) <= 2**8 else np.int64)  # small: kept
        w = row_weights(sample_weight, self.class_weight, y_codes, classes)
        # the builder alone reads the data (no trace, no C4.5 pruning, every row kept): float32
        # columns need no copy
        consume = trace is None and self.prune != "error"
        floats = consume and bool(np.all(w > 0))
        specs, enc = encode_fit(cols, names, self.categorical_features, missing, floats)
        if not np.all(w > 0):  # a row of weight 0 is a row that is not there
            keep = w > 0
            enc.codes = [c[keep] for c in enc.codes]
            y_codes, w = y_codes[keep], w[keep]
        total_weight = float(w.sum())
        if bool(np.all(w == 1.0)):
            w = None  # every weight is 1: the builder needs no array of them
        tree = grow(
            enc,
            y_codes,
            w,
            len(classes),
            criterion=self.criterion,
            log_base=float(self.log_base),
            max_depth=self.max_depth,
            min_samples_split=int(self.min_samples_split),
            min_samples_leaf=int(self.min_samples_leaf),
            min_leaf_weight=float(self.min_weight_fraction_leaf) * total_weight,
            min_gain=float(self.min_gain),
            fractional=self._fractional,
            trace=trace,
            consume_codes=consume,
            subsets=self.categorical_split == "subsets",
        )[0]
        if trace is not None:
            trace.tree = tree
        if self.max_leaf_nodes is not None:
            tree = limit_leaves(tree, int(self.max_leaf_nodes))
        if self.prune == "error":
            tree = prune_errors(
                tree,
                enc,
                y_codes,
                np.ones(len(y_codes)) if w is None else w,
                len(classes),
                float(self.confidence),
                self._fractional,
            )
        return tree, classes, specs, enc, y_codes

    def _set_tree(self, tree, classes, specs):
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self.features_ = specs
        self.tree_ = tree
        self.root_ = Node(tree, specs, classes)
        # predict's tables are built here, as scikit-learn's tree is: a predict only walks
        numeric, widths = self._kinds()
        tree.child_table(widths, numeric)
        tree.majority()

    def fit(self, X, y, sample_weight=None, *, trace=None):
        """Grow the tree on *X* (DataFrame or 2-D array-like) and labels *y*; return self.

        *sample_weight* (one non-negative number per row) weighs every count; a row of weight
        0 is left out. *trace*, when given, is called once per node (root first, then depth by
        depth) with a text block: each candidate attribute with its per-branch class
        proportions and entropies, and the attribute chosen. ``trace=print`` prints them. The
        trace shows the tree as grown, before any pruning.
        """
        from ._trace import Recorder, format_trace, trace_orders

        recorder = Recorder() if trace is not None else None
        tree, classes, specs, enc, y_codes = self._grow(X, y, sample_weight, recorder)
        if self.ccp_alpha > 0:
            tree = tree.keep(ccp_sequence(tree, float(self.ccp_alpha))[2])
        self._set_tree(tree, classes, specs)
        if trace is not None:
            orders = trace_orders(enc, y_codes)
            shown = _GrownView(self, recorder.tree)  # the trace names paths in the grown tree
            for record in recorder.records:
                trace(format_trace(shown, record, orders, self._fractional))
        return self

    def cost_complexity_pruning_path(self, X, y, sample_weight=None):
        """The effective alphas of minimal cost-complexity pruning, and the leaf impurities.

        As scikit-learn's: returns a ``Bunch`` with ``ccp_alphas`` (increasing, from 0) and
        ``impurities`` (the total leaf impurity of the tree pruned at each alpha), computed on
        the tree that ``fit`` grows with these parameters and ``ccp_alpha=0``.
        """
        from sklearn.utils import Bunch

        tree = self._grow(X, y, sample_weight, None)[0]
        alphas, impurities, _ = ccp_sequence(tree)
        return Bunch(ccp_alphas=alphas, impurities=impurities)

    def _check_features(self, X):
        """scikit-learn's feature checks at predict time (``validate_data``).

        A DataFrame with the fitted column names, in order, passes them silently; that case
        is recognised here first, as reading the names through sklearn took about a third of
        a 10,000-row predict.
        """
        names = getattr(self, "feature_names_in_", None)
        columns = getattr(X, "columns", None)
        if isinstance(X, pd.DataFrame) and names is not None and len(columns) == len(names):
            if all(isinstance(c, str) for c in columns) and (columns == names).all():
                return
        validate_data(self, X, skip_check_array=True, reset=False)

    def _encode(self, X, slots=None):
        check_is_fitted(self)
        cols, _, _ = columns_of(X, type(self).__name__, arrays=True)
        self._check_features(X)
        return encode_predict(cols, self.features_, self._missing_strings(), slots)

    def _stops(self, X):
        """``apply`` without fractional parts: the node where each row stops."""
        numeric, widths = self._kinds()
        block = self._number_block(X, numeric)
        if block is not None:  # numbers only: walk X itself, no copy
            return walk(self.tree_, numeric, widths, block.T, slotted=True, zero_row=False)
        return walk(self.tree_, numeric, widths, self._encode(X, widths), slotted=True)

    def _number_block(self, X, numeric):
        """*X* itself when it is a C-ordered float32 or float64 array of numeric features."""
        check_is_fitted(self)
        if not (
            isinstance(X, np.ndarray)
            and X.ndim == 2
            and X.dtype in (np.float32, np.float64)
            and X.flags.c_contiguous
            and X.shape[0] > 0
            and numeric.all()
        ):
            return None
        validate_data(self, X, skip_check_array=True, reset=False)  # the feature checks
        return X

    def _kinds(self):
        return np.array([s.kind == "numeric" for s in self.features_]), branch_widths(
            self.features_
        )

    def apply(self, X):
        """The id of the node where each row stops: a leaf, or where its path splits or ends.

        A row stops where its value is missing (with ``missing="fractional"`` its parts go on
        down every branch from there) or is a category that node never saw.
        """
        return self._stops(X)

    def decision_path(self, X):
        """A sparse ``(n_rows, n_nodes)`` indicator of the nodes each row passes through."""
        numeric, widths = self._kinds()
        visits = []
        spread(self.tree_, numeric, widths, self._encode(X), self._fractional, visits)
        rows = np.concatenate([r for r, _ in visits])
        nodes = np.concatenate([n for _, n in visits])
        shape = (len(visits[0][0]), self.tree_.n_nodes)
        path = sparse.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, nodes)), shape)
        path.data[:] = 1
        return path

    def predict_proba(self, X):
        """Class probabilities: the class shares of the training weight where each row stops.

        With ``missing="fractional"``, a row that goes down several branches gets the sum of
        their leaves' shares, each weighted by the part of the row that got there.
        """
        dist = self._distributions()
        if not self._fractional:
            return dist[self._stops(X)]
        xe = self._encode(X)
        numeric, widths = self._kinds()
        rows, nodes, mass = spread(self.tree_, numeric, widths, xe, True)
        out = np.zeros((xe.shape[1], len(self.classes_)))
        np.add.at(out, rows, dist[nodes] * mass[:, None])
        return out

    def predict(self, X):
        """The most probable class of each row (``classes_[argmax(predict_proba(X))]``)."""
        if not self._fractional:  # each node's class, looked up: the same argmax, per node
            check_is_fitted(self)
            return self.classes_[self.tree_.majority()[self._stops(X)]]
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def _distributions(self):
        check_is_fitted(self)
        counts = self.tree_.counts
        return counts / counts.sum(axis=1, keepdims=True)

    @property
    def feature_importances_(self):
        check_is_fitted(self)
        return feature_importances(self.tree_, self.n_features_in_)

    def get_depth(self) -> int:
        """The depth of the tree (0 for a single leaf)."""
        check_is_fitted(self)
        return int(self.tree_.depth.max())

    def get_n_leaves(self) -> int:
        check_is_fitted(self)
        return int((self.tree_.feature < 0).sum())

    def __sklearn_is_fitted__(self):
        return hasattr(self, "tree_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        # string=False only steers scikit-learn's dtype-object check to expect a TypeError
        # for a dict value (which fit raises); strings work all the same.
        tags.input_tags.string = False
        return tags


class _GrownView:
    """The classifier as the trace sees it: its parameters, with the tree as grown."""

    def __init__(self, clf, tree):
        self.__dict__.update(clf.__dict__)
        self.tree_ = tree

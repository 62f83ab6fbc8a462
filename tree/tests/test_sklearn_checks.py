"""scikit-learn's own estimator checks, every one of them, on ID3 and on C4.5 settings.

Nothing is skipped here, the sample-weight checks included. scikit-learn itself skips
check_array_api_input unless the environment variable SCIPY_ARRAY_API=1 is set (array-API
dispatch, not this estimator).
"""

import pytest
from sklearn.base import clone, is_classifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from tree import ID3Classifier


@parametrize_with_checks(
    [
        ID3Classifier(),
        ID3Classifier(criterion="gain_ratio", prune="error"),
        ID3Classifier(criterion="unweighted_entropy", log_base=10, missing="fractional"),
        ID3Classifier(min_weight_fraction_leaf=0.05, max_leaf_nodes=8, ccp_alpha=0.01),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_clone_and_params_round_trip():
    clf = ID3Classifier(criterion="gain_ratio", max_depth=3)
    assert is_classifier(clf)
    assert clone(clf).get_params() == clf.get_params()
    assert repr(clf) == "ID3Classifier(criterion='gain_ratio', max_depth=3)"
    with pytest.raises(ValueError, match="Invalid parameter 'depth'"):
        clf.set_params(depth=2)

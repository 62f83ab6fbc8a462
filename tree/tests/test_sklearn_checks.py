"""scikit-learn's own estimator checks, every one of them, on each criterion.

Nothing is skipped here. scikit-learn itself skips check_array_api_input unless the
environment variable SCIPY_ARRAY_API=1 is set (array-API dispatch, not this estimator).
ID3Classifier does not subclass sklearn.base.BaseEstimator (scikit-learn is optional at run
time), so scikit-learn warns once while collecting; the checks pass all the same.
"""

import warnings

import pytest

from tree import ID3Classifier

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Estimator ID3Classifier does not inherit")
    checks = parametrize_with_checks(
        [
            ID3Classifier(),
            ID3Classifier(criterion="gain_ratio"),
            ID3Classifier(criterion="unweighted_entropy", log_base=10),
        ]
    )


@checks
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_clone_and_params_round_trip():
    from sklearn.base import clone, is_classifier

    clf = ID3Classifier(criterion="gain_ratio", max_depth=3)
    assert is_classifier(clf)
    assert clone(clf).get_params() == clf.get_params()
    assert repr(clf) == "ID3Classifier(criterion='gain_ratio', max_depth=3)"
    with pytest.raises(ValueError, match="Invalid parameter 'depth'"):
        clf.set_params(depth=2)

"""tree.entropy: the seed's numbers, its edge cases, and its errors."""

import math

import pytest

from tree import entropy
from tree._trace import number


@pytest.mark.parametrize(
    ("counts", "seed"),
    [
        ([4, 3], "0.2965"),  # length = long
        ([1, 2], "0.2764"),  # length = short
        ([2, 5], "0.2598"),  # image = Y
        ([3, 0], "0"),  # image = N
        ([5, 5], "0.301"),  # the 50/50 bag of marbles
    ],
)
def test_seed_entropies_in_log_base_10_read_as_in_the_seed(counts, seed):
    assert number(entropy(counts, base=10)) == seed


def test_4_and_3_is_0_2965_to_four_decimals_cut_as_the_seed_does():
    value = entropy([4, 3], base=10)
    assert math.isclose(value, 0.2965832, abs_tol=1e-7)
    assert math.floor(value * 10_000) / 10_000 == 0.2965


def test_bitcoin_branches_are_0_217():
    assert round(entropy([4, 1], base=10), 3) == 0.217
    assert entropy([4, 1], base=10) == entropy([1, 4], base=10)


def test_counts_and_proportions_agree_and_base_2_gives_bits():
    assert entropy([0.5, 0.5]) == 1.0
    assert entropy([1, 1, 1, 1]) == 2.0
    assert math.isclose(entropy([6, 2]), entropy([0.75, 0.25]))
    assert math.isclose(entropy([6, 2], base=math.e), entropy([6, 2]) * math.log(2))


def test_pure_empty_and_zero_bags_have_no_entropy():
    assert entropy([7]) == 0.0
    assert entropy([0, 9, 0]) == 0.0
    assert entropy([]) == 0.0
    assert entropy([0, 0]) == 0.0


@pytest.mark.parametrize("base", [0, -2, 1, 1.0, float("nan"), float("inf"), "10", None, True])
def test_bad_bases_raise_value_error(base):
    with pytest.raises(ValueError, match="base must be a positive number other than 1"):
        entropy([1, 1], base=base)


@pytest.mark.parametrize("counts", [[1, -1], [1, float("nan")], [[1, 2], [3, 4]]])
def test_bad_counts_raise_value_error(counts):
    with pytest.raises(ValueError, match="counts"):
        entropy(counts)

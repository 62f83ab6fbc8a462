"""The docstring examples of every module in tree run and are right."""

import doctest
import importlib

import pytest

MODULES = [
    "tree",
    "tree._entropy",
    "tree._inputs",
    "tree._encode",
    "tree._score",
    "tree._build",
    "tree._arrays",
    "tree._node",
    "tree._prune",
    "tree._c45prune",
    "tree._trace",
    "tree._classifier",
    "tree._export",
    "tree._io",
    "tree.cli",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

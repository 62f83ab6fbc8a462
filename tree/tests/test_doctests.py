"""The docstring examples of every module in tree run and are right."""

import doctest
import importlib
import pkgutil

import pytest

import tree

# every module of the package, found rather than listed, so that a new one is not missed
MODULES = ["tree"] + sorted(
    info.name
    for info in pkgutil.iter_modules(tree.__path__, "tree.")
    if info.name not in ("tree.tests", "tree.__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

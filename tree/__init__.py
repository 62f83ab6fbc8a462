"""Small, fast ID3 and C4.5 decision trees with a scikit-learn interface.

>>> from tree import entropy
>>> round(entropy([5, 5], base=10), 3)
0.301

See ``ID3Classifier`` for the estimator, ``Node`` for the fitted tree (``clf.root_``),
``export_text``/``export_graphviz``/``export_png`` to show it, ``save_json``/``load_json`` to
keep it, and ``python -m tree --help`` for the command line.
"""

from ._entropy import entropy

_LAZY = {  # loaded on first use: they import scikit-learn, which takes about a second
    "ID3Classifier": "._classifier",
    "FeatureSpec": "._encode",
    "export_graphviz": "._export",
    "export_png": "._export",
    "export_text": "._export",
    "ModelFileError": "._io",
    "from_json": "._io",
    "load_json": "._io",
    "save_json": "._io",
    "to_json": "._io",
    "Node": "._node",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FeatureSpec",
    "ID3Classifier",
    "ModelFileError",
    "Node",
    "entropy",
    "export_graphviz",
    "export_png",
    "export_text",
    "from_json",
    "load_json",
    "save_json",
    "to_json",
]

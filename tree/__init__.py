"""Small, fast ID3 and C4.5 decision trees with a scikit-learn interface.

>>> from tree import entropy
>>> round(entropy([5, 5], base=10), 3)
0.301

See ``ID3Classifier`` for the estimator, ``Node`` for the fitted tree (``clf.root_``),
``export_text``/``export_graphviz``/``export_png`` to show it, ``save_json``/``load_json`` to
keep it, and ``python -m tree --help`` for the command line.
"""

from ._classifier import ID3Classifier
from ._encode import FeatureSpec
from ._entropy import entropy
from ._export import export_graphviz, export_png, export_text
from ._io import ModelFileError, from_json, load_json, save_json, to_json
from ._node import Node

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

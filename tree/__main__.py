"""``python -m tree``: see ``tree.cli``."""

import sys

from .cli import main

sys.exit(main())

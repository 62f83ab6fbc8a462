"""`python -m training` and `torchrun ... -m training`; launch lines in training/train.py."""

import sys

from .train import cli

sys.exit(cli())

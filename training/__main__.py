"""`python -m training` and `torchrun ... -m training`; launch lines in training/train.py."""

import sys

from .errors import run_cli


def _main(argv: list[str]) -> int:
    # Flags first: a mistake there is reported before torch is even imported.
    from .config import get_args_parser, parse_args

    args = parse_args(get_args_parser(), argv)
    from .train import main

    return main(args)


sys.exit(run_cli(_main))

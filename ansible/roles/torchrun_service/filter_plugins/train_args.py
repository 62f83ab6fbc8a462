"""The filter that checks torchrun_service_train_args on the controller, before any deploy.

`torchrun_service_train_args_errors(train_args, flags)` returns one message per key that is
not a flag of `python -m training` (naming the nearest flag) or that the role sets itself;
an empty list when every key is usable. `flags` is the training CLI's list of long flags
without dashes (vars/main.yml keeps it; ansible/tests checks it against the CLI).
"""

from __future__ import annotations

import difflib

# Keys the job accepts but that the unit must not get from train.yaml, and why.
RESERVED = {
    "config": "the unit passes --config /etc/<name>/train.yaml itself",
    "output-dir": "the unit sets it: use torchrun_service_output_dir (or _output_root)",
    "shared-output-dir": "the unit sets it: use torchrun_service_output_shared",
    "start-over": (
        "it would start over at every restart: use launch.yml with "
        "-e torchrun_service_launch_reset=true"
    ),
}


def train_args_errors(train_args, flags) -> list[str]:
    if not isinstance(train_args, dict):
        return [f"must be a mapping of flag: value, got {type(train_args).__name__}"]
    known = set(flags)
    errors = []
    for key in train_args:
        name = str(key).replace("_", "-")
        if name in RESERVED:
            errors.append(f"{key!r}: {RESERVED[name]}")
        elif name not in known:
            near = difflib.get_close_matches(name, sorted(known - set(RESERVED)), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            errors.append(f"{key!r} is not a flag of python -m training{hint}")
    return errors


class FilterModule:
    def filters(self):
        return {"torchrun_service_train_args_errors": train_args_errors}

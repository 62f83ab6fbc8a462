"""torchrun for a systemd unit (installed by the torchrun_service role).

Runs torch.distributed.run exactly as the `torchrun` script does. The one difference: when the
agent is stopped with SIGTERM or SIGINT (systemctl stop), torchrun forwards the signal to its
workers (which checkpoint and exit) and then raises SignalException, exiting with status 1;
here the process instead ends by that same signal, which systemd reads as a clean stop rather
than a failure (so the unit is "inactive", not "failed", and Restart=on-failure does not fire).
Every other outcome, including a failed worker group, keeps torchrun's own exit status.
"""

import os
import signal
import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main

if __name__ == "__main__":
    sys.argv[0] = "torchrun"
    try:
        main()
    except SignalException as exc:
        if exc.sigval not in (signal.SIGTERM, signal.SIGINT):
            raise
        print(f"torchrun stopped by {exc.sigval.name}", file=sys.stderr, flush=True)
        signal.signal(exc.sigval, signal.SIG_DFL)
        os.kill(os.getpid(), exc.sigval)

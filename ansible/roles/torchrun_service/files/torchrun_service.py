"""torchrun for a systemd unit (installed by the torchrun_service role).

Runs torch.distributed.run exactly as the `torchrun` script does, with two differences:

1. Stop requests. When the agent is stopped with SIGTERM or SIGINT (systemctl stop),
   torchrun forwards the signal to its workers (which checkpoint and exit) and then raises
   SignalException, exiting with status 1; here the process instead ends by that same signal,
   which systemd reads as a clean stop rather than a failure (so the unit is "inactive", not
   "failed", and Restart=on-failure does not fire).
2. User mistakes are not retried. The training job exits 2 for a mistake in its flags, files,
   data or environment, the same on every rank. torchrun restarts a failed worker group
   whatever the exit status (LocalElasticAgent._invoke_run restarts on any FAILED state while
   restarts remain, and a RunResult carries each failed worker's exitcode). Here, when every
   worker that failed with a status of its own (not killed by a signal) exited 2, the agent's
   remaining restarts are set to 0, so the group stops at once, and the process exits 2;
   the unit's RestartPreventExitStatus=2 then keeps systemd from restarting it either.

Every other outcome, including a failed worker group, keeps torchrun's own exit status.
"""

import os
import signal
import sys

from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main

USER_MISTAKE = 2


def is_user_mistake(failures) -> bool:
    """Every worker that exited by itself (exitcode > 0; the agent's kills are < 0) exited 2."""
    codes = {f.exitcode for f in failures.values() if f.exitcode is not None and f.exitcode > 0}
    return codes == {USER_MISTAKE}


_monitor_workers = LocalElasticAgent._monitor_workers


def _monitor_without_retrying_mistakes(self, worker_group):
    result = _monitor_workers(self, worker_group)
    if result.is_failed() and is_user_mistake(result.failures) and self._remaining_restarts:
        print(
            f"torchrun: the workers exited {USER_MISTAKE} (a user mistake, reported above): "
            f"not restarting them ({self._remaining_restarts} restarts left unused)",
            file=sys.stderr,
            flush=True,
        )
        self._remaining_restarts = 0
    return result


if __name__ == "__main__":
    sys.argv[0] = "torchrun"
    LocalElasticAgent._monitor_workers = _monitor_without_retrying_mistakes
    try:
        main()
    except SignalException as exc:
        if exc.sigval not in (signal.SIGTERM, signal.SIGINT):
            raise
        print(f"torchrun stopped by {exc.sigval.name}", file=sys.stderr, flush=True)
        signal.signal(exc.sigval, signal.SIG_DFL)
        os.kill(os.getpid(), exc.sigval)
    except ChildFailedError as exc:
        if not is_user_mistake(exc.failures):
            raise
        print(
            f"torchrun: exit {USER_MISTAKE}, a user mistake: fix it, then start the job again",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(USER_MISTAKE)

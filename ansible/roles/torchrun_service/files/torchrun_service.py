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

3. Waiting for the group instead of giving up. A rendezvous that cannot complete (fewer than
   --nnodes MIN nodes within join_timeout: RendezvousTimeoutError; the rendezvous host does
   not answer: RendezvousConnectionError; another node closed it on its way out:
   RendezvousClosedError) makes torchrun exit 1, and systemd's StartLimitBurst would end the
   unit after a few such exits. Here the process instead waits DDP_RDZV_RETRY_SEC seconds and
   execs itself again (same PID: systemd counts no restart), for at most DDP_RDZV_RETRY_FOR
   seconds in all (0: until stopped; `launch.yml` re-forms the job on the nodes left).
4. Saying who is missing. While a rendezvous round is open, and when it completes, one line
   names the nodes that joined and the expected nodes that did not (DDP_NODES: the launch's
   "name=address" list), read from the c10d handler's copy of the rendezvous state
   (participants, wait list, heartbeats), so `journalctl -u ddp-train` says what the job
   waits for.

Every other outcome, including a failed worker group, keeps torchrun's own exit status.
"""

import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime

from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous.api import (
    RendezvousClosedError,
    RendezvousConnectionError,
    RendezvousTimeoutError,
)
from torch.distributed.elastic.rendezvous.dynamic_rendezvous import DynamicRendezvousHandler
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


# --- the rendezvous: who is there, who is missing, and waiting instead of giving up ----------

WAITING = (RendezvousTimeoutError, RendezvousConnectionError, RendezvousClosedError)


def expected_nodes(text: str) -> dict[str, str]:
    """{address: name} from DDP_NODES ("n1=10.0.0.1,n2=10.0.0.2"; a bare entry is both)."""
    nodes = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, _, addr = entry.partition("=")
        nodes[addr or name] = name
    return nodes


def describe_round(state, expected: dict[str, str], alive_after=None) -> tuple[list, list]:
    """(names that joined, "name (address)" of the expected nodes that did not)."""
    joined = list(state.participants) + list(state.wait_list)
    if alive_after is not None:
        beats = dict(state.last_heartbeats)
        joined = [n for n in joined if beats.get(n) is None or beats[n] >= alive_after]
    addrs = sorted({n.addr for n in joined})
    missing = [f"{name} ({addr})" for addr, name in expected.items() if addr not in addrs]
    return [expected.get(a, a) for a in addrs], missing


def _log(message: str) -> None:
    print(f"torchrun_service: {message}", file=sys.stderr, flush=True)


LAST_MISSING: list[str] = []


def _report_round(handler, done: threading.Event, every: float) -> None:
    """Every `every` seconds while the round is open: who joined, who is missing."""
    expected = expected_nodes(os.environ.get("DDP_NODES", ""))
    settings = handler._settings
    started = time.monotonic()
    while not done.wait(every):
        try:
            window = settings.keep_alive_interval * settings.keep_alive_max_attempt
            joined, missing = describe_round(
                handler._state_holder.state, expected, datetime.now(UTC) - window
            )
        except (AttributeError, RuntimeError):  # a torch change, or the state mid-update
            continue
        LAST_MISSING[:] = missing
        left = settings.timeout.join.total_seconds() - (time.monotonic() - started)
        _log(
            f"rendezvous {settings.run_id}: {len(joined)} node(s) here ({', '.join(joined)}), "
            f"waiting for {settings.min_nodes}..{settings.max_nodes}; missing: "
            f"{', '.join(missing) or 'none'}; join timeout in {max(left, 0):.0f} s"
        )


_next_rendezvous = DynamicRendezvousHandler.next_rendezvous


def _next_rendezvous_reporting(self):
    done = threading.Event()
    every = float(os.environ.get("DDP_RDZV_REPORT_SEC", "10"))
    threading.Thread(target=_report_round, args=(self, done, every), daemon=True).start()
    try:
        info = _next_rendezvous(self)
    finally:
        done.set()
    try:
        joined, missing = describe_round(
            self._state_holder.state, expected_nodes(os.environ.get("DDP_NODES", ""))
        )
        LAST_MISSING[:] = missing
        _log(
            f"rendezvous {self._settings.run_id} complete: {len(joined)} node(s) "
            f"({', '.join(joined)}); not in this round: {', '.join(missing) or 'none'}"
        )
    except AttributeError:
        pass
    return info


def wait_and_retry(exc: Exception, argv: list[str]) -> None:
    """Log what the job waits for, sleep, and exec this script again (or return: give up)."""
    now = time.time()
    since = float(os.environ.get("DDP_RDZV_WAITING_SINCE") or now)
    limit = float(os.environ.get("DDP_RDZV_RETRY_FOR", "0"))
    delay = float(os.environ.get("DDP_RDZV_RETRY_SEC", "15"))
    endpoint = os.environ.get("DDP_RDZV_ENDPOINT", "?")
    host = expected_nodes(os.environ.get("DDP_NODES", "")).get(endpoint.rsplit(":", 1)[0], "")
    if isinstance(exc, RendezvousConnectionError):
        why = f"the rendezvous host {host} ({endpoint}) does not answer"
    elif isinstance(exc, RendezvousTimeoutError):
        why = f"too few nodes joined in time (missing: {', '.join(LAST_MISSING) or 'unknown'})"
    else:
        why = "the rendezvous was closed (another node gave up or the job ended there)"
    if limit and now - since > limit:
        _log(f"{why}; waited {now - since:.0f} s, more than DDP_RDZV_RETRY_FOR: giving up")
        return
    _log(
        f"{why}: waiting for the group, next try in {delay:.0f} s (waiting since "
        f"{time.strftime('%H:%M:%S', time.localtime(since))}; launch.yml re-forms the job on "
        "the healthy nodes left)"
    )
    for sig in (signal.SIGTERM, signal.SIGINT):  # a stop while waiting is a clean stop
        signal.signal(sig, signal.SIG_DFL)
    time.sleep(delay)
    os.environ["DDP_RDZV_WAITING_SINCE"] = str(since)
    os.execv(sys.executable, [sys.executable, *argv])


if __name__ == "__main__":
    own_argv = [os.path.abspath(sys.argv[0]), *sys.argv[1:]]
    sys.argv[0] = "torchrun"
    LocalElasticAgent._monitor_workers = _monitor_without_retrying_mistakes
    DynamicRendezvousHandler.next_rendezvous = _next_rendezvous_reporting
    try:
        main()
    except WAITING as exc:
        wait_and_retry(exc, own_argv)
        raise
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

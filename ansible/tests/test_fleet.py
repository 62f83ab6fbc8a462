"""The fleet logic of torchrun_service on the controller: the address rule, the health gate's
verdicts and table, the collective test's bandwidth formula, and the unit wrapper's waiting
at a rendezvous that cannot complete, down to a real elastic re-form of three torchrun agents
on loopback addresses. The molecule scenario `cluster` runs them in containers."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "ansible" / "roles" / "torchrun_service"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fleet = _load("fleet", ROLE / "filter_plugins" / "fleet.py")
wrapper = _load("torchrun_service_wrapper", ROLE / "files" / "torchrun_service.py")
bandwidth = _load("bandwidth_check", ROLE / "files" / "bandwidth_check.py")


# --- the address each node advertises --------------------------------------------------------


def test_an_ip_ansible_host_is_the_address_without_any_facts():
    assert fleet.node_address({"ansible_host": "10.0.0.7"}, "", "n1") == "10.0.0.7"
    assert fleet.node_address({"ansible_host": "fd00::7"}, "ens1", "n1") == "fd00::7"


def test_a_named_host_takes_its_interfaces_address_else_the_default_routes():
    facts = {
        "default_ipv4": {"address": "192.168.1.5"},
        "ens1f0": {"ipv4": {"address": "10.1.0.5"}},
        "interfaces": ["lo", "ens1f0"],
    }
    host = {"ansible_host": "node5.example", "ansible_facts": facts}
    assert fleet.node_address(host, "ens1f0", "n5") == "10.1.0.5"
    assert fleet.node_address(host, "", "n5") == "192.168.1.5"


def test_no_address_fails_naming_the_host_and_the_fix():
    host = {"ansible_host": "node5.example", "ansible_facts": {"interfaces": ["lo"]}}
    with pytest.raises(AnsibleFilterError, match="n5 has no IPv4 address on .*'ib0'.*lo"):
        fleet.node_address(host, "ib0", "n5")
    with pytest.raises(AnsibleFilterError, match="no address for n5.*torchrun_service_interface"):
        fleet.node_address({"ansible_facts": {"interfaces": ["lo"]}}, "", "n5")
    # site.yml's defaults for a node outside a --limit: its name, DNS decides.
    assert fleet.node_address({}, "", "n5", strict=False) == "n5"


# --- the health gate's decision --------------------------------------------------------------

SETTINGS = {
    "enabled": True,
    "min_free_gib": 50.0,
    "max_clock_offset_s": 2.0,
    "require_ntp": True,
    "bandwidth_fraction": 0.5,
    "nnodes_min": 0,
    "nnodes_max": 0,
    "rdzv_host": "",
}


def _report(address, **changes):
    report = {
        "address": address,
        "gpus": [{"index": 0, "ecc_uncorrected": 0, "remap_pending": False}],
        "cuda": {"ok": True, "cuda_version": "13.0", "count": 1},
        "free_gib": 400.0,
        "output_dir": "/var/lib/ddp-train/jobs/j",
        "clock_offset_s": 0.1,
        "clock_uncertainty_s": 0.3,
        "clock_synchronized": True,
        "bandwidth_gbps": 40.0,
    }
    report.update(changes)
    return {"_torchrun_service_health_node": report}


NOT_READY = "CUDA_ERROR_SYSTEM_NOT_READY"


def test_each_failed_check_leaves_its_node_out_with_the_reason():
    hostvars = {
        "ok1": _report("10.0.0.1"),
        "cuda": _report(
            "10.0.0.2",
            cuda={
                "ok": False,
                "call": "cuInit",
                "error": 802,
                "name": "CUDA_ERROR_SYSTEM_NOT_READY",
            },
        ),
        "ecc": _report("10.0.0.3", gpus=[{"index": 0, "ecc_uncorrected": 3}]),
        "remap": _report("10.0.0.4", gpus=[{"index": 1, "remap_pending": True}]),
        "disk": _report("10.0.0.5", free_gib=3.5),
        "clock": _report("10.0.0.6", clock_offset_s=-9.0),
        "ntp": _report("10.0.0.7", clock_synchronized=False),
        "slow": _report("10.0.0.8", bandwidth_gbps=4.0),
        "ok2": _report("10.0.0.9", bandwidth_gbps=38.0),
        "gone": {},
        "cpu": _report("10.0.0.10", gpus=[], cuda={}),
    }
    group = [*hostvars, "limited"]
    hostvars["limited"] = {}
    play = [n for n in group if n != "limited"]
    fleet_ = fleet.health(group, hostvars, SETTINGS, play)
    assert fleet_["healthy"] == ["ok1", "ok2", "cpu"]
    out = fleet_["left_out"]
    assert out["cuda"] == "CUDA: cuInit returned 802 CUDA_ERROR_SYSTEM_NOT_READY"
    assert out["ecc"].startswith("GPU 0: 3 uncorrectable ECC error(s)")
    assert "row remap pending: yes" in out["remap"]
    assert out["disk"].startswith("3.5 GiB free in /var/lib/ddp-train/jobs/j")
    assert out["clock"].startswith("clock -9.0 s off the controller's")
    assert out["ntp"] == "clock not synchronised (the kernel reports no NTP sync)"
    assert out["slow"] == "bus bandwidth 4.00 GB/s below 0.5 x the median 39.00 GB/s"
    assert out["gone"] == "unreachable"
    assert out["limited"] == "not in this run (--limit)"
    assert fleet_["rdzv_node"] == "ok1" and fleet_["rdzv_host"] == "10.0.0.1"
    assert fleet_["nnodes"] == "3:3" and fleet_["enough"]
    rows = {r["node"]: r for r in fleet_["rows"]}
    assert rows["cpu"]["cuda"] == "no GPU" and rows["cpu"]["verdict"] == "healthy"
    assert rows["cuda"]["cuda"] == "FAIL cuInit 802 CUDA_ERROR_SYSTEM_NOT_READY"
    assert rows["slow"]["verdict"].startswith("slow: ")
    table = fleet_["table"]
    assert table[0].split() == [
        "node", "address", "GPUs", "CUDA", "ECC", "free", "GiB", "bandwidth", "GB/s", "verdict"
    ]  # fmt: skip
    assert len(table) == len(group) + 1
    assert len({line.index("verdict") for line in table[:1]}) == 1
    assert table[1].split()[:7] == ["ok1", "10.0.0.1", "1", "13.0", "ok", "400", "40.00"]


def test_a_clock_offset_within_the_measurements_spread_passes():
    hostvars = {"a": _report("10.0.0.1", clock_offset_s=2.5, clock_uncertainty_s=0.6)}
    assert fleet.health(["a"], hostvars, SETTINGS, ["a"])["healthy"] == ["a"]


def test_min_and_max_shape_the_node_range_and_the_spares():
    hostvars = {f"n{i}": _report(f"10.0.0.{i}") for i in range(1, 6)}
    hostvars["n5"] = {}
    group = list(hostvars)
    settings = {**SETTINGS, "nnodes_min": 2, "nnodes_max": 3}
    fleet_ = fleet.health(group, hostvars, settings, group)
    assert fleet_["healthy"] == ["n1", "n2", "n3"]
    assert fleet_["left_out"]["n4"] == "spare: beyond torchrun_service_nnodes_max=3"
    assert fleet_["nnodes"] == "2:3" and fleet_["enough"]
    too_few = fleet.health(group, hostvars, {**SETTINGS, "nnodes_min": 5}, group)
    assert not too_few["enough"] and too_few["nnodes_min"] == 5
    nobody = fleet.health(["n5"], hostvars, SETTINGS, ["n5"])
    assert not nobody["enough"] and nobody["rdzv_host"] == ""


def test_the_node_checks_alone_pick_the_nodes_for_the_collective_test():
    hostvars = {"a": _report("10.0.0.1"), "b": _report("10.0.0.2", free_gib=1.0)}
    assert fleet.health(["a", "b"], hostvars, SETTINGS, ["a", "b"], False) == {"healthy": ["a"]}
    off = {**SETTINGS, "enabled": False}
    assert fleet.health(["a", "b"], hostvars, off, ["a", "b"], False) == {"healthy": ["a", "b"]}


def test_bus_bandwidth_is_nccl_tests_formula():
    # nccl-tests PERFORMANCE.md: all-reduce busbw = algbw * 2(n-1)/n.
    assert bandwidth.bus_bandwidth_gbps(10**9, 1.0, 2) == pytest.approx(1.0)
    assert bandwidth.bus_bandwidth_gbps(10**9, 0.5, 8) == pytest.approx(3.5)


# --- the unit wrapper at a rendezvous that cannot complete -----------------------------------


def test_the_wrapper_names_the_nodes_that_joined_and_those_missing():
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import (
        _NodeDesc,
        _RendezvousState,
    )

    expected = wrapper.expected_nodes("n1=10.0.0.1, n2=10.0.0.2,n3=10.0.0.3,solo")
    assert expected == {"10.0.0.1": "n1", "10.0.0.2": "n2", "10.0.0.3": "n3", "solo": "solo"}
    state = _RendezvousState()
    now = datetime.now(UTC)
    a, b, c = (_NodeDesc(f"10.0.0.{i}", 100 + i, 0) for i in (1, 2, 3))
    state.participants = {a: 0, c: 1}
    state.wait_list = {b}
    state.last_heartbeats = {a: now, b: now, c: now - timedelta(seconds=60)}
    joined, missing = wrapper.describe_round(state, expected)
    assert joined == ["n1", "n2", "n3"] and missing == ["solo (solo)"]
    # n3's heartbeat is older than the keep-alive window: it counts as gone.
    joined, missing = wrapper.describe_round(state, expected, now - timedelta(seconds=15))
    assert joined == ["n1", "n2"] and missing == ["n3 (10.0.0.3)", "solo (solo)"]


def test_a_rendezvous_failure_waits_and_execs_again_until_the_limit(monkeypatch, capsys):
    from torch.distributed.elastic.rendezvous.api import RendezvousConnectionError

    calls = []
    monkeypatch.setattr(wrapper.time, "sleep", lambda s: calls.append(("sleep", s)))
    monkeypatch.setattr(wrapper.os, "execv", lambda exe, argv: calls.append(("execv", argv)))
    monkeypatch.setattr(wrapper.signal, "signal", lambda *a: None)
    monkeypatch.setenv("DDP_NODES", "n1=10.0.0.1,n2=10.0.0.2")
    monkeypatch.setenv("DDP_RDZV_ENDPOINT", "10.0.0.1:29400")
    monkeypatch.setenv("DDP_RDZV_RETRY_SEC", "7")
    monkeypatch.setenv("DDP_RDZV_RETRY_FOR", "600")
    monkeypatch.delenv("DDP_RDZV_WAITING_SINCE", raising=False)
    wrapper.wait_and_retry(RendezvousConnectionError("down"), ["/w.py", "--nnodes=2:2"])
    assert calls == [("sleep", 7.0), ("execv", [sys.executable, "/w.py", "--nnodes=2:2"])]
    err = capsys.readouterr().err
    assert "the rendezvous host n1 (10.0.0.1:29400) does not answer" in err
    assert "next try in 7 s" in err
    since = float(os.environ["DDP_RDZV_WAITING_SINCE"])
    # Waiting for longer than DDP_RDZV_RETRY_FOR: give up (the caller re-raises, exit 1).
    calls.clear()
    monkeypatch.setenv("DDP_RDZV_WAITING_SINCE", str(since - 601))
    wrapper.wait_and_retry(RendezvousConnectionError("down"), ["/w.py"])
    assert calls == [] and "giving up" in capsys.readouterr().err


ELASTIC_WORKER = """
import os, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
out = os.environ["OUT"]
done = int(open(out + "/step").read()) if os.path.exists(out + "/step") else 0
s = torch.tensor([done])
dist.all_reduce(s, op=dist.ReduceOp.MAX)
step = int(s)
while step < 100:
    dist.all_reduce(torch.ones(1))
    step += 1
    with open(out + "/log", "a") as f:
        f.write(f"{step} {dist.get_world_size()}\\n")
    open(out + "/step", "w").write(str(step))
    time.sleep(0.2)
"""


@pytest.mark.slow
def test_three_agents_lose_one_for_good_and_the_others_re_form_and_finish(tmp_path):
    """Three torchrun agents through the unit's wrapper on 127.0.0.1-3, --nnodes=2:3: the third
    node (agent and worker) is killed; the two others re-form a group of 2 by themselves, the
    wrapper names the missing node, and the job finishes."""
    (tmp_path / "worker.py").write_text(textwrap.dedent(ELASTIC_WORKER))
    port = 29000 + os.getpid() % 1000
    nodes = ",".join(f"n{i}=127.0.0.{i}" for i in (1, 2, 3))
    env = {
        **os.environ,
        "DDP_NODES": nodes,
        "DDP_RDZV_ENDPOINT": f"127.0.0.1:{port}",
        # two reports fall between n3's heartbeat expiring and the round completing 2 s
        # (last_call_timeout) later, so one of them names n3 as missing
        "DDP_RDZV_REPORT_SEC": "1",
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "LOGLEVEL": "INFO",
    }
    procs = []
    for i in (1, 2, 3):
        out = tmp_path / f"n{i}"
        out.mkdir()
        args = [
            sys.executable,
            str(ROLE / "files" / "torchrun_service.py"),
            "--nnodes=2:3",
            "--nproc-per-node=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=t",
            f"--rdzv-conf=join_timeout=120,last_call_timeout=2,is_host={str(i == 1).lower()}",
            f"--local-addr=127.0.0.{i}",
            "--max-restarts=3",
            "--monitor-interval=0.5",
            str(tmp_path / "worker.py"),
        ]
        log = open(out / "agent.log", "w")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen(args, env={**env, "OUT": str(out)}, stdout=log, stderr=log))
    try:
        deadline = time.time() + 180
        log3 = tmp_path / "n3" / "log"
        while not (log3.exists() and len(log3.read_text().split("\n")) > 10):
            assert time.time() < deadline and procs[2].poll() is None
            time.sleep(0.5)
        children = subprocess.run(
            ["pgrep", "-P", str(procs[2].pid)], capture_output=True, text=True
        ).stdout.split()
        for pid in [procs[2].pid, *map(int, children)]:
            os.kill(pid, signal.SIGKILL)  # the whole node at once
        for proc in procs[:2]:
            assert proc.wait(timeout=240) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for i in (1, 2):
        rows = [line.split() for line in (tmp_path / f"n{i}" / "log").read_text().splitlines()]
        worlds = [int(w) for _, w in rows]
        assert worlds[0] == 3 and worlds[-1] == 2 and int(rows[-1][0]) == 100
        text = (tmp_path / f"n{i}" / "agent.log").read_text()
        assert "rendezvous t complete: 3 node(s) (n1, n2, n3); not in this round: none" in text
        assert (
            "rendezvous t complete: 2 node(s) (n1, n2); not in this round: n3 (127.0.0.3)" in text
        )
        assert "missing: n3 (127.0.0.3)" in text

"""Filters of the fleet: the address each node advertises, and the health gate's verdict.

`torchrun_service_node_address(host, interface)` picks the address the other nodes reach a
node at, without DNS: `ansible_host` when it is an IP address, else the IPv4 address of
`interface` (facts), else the address of the default route (facts).

`torchrun_service_health(group, reports, settings)` turns what the gate measured on every node
into the launch's decision: one row per node of the group (node, address, GPUs, CUDA, ECC, free
GiB, clock, bandwidth, verdict), the healthy nodes in inventory order, the nodes left out with
why, the rendezvous host (the first healthy node) and torchrun's `--nnodes=MIN:MAX`.
"""

from __future__ import annotations

import ipaddress
import statistics

from ansible.errors import AnsibleFilterError


def is_ip(value) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def node_address(host: dict, interface: str = "", name: str = "?", strict: bool = True) -> str:
    """The address of node `name` (`host` is its hostvars); fails naming the host and the fix.

    With strict=False a node without facts gets its ansible_host, else its name (DNS then
    decides): for the defaults site.yml writes when a --limit leaves that node out.
    """
    if is_ip(host.get("ansible_host", "")):
        return str(host["ansible_host"])
    facts = host.get("ansible_facts") or {}
    if not strict and not facts.get("default_ipv4") and not facts.get("interfaces"):
        return str(host.get("ansible_host") or name)
    if interface:
        key = interface.replace("-", "_").replace(".", "_")
        address = (facts.get(key) or {}).get("ipv4", {}).get("address")
        if address:
            return address
        raise AnsibleFilterError(
            f"torchrun_service: {name} has no IPv4 address on torchrun_service_interface "
            f"{interface!r} (interfaces: {', '.join(facts.get('interfaces', [])) or 'no facts'})"
        )
    address = (facts.get("default_ipv4") or {}).get("address")
    if address:
        return address
    raise AnsibleFilterError(
        f"torchrun_service: no address for {name}: its ansible_host is not an IP address and "
        "it has no default route; set ansible_host to an IP address or "
        "torchrun_service_interface to the interface between the nodes"
    )


def node_address_of(pair, interface: str = "") -> str:
    """node_address, non-strict, of a (hostvars, name) pair: for `zip` + `map` in templates."""
    host, name = pair
    return node_address(host, interface, name, strict=False)


def _fmt_bw(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _gpu_checks(report: dict) -> tuple[str, str, list[str]]:
    """(CUDA column, ECC column, reasons to fail) of one node's report."""
    reasons = []
    gpus = report.get("gpus") or []
    if not gpus:
        return "no GPU", "-", reasons
    probe = report.get("cuda") or {}
    if probe.get("ok"):
        cuda = probe.get("cuda_version", "?")
    else:
        call = probe.get("call", "cuda_probe")
        cuda = f"FAIL {call} {probe.get('error', '')} {probe.get('name', '')}".strip()
        reasons.append(
            f"CUDA: {call} returned {probe.get('error', '?')} {probe.get('name', '')}"
            + (f" ({probe['hint']})" if probe.get("hint") else "")
        )
    bad = [g for g in gpus if g.get("ecc_uncorrected") or g.get("remap_pending")]
    for g in bad:
        reasons.append(
            f"GPU {g.get('index')}: {g.get('ecc_uncorrected') or 0} uncorrectable ECC error(s), "
            f"row remap pending: {'yes' if g.get('remap_pending') else 'no'}"
        )
    ecc = "ok" if not bad else f"{len(bad)} GPU(s) bad"
    return cuda, ecc, reasons


def node_checks(report: dict, settings: dict) -> list[str]:
    """The reasons a reachable node fails the checks that need no other node ([]: passed)."""
    reasons = list(_gpu_checks(report)[2])
    free = report.get("free_gib")
    if free is None or free < settings["min_free_gib"]:
        reasons.append(
            f"{free if free is not None else '?'} GiB free in {report.get('output_dir')}, "
            f"fewer than torchrun_service_health_min_free_gib={settings['min_free_gib']}"
        )
    offset = report.get("clock_offset_s")
    slack = report.get("clock_uncertainty_s") or 0.0  # the controller's two readings' spread
    if offset is not None and abs(offset) - slack > settings["max_clock_offset_s"]:
        reasons.append(
            f"clock {offset:+.1f} s off the controller's "
            f"(more than torchrun_service_health_max_clock_offset={settings['max_clock_offset_s']})"
        )
    if settings["require_ntp"] and not report.get("clock_synchronized"):
        reasons.append("clock not synchronised (the kernel reports no NTP sync)")
    return reasons


def health(group: list, hostvars, settings: dict, play_hosts: list, final: bool = True) -> dict:
    """The gate's decision for `group` (inventory order) from each node's report.

    A node's report is hostvars[node]._torchrun_service_health_node: its own measurements
    (`gpus`, `cuda`, `free_gib`, `clock_offset_s`, `clock_uncertainty_s`,
    `clock_synchronized`, `address`) and `bandwidth_gbps` or `collective_error` once the
    collective test ran. A node of `play_hosts` without a report did not answer; a node
    outside `play_hosts` is not part of this run (--limit). settings: enabled, min_free_gib,
    max_clock_offset_s, require_ntp, bandwidth_fraction, nnodes_min, nnodes_max (0: the number
    of healthy nodes), rdzv_host. With final=False only the node checks count (the nodes that
    go on to the collective test).
    """
    reports = {n: (hostvars[n].get("_torchrun_service_health_node") or {}) for n in group}
    rows, left_out, passed = [], {}, []
    for node in group:
        report = reports[node]
        if not report:
            why = "unreachable" if node in play_hosts else "not in this run (--limit)"
            left_out[node] = why
            rows.append(_row(node, {"unreachable": True}, why))
            continue
        reasons = node_checks(report, settings) if settings.get("enabled", True) else []
        if report.get("collective_error"):
            reasons.append(f"collective test failed: {report['collective_error']}")
        if reasons:
            left_out[node] = "; ".join(reasons)
        else:
            passed.append(node)
        rows.append(_row(node, report, "; ".join(reasons)))
    if not final:
        return {"healthy": passed}
    measured = [reports[n]["bandwidth_gbps"] for n in passed if reports[n].get("bandwidth_gbps")]
    median = statistics.median(measured) if measured else None
    healthy = []
    for node in passed:
        bw = reports[node].get("bandwidth_gbps")
        if median and bw is not None and bw < settings["bandwidth_fraction"] * median:
            why = (
                f"bus bandwidth {bw:.2f} GB/s below {settings['bandwidth_fraction']} x the "
                f"median {median:.2f} GB/s"
            )
            left_out[node] = why
            next(r for r in rows if r["node"] == node)["verdict"] = f"slow: {why}"
        else:
            healthy.append(node)
    nmax = int(settings.get("nnodes_max") or 0) or len(healthy)
    for node in healthy[nmax:]:
        left_out[node] = f"spare: beyond torchrun_service_nnodes_max={nmax}"
        next(r for r in rows if r["node"] == node)["verdict"] = left_out[node]
    healthy = healthy[:nmax]
    nmin = int(settings.get("nnodes_min") or 0) or len(healthy)
    for row in rows:
        row["verdict"] = row["verdict"] or "healthy"
    rdzv = settings.get("rdzv_host") or (reports[healthy[0]]["address"] if healthy else "")
    return {
        "rows": rows,
        "healthy": healthy,
        "addresses": {n: reports[n]["address"] for n in healthy},
        "left_out": left_out,
        "median_bandwidth_gbps": median,
        "rdzv_host": rdzv,
        "rdzv_node": healthy[0] if healthy and not settings.get("rdzv_host") else "",
        "nnodes": f"{nmin}:{max(nmin, len(healthy))}",
        "nnodes_min": nmin,
        "enough": bool(healthy) and len(healthy) >= nmin,
        "table": table(rows),
    }


def _row(node: str, report: dict, verdict: str) -> dict:
    cuda, ecc, _ = _gpu_checks(report) if not report.get("unreachable") else ("-", "-", [])
    return {
        "node": node,
        "address": report.get("address", "-"),
        "gpus": len(report.get("gpus") or []),
        "cuda": cuda,
        "ecc": ecc,
        "free_gib": report.get("free_gib"),
        "clock_offset_s": report.get("clock_offset_s"),
        "bandwidth_gbps": report.get("bandwidth_gbps"),
        "verdict": verdict,
    }


def table(rows: list) -> list[str]:
    """The rows as aligned text lines, a header first."""
    head = ["node", "address", "GPUs", "CUDA", "ECC", "free GiB", "bandwidth GB/s", "verdict"]
    body = [
        [
            r["node"],
            r["address"],
            str(r["gpus"]),
            r["cuda"],
            r["ecc"],
            "-" if r["free_gib"] is None else f"{r['free_gib']:.0f}",
            _fmt_bw(r["bandwidth_gbps"]),
            r["verdict"],
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]])
        for line in [head, *body]
    ]


class FilterModule:
    def filters(self):
        return {
            "torchrun_service_is_ip": is_ip,
            "torchrun_service_node_address": node_address,
            "torchrun_service_node_address_of": node_address_of,
            "torchrun_service_health": health,
        }

#!/usr/bin/python3
"""The report of `tools/lab compare`: reads the raw results compare.sh left in a directory and
writes the side-by-side table snatgw vs kernel, with the ratio snatgw/kernel per line, as
compare.txt (also printed), compare.json and compare.png (matplotlib, if installed).

usage: compare_report.py DIR

DIR holds meta.env and one directory per gateway (snatgw/, kernel/) with, per workload phase
(a: storm, client closes; b: storm, server closes; e: storm, close on accept, one pool
address; f: silent SYN flood, one pool address; c: UDP; d: iperf3):
  PHASE-hN.json            race_client --json (a, b, e) or udp_rr.py (c) of inside host N
  PHASE-server.json        race_server --json (a, b, e, f)
  d-up.json, d-down.json   iperf3 -J (upload, download)
  f-{before,during,after}.json  h2's race_client --json in each phase of the flood
  f-flood.env              packets h1 sent, seconds, SYNs/s asked, h1's sessions at the end
  f-{0,1,2,3}.tcp          counter snapshots between the flood's phases
  PHASE-{before,after}.tcp "ns counter value": hosts' TcpExtTCPSynRetrans, the server's
                           TcpExtListenOverflows / TcpExtListenDrops / TcpExtPAWSTimewait /
                           TcpExtTW* / TcpExtSyncookies*
  PHASE-{before,after}.gw.json  snatgw: `snatctl --json stats`
  PHASE-{before,after}.gw.txt   kernel: `conntrack -S` (per CPU) and entries=`conntrack -C`
"""
import glob
import json
import os
import sys

GATEWAYS = ("snatgw", "kernel")
PHASES = {"a": "connect storm, client closes first", "b": "connect storm, server closes first",
          "e": "connect storm, close on accept (both close at once), ONE pool address, 500 ms connect timeout"}
FLOOD_PHASES = ("before", "during", "after")


def read_env(path):
    env = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    env[k] = v
    except OSError:
        pass
    return env


def read_json(path):
    """The last JSON object in a file (race_client prints one line), or None."""
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
    except OSError:
        return None
    if not lines:
        return None
    try:
        return json.loads("\n".join(lines))
    except ValueError:
        try:
            return json.loads(lines[-1])
        except ValueError:
            return None


def host_files(d, phase):
    files = glob.glob(os.path.join(d, f"{phase}-h*.json"))
    return sorted(files, key=lambda p: int(os.path.basename(p)[len(phase) + 2:-5]))


def tcp_counters(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    out[(parts[0], parts[1])] = int(parts[2])
    except OSError:
        return None
    return out


def tcp_delta(d, phase, counter, ns_prefix):
    before, after = tcp_counters(f"{d}/{phase}-before.tcp"), tcp_counters(f"{d}/{phase}-after.tcp")
    if before is None or after is None:
        return None
    return sum(v - before.get(k, 0) for k, v in after.items()
               if k[1] == counter and k[0].startswith(ns_prefix))


def conntrack_stats(path):
    """Sum over CPUs of `conntrack -S`, plus entries."""
    try:
        text = open(path).read()
    except OSError:
        return None
    s = {}
    for line in text.splitlines():
        for field in line.split():
            k, sep, v = field.partition("=")
            if sep and v.isdigit() and k != "cpu":
                s[k] = s.get(k, 0) + int(v)
    return s


def flatten(j, prefix=""):
    """Numeric leaves of snatgw's stats JSON, keyed by dotted path (lists of workers skipped)."""
    out = {}
    if isinstance(j, dict):
        for k, v in j.items():
            if k in ("workers", "ports_in_use", "steering"):
                continue
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(j, (int, float)) and not isinstance(j, bool):
        out[prefix[:-1]] = j
    return out


# Gauges of snatgw's stats: reported as the value after the workload, not as a difference.
SNATGW_GAUGES = ("uptime_s", "total.sessions", "total.session_capacity", "sessions_by_state.")


def gateway_delta(gw, d, phase):
    if gw == "kernel":
        b = conntrack_stats(f"{d}/{phase}-before.gw.txt")
        a = conntrack_stats(f"{d}/{phase}-after.gw.txt")
        if b is None or a is None:
            return None
        delta = {k: v - b.get(k, 0) for k, v in a.items() if k != "entries"}
        delta["entries_after"] = a.get("entries", 0)
        return delta
    b = read_json(f"{d}/{phase}-before.gw.json")
    a = read_json(f"{d}/{phase}-after.gw.json")
    if b is None or a is None:
        return None
    fb, fa = flatten(b), flatten(a)
    return {k: (v if k.startswith(SNATGW_GAUGES) else v - fb.get(k, 0)) for k, v in fa.items()}


def storm(d, gw, phase):
    hosts = [read_json(p) for p in host_files(d, phase)]
    if not hosts:
        return None
    missing = sum(1 for h in hosts if h is None)
    hosts = [h for h in hosts if h is not None]
    r = {"hosts": len(hosts) + missing, "hosts_without_result": missing}
    if not hosts:
        return r
    tot = lambda k: sum(h.get(k, 0) for h in hosts)  # noqa: E731
    errors = {}
    for h in hosts:
        for k, v in list(h.get("errors", {}).items()) + list(h.get("errors_other", {}).items()):
            if v and k != "other":
                errors[k] = errors.get(k, 0) + v
    r.update({
        "seconds": max(h.get("seconds", 0) for h in hosts),
        "attempts": tot("attempts"),
        "connects_ok": tot("connects_ok"),
        "connects_failed": tot("connects_failed"),
        "connects_per_s": sum(h.get("connects_per_s", 0.0) for h in hosts),
        "slow_1s_after_call": tot("slow_1s_after_call"),
        "slow_1s": tot("slow_1s"),
        "syn_retransmitted_tcp_info": tot("syn_retransmitted"),
        "close_wait_timeouts": tot("close_wait_timeouts"),
        "errors": errors,
        # Each host's race_client computes its own percentiles; the worst host's is reported.
        "connect_ms_p50": max(h["connect_ms"]["median"] for h in hosts),
        "connect_ms_p99": max(h["connect_ms"]["p99"] for h in hosts),
        "connect_ms_max": max(h["connect_ms"]["max"] for h in hosts),
        "connect_call_ms_p99": max(h["connect_call_ms"]["p99"] for h in hosts),
    })
    bad = r["connects_failed"] + r["slow_1s_after_call"]
    r["failed_or_slow_pct"] = 100.0 * bad / r["attempts"] if r["attempts"] else None
    r["syn_retrans_nstat"] = tcp_delta(d, phase, "TcpExtTCPSynRetrans", "snl-h")
    r["server_listen_overflows"] = tcp_delta(d, phase, "TcpExtListenOverflows", "snl-srv")
    r["server_paws_timewait"] = tcp_delta(d, phase, "TcpExtPAWSTimewait", "snl-srv")
    r["server_tw"] = tcp_delta(d, phase, "TcpExtTW", "snl-srv")
    srv = read_json(f"{d}/{phase}-server.json")
    r["server_accepted"] = srv.get("accepted") if srv else None
    r["gateway"] = gateway_delta(gw, d, phase)
    return r


def tcp_between(d, a, b, counter, ns_prefix):
    before, after = tcp_counters(f"{d}/{a}.tcp"), tcp_counters(f"{d}/{b}.tcp")
    if before is None or after is None:
        return None
    return sum(v - before.get(k, 0) for k, v in after.items()
               if k[1] == counter and k[0].startswith(ns_prefix))


def flood(d, gw):
    """(f): h2's connects before, during and after h1's SYN flood."""
    env = read_env(f"{d}/f-flood.env")
    if not env and not os.path.exists(f"{d}/f-before.json"):
        return None
    r = {"sent": int(env["sent"]) if env.get("sent", "").isdigit() else None,
         "seconds": float(env["seconds"]) if env.get("seconds") else None,
         "rate_asked": int(env["rate_asked"]) if env.get("rate_asked", "").isdigit() else None,
         "h1_sessions": int(env["h1_sessions"]) if env.get("h1_sessions", "").isdigit() else None}
    r["rate"] = r["sent"] / r["seconds"] if r["sent"] is not None and r["seconds"] else None
    for i, ph in enumerate(FLOOD_PHASES):
        j = read_json(f"{d}/f-{ph}.json")
        p = {"syn_retrans_nstat": tcp_between(d, f"f-{i}", f"f-{i + 1}", "TcpExtTCPSynRetrans", "snl-h2")}
        if j is not None:
            errors = {k: v for k, v in list(j.get("errors", {}).items()) + list(j.get("errors_other", {}).items())
                      if v and k != "other"}
            p.update({"attempts": j.get("attempts"), "connects_ok": j.get("connects_ok"),
                      "connects_failed": j.get("connects_failed"),
                      "syn_retransmitted_tcp_info": j.get("syn_retransmitted"),
                      "connect_ms_max": j.get("connect_ms", {}).get("max"), "errors": errors})
        r[ph] = p
    r["server_paws_timewait"] = tcp_delta(d, "f", "TcpExtPAWSTimewait", "snl-srv")
    r["server_syncookies_sent"] = tcp_delta(d, "f", "TcpExtSyncookiesSent", "snl-srv")
    r["server_listen_drops"] = tcp_delta(d, "f", "TcpExtListenDrops", "snl-srv")
    r["gateway"] = gateway_delta(gw, d, "f")
    return r


def udp(d, gw):
    hosts = [read_json(p) for p in host_files(d, "c")]
    hosts_ok = [h for h in hosts if h is not None]
    if not hosts_ok:
        return None
    tot = lambda k: sum(h.get(k, 0) for h in hosts_ok)  # noqa: E731
    public = {}
    for h in hosts_ok:
        for ip, n in h.get("public_addresses", {}).items():
            public[ip] = public.get(ip, 0) + n
    return {
        "hosts": len(hosts), "hosts_without_result": len(hosts) - len(hosts_ok),
        "sockets_per_host": hosts_ok[0].get("sockets"),
        "seconds": max(h.get("seconds", 0) for h in hosts_ok),
        "sent": tot("sent"), "answered": tot("answered"), "lost": tot("lost"), "late": tot("late"),
        "answered_per_s": sum(h.get("answered_per_s", 0.0) for h in hosts_ok),
        "rtt_ms_p50": max(h["rtt_ms"]["median"] for h in hosts_ok),
        "rtt_ms_p99": max(h["rtt_ms"]["p99"] for h in hosts_ok),
        "public_addresses": public,
        "gateway": gateway_delta(gw, d, "c"),
    }


def iperf(d, gw):
    if not any(os.path.exists(f"{d}/d-{dirn}.json") for dirn in ("up", "down")):
        return None  # not run
    out = {}
    for dirn in ("up", "down"):
        j = read_json(f"{d}/d-{dirn}.json")
        if j is None or "error" in j or "end" not in j:
            out[dirn] = {"error": (j or {}).get("error", "no result")}
            continue
        end = j["end"]
        out[dirn] = {
            "gbps": end["sum_received"]["bits_per_second"] / 1e9,
            "seconds": end["sum_received"].get("seconds"),
            "retransmits": end.get("sum_sent", {}).get("retransmits"),
            "cpu_host_pct": end.get("cpu_utilization_percent", {}).get("host_total"),
            "cpu_remote_pct": end.get("cpu_utilization_percent", {}).get("remote_total"),
        }
    out["gateway"] = gateway_delta(gw, d, "d")
    return out


def collect(root):
    meta = read_env(f"{root}/meta.env")
    res = {}
    for gw in GATEWAYS:
        d = f"{root}/{gw}"
        if not os.path.isdir(d):
            continue
        lab = read_env(f"{d}/lab.env")
        res[gw] = {
            "lab": lab,
            "loadavg_start": open(f"{d}/start.loadavg").read().split()[:3] if os.path.exists(f"{d}/start.loadavg") else None,
            "loadavg_end": open(f"{d}/end.loadavg").read().split()[:3] if os.path.exists(f"{d}/end.loadavg") else None,
            "a": storm(d, gw, "a"), "b": storm(d, gw, "b"), "e": storm(d, gw, "e"), "f": flood(d, gw),
            "c": udp(d, gw), "d": iperf(d, gw),
        }
    return meta, res


def get(r, *path):
    for p in path:
        if r is None:
            return None
        r = r.get(p) if isinstance(r, dict) else None
    return r


def snatgw_sum(g, *keys):
    if g is None:
        return None
    return sum(g.get(k, 0) for k in keys)


def rows(meta, res):
    """(section, label, {gw: value}, format, better) for every line of the table."""
    out = []

    def line(section, label, fn, fmt="{:,.0f}", better=None, only=None):
        vals = {}
        for gw in res:
            vals[gw] = None if (only and gw != only) else fn(res[gw], gw)
        out.append({"section": section, "label": label, "values": vals, "format": fmt,
                    "better": better, "only": only})

    hosts, threads, secs = meta.get("hosts", "?"), meta.get("threads", "?"), meta.get("seconds", "?")
    for ph, what in PHASES.items():
        if not any(get(res[g], ph) for g in res):
            continue  # not run
        addrs = meta.get("addresses_per_host", "1")
        sec = (f"({ph}) {what}, {hosts} hosts x {threads} threads"
               f"{f' ({addrs} source addresses each)' if addrs != '1' else ''}, {secs} s")
        line(sec, "connects/s", lambda r, g: get(r, ph, "connects_per_s"), better="higher")
        line(sec, "connects completed", lambda r, g: get(r, ph, "connects_ok"), better="higher")
        line(sec, "failed connects", lambda r, g: get(r, ph, "connects_failed"), better="lower")
        line(sec, "  of which no local port on the host", lambda r, g: get(r, ph, "errors", "addrnotavail") or
             (0 if get(r, ph, "errors") is not None else None), better="lower")
        line(sec, "connects >= 1 s (from the SYN)", lambda r, g: get(r, ph, "slow_1s_after_call"), better="lower")
        line(sec, "connects >= 1 s (with host's connect() call)", lambda r, g: get(r, ph, "slow_1s"), better="lower")
        line(sec, "failed or >= 1 s, % of attempts", lambda r, g: get(r, ph, "failed_or_slow_pct"), "{:.3f}", "lower")
        line(sec, "SYN retransmissions (hosts, nstat)", lambda r, g: get(r, ph, "syn_retrans_nstat"), better="lower")
        line(sec, "SYNs rejected by a server TIME_WAIT (PAWS)", lambda r, g: get(r, ph, "server_paws_timewait"), better="lower")
        line(sec, "connect ms p50 (worst host)", lambda r, g: get(r, ph, "connect_ms_p50"), "{:.2f}", "lower")
        line(sec, "connect ms p99 (worst host)", lambda r, g: get(r, ph, "connect_ms_p99"), "{:.2f}", "lower")
        line(sec, "connect ms max", lambda r, g: get(r, ph, "connect_ms_max"), "{:.1f}", "lower")
        line(sec, "server accepted", lambda r, g: get(r, ph, "server_accepted"), better="higher")
        line(sec, "server accept-queue overflows", lambda r, g: get(r, ph, "server_listen_overflows"), better="lower")
        line(sec, "server TIME_WAIT entries (TcpExtTW)", lambda r, g: get(r, ph, "server_tw"))
        if ph == "b":
            line(sec, "client waits for server close > 5 s", lambda r, g: get(r, ph, "close_wait_timeouts"), better="lower")
        line(sec, "kernel conntrack insert_failed", lambda r, g: get(r, ph, "gateway", "insert_failed"), only="kernel")
        line(sec, "kernel conntrack drop", lambda r, g: get(r, ph, "gateway", "drop"), only="kernel")
        line(sec, "kernel conntrack early_drop", lambda r, g: get(r, ph, "gateway", "early_drop"), only="kernel")
        line(sec, "kernel conntrack entries after", lambda r, g: get(r, ph, "gateway", "entries_after"), only="kernel")
        line(sec, "snatgw sessions created", lambda r, g: get(r, ph, "gateway", "total.new"), only="snatgw")
        line(sec, "snatgw sessions reopened", lambda r, g: get(r, ph, "gateway", "total.reopened"), only="snatgw")
        line(sec, "snatgw drops (all reasons)", lambda r, g: get(r, ph, "gateway", "total.drops"), only="snatgw")
        line(sec, "snatgw port missed + tx dropped", lambda r, g: snatgw_sum(
            get(r, ph, "gateway"), "ports.inside.missed", "ports.outside.missed",
            "loop.tx_dropped_inside", "loop.tx_dropped_outside"), only="snatgw")
    if any(get(res[g], "f") for g in res):
        sec = (f"(f) silent SYN flood, ONE pool address: h1 floods the server port ({meta.get('flood_rate', '?')} SYNs/s "
               f"asked, {meta.get('flood_seconds', '?')} s, its RSTs dropped); h2 connects 3 s before, during, "
               f"{meta.get('flood_after_seconds', '?')} s after")
        line(sec, "SYNs h1 sent", lambda r, g: get(r, "f", "sent"))
        line(sec, "  per second", lambda r, g: get(r, "f", "rate"))
        line(sec, "h1's sessions at the gateway after the flood", lambda r, g: get(r, "f", "h1_sessions"))
        for ph in FLOOD_PHASES:
            line(sec, f"h2 connects {ph}", lambda r, g, ph=ph: get(r, "f", ph, "attempts"), better="higher")
            line(sec, f"h2 failed connects {ph}", lambda r, g, ph=ph: get(r, "f", ph, "connects_failed"), better="lower")
            line(sec, f"h2 SYN retransmissions {ph} (nstat)", lambda r, g, ph=ph: get(r, "f", ph, "syn_retrans_nstat"), better="lower")
        line(sec, "SYNs rejected by a server TIME_WAIT (PAWS)", lambda r, g: get(r, "f", "server_paws_timewait"), better="lower")
        line(sec, "server SYN cookies sent", lambda r, g: get(r, "f", "server_syncookies_sent"))
        line(sec, "kernel conntrack insert_failed", lambda r, g: get(r, "f", "gateway", "insert_failed"), only="kernel")
        line(sec, "kernel conntrack drop", lambda r, g: get(r, "f", "gateway", "drop"), only="kernel")
        line(sec, "kernel conntrack entries after", lambda r, g: get(r, "f", "gateway", "entries_after"), only="kernel")
        line(sec, "snatgw drops (all reasons)", lambda r, g: get(r, "f", "gateway", "total.drops"), only="snatgw")
        line(sec, "snatgw port missed + tx dropped", lambda r, g: snatgw_sum(
            get(r, "f", "gateway"), "ports.inside.missed", "ports.outside.missed",
            "loop.tx_dropped_inside", "loop.tx_dropped_outside"), only="snatgw")
    if not any(get(res[g], "c") for g in res) and not any(get(res[g], "d", "up", "gbps") for g in res):
        return out
    u = res and next(iter(res.values()))["c"]
    sec = (f"(c) UDP request/response, {meta.get('hosts', '?')} hosts x "
           f"{get(u, 'sockets_per_host') or meta.get('udp_sockets', '?')} sockets, {meta.get('udp_seconds', '?')} s")
    line(sec, "answered/s", lambda r, g: get(r, "c", "answered_per_s"), better="higher")
    line(sec, "lost (no answer in 1 s)", lambda r, g: get(r, "c", "lost"), better="lower")
    line(sec, "round trip ms p50 (worst host)", lambda r, g: get(r, "c", "rtt_ms_p50"), "{:.3f}", "lower")
    line(sec, "round trip ms p99 (worst host)", lambda r, g: get(r, "c", "rtt_ms_p99"), "{:.3f}", "lower")
    line(sec, "kernel conntrack drop", lambda r, g: get(r, "c", "gateway", "drop"), only="kernel")
    line(sec, "snatgw drops (all reasons)", lambda r, g: get(r, "c", "gateway", "total.drops"), only="snatgw")
    sec = f"(d) iperf3 TCP, h1 -> server, {meta.get('iperf_seconds', '?')} s each way"
    line(sec, "upload Gb/s", lambda r, g: get(r, "d", "up", "gbps"), "{:.2f}", "higher")
    line(sec, "download Gb/s (-R)", lambda r, g: get(r, "d", "down", "gbps"), "{:.2f}", "higher")
    line(sec, "TCP retransmits upload", lambda r, g: get(r, "d", "up", "retransmits"), better="lower")
    line(sec, "TCP retransmits download", lambda r, g: get(r, "d", "down", "retransmits"), better="lower")
    return out


def ratio(vals):
    s, k = vals.get("snatgw"), vals.get("kernel")
    if s is None or k is None:
        return None, "-"
    if k == 0:
        return (None, "=") if s == 0 else (None, "inf")
    return s / k, f"{s / k:.2f}"


def fmt(v, f):
    if v is None:
        return "-"
    return f.format(v)


def snatgw_counter_lines(res):
    """snatgw's own non-zero counters over each workload (drops by reason, loop, ports)."""
    g = res.get("snatgw")
    if not g:
        return []
    lines = []
    for ph in ("a", "b", "e", "f", "c", "d"):
        delta = get(g, ph, "gateway")
        if not delta:
            continue
        keep = {k: v for k, v in delta.items()
                if v and not k.startswith(SNATGW_GAUGES) and
                (k.startswith(("drops.", "ports.", "control.")) or k in (
                    "total.new", "total.reopened", "total.insert_failed", "total.evicted",
                    "total.expired", "loop.tx_dropped_inside", "loop.tx_dropped_outside",
                    "loop.handoff_ring_full", "loop.rx_paused", "loop.punt_ring_full",
                    "events.lost"))}
        lines.append(f"  ({ph}) " + (", ".join(f"{k}={v:,}" for k, v in sorted(keep.items())) or "nothing counted"))
    return lines


def text_report(meta, res, table):
    gws = [g for g in GATEWAYS if g in res]
    w = 48
    out = []
    out.append("snatgw vs the Linux kernel's SNAT (iptables) - tools/lab compare")
    out.append(f"date {meta.get('date', '?')}; machine: {meta.get('cpus', '?')} x {meta.get('cpu', '?')}, "
               f"Linux {meta.get('kernel', '?')}, {meta.get('os', '?')}")
    out.append(f"command: {meta.get('command', '?')}")
    out.append(f"load average at start {meta.get('loadavg_start', '?')}, at end {meta.get('loadavg_end', '?')} "
               f"(the figures mean something only on an otherwise idle machine)")
    for g in gws:
        lab = res[g]["lab"]
        extra = f", {lab.get('vdev')}, {lab.get('workers')} worker(s)" if g == "snatgw" else ""
        out.append(f"{g}: tools/lab up {lab.get('up_args', '?')}{extra}; policy {lab.get('policy', '?')}")
    out.append("")
    head = f"{'':<{w}}" + "".join(f"{g:>14}" for g in gws) + (f"{'snatgw/kernel':>15}" if len(gws) == 2 else "")
    section = None
    for r in table:
        if r["section"] != section:
            section = r["section"]
            out.append(section)
            out.append(head)
        cells = "".join(f"{fmt(r['values'].get(g), r['format']):>14}" for g in gws)
        rat = ratio(r["values"])[1] if len(gws) == 2 and not r["only"] else ""
        out.append(f"  {r['label']:<{w - 2}}{cells}{rat:>15}".rstrip())
    for g in gws:
        for ph in ("a", "b", "e"):
            errs = get(res[g], ph, "errors")
            if errs:
                out.append(f"{g} ({ph}) failed connects by class: " + ", ".join(f"{k}={v}" for k, v in sorted(errs.items())))
        for ph in FLOOD_PHASES:
            errs = get(res[g], "f", ph, "errors")
            if errs:
                out.append(f"{g} (f) h2's failed connects {ph} the flood, by class: " + ", ".join(f"{k}={v}" for k, v in sorted(errs.items())))
        for dirn in ("up", "down"):
            e = get(res[g], "d", dirn, "error")
            if e:
                out.append(f"{g} (d) iperf3 {dirn}: {e}")
    sl = snatgw_counter_lines(res)
    if sl:
        out.append("")
        out.append("snatgw's own counters that moved, per workload (snatctl stats deltas):")
        out.extend(sl)
    out.append("")
    out.append("ratio = snatgw / kernel; '=' both zero, 'inf' kernel zero; '-' not measured or not this gateway's")
    return "\n".join(out) + "\n"


def chart(path, meta, res, table):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    gws = [g for g in GATEWAYS if g in res]
    pick = [
        ("(a)", "connects/s"), ("(b)", "connects/s"),
        ("(a)", "failed or >= 1 s, % of attempts"), ("(b)", "failed or >= 1 s, % of attempts"),
        ("(a)", "connect ms p99 (worst host)"), ("(b)", "connect ms p99 (worst host)"),
        ("(e)", "failed connects"), ("(e)", "SYN retransmissions (hosts, nstat)"),
        ("(e)", "SYNs rejected by a server TIME_WAIT (PAWS)"),
        ("(f)", "h2 failed connects during"), ("(f)", "h2 failed connects after"),
        ("(f)", "h2 SYN retransmissions during (nstat)"),
        ("(c)", "answered/s"), ("(c)", "lost (no answer in 1 s)"),
        ("(d)", "upload Gb/s"), ("(d)", "download Gb/s (-R)"),
    ]
    panels = []
    for sec, label in pick:
        for r in table:
            if r["section"].startswith(sec) and r["label"] == label:
                panels.append((sec, r))
                break
    colors = {"snatgw": "#1f77b4", "kernel": "#ff7f0e"}
    if not panels:
        return False
    ncols = 4
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 3.5 * nrows + 0.5), squeeze=False)
    for ax, (sec, r) in zip(axes.flat, panels):
        vals = [r["values"].get(g) for g in gws]
        ys = [v if v is not None else 0 for v in vals]
        bars = ax.bar(gws, ys, color=[colors[g] for g in gws])
        for b, v in zip(bars, vals):
            ax.annotate(fmt(v, r["format"]), (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=9)
        title = f"{sec} {r['label']}"
        rat = ratio(r["values"])[1] if len(gws) == 2 else ""
        if rat not in ("", "-"):
            title += f"\nsnatgw/kernel {rat}"
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, max(ys) * 1.2 if max(ys) > 0 else 1)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"snatgw vs kernel SNAT - tools/lab compare, {meta.get('date', '?')}, "
                 f"{meta.get('cpus', '?')} x {meta.get('cpu', '?')}, Linux {meta.get('kernel', '?')}\n"
                 f"(a) storm client closes, (b) server closes, (e) close on accept on one pool address, "
                 f"{meta.get('hosts', '?')} hosts x {meta.get('threads', '?')} threads, {meta.get('seconds', '?')} s; "
                 f"(f) SYN flood", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print(__doc__, file=sys.stderr)
        return 2
    root = sys.argv[1]
    meta, res = collect(root)
    if not res:
        print(f"compare_report: no gateway results in {root}", file=sys.stderr)
        return 1
    table = rows(meta, res)
    text = text_report(meta, res, table)
    with open(f"{root}/compare.txt", "w") as f:
        f.write(text)
    doc = {
        "meta": meta,
        "table": [{"section": r["section"], "metric": r["label"].strip(), "better": r["better"],
                   **{g: r["values"].get(g) for g in res},
                   "ratio_snatgw_kernel": None if r["only"] else ratio(r["values"])[0]} for r in table],
        "results": res,
    }
    with open(f"{root}/compare.json", "w") as f:
        json.dump(doc, f, indent=1)
    sys.stdout.write(text)
    png = f"{root}/compare.png"
    if chart(png, meta, res, table):
        print(f"written: {root}/compare.txt, compare.json, compare.png")
    else:
        print(f"written: {root}/compare.txt, compare.json (no chart: python3-matplotlib missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

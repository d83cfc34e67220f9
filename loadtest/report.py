"""From raw records to the report: one JSON-ready dict for machines, one table for people.

`summarize` does the bookkeeping with stats.py and adds the context a figure needs to be read
(machine, load average, generator health); `render` prints it.  A run whose generator
saturated says so at the top and at the bottom of the table.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loadtest import stats, steps, windows

if TYPE_CHECKING:
    from loadtest.coordinator import Raw, Run

#: what a DJ sends -> what dancers receive
DJ_MESSAGE = {
    "NOW_PLAYING": "BROADCAST_TRACK",
    "POLL_STARTED": "START_POLL",
    "ANNOUNCEMENT_RECEIVED": "SEND_ANNOUNCEMENT",
}


def _cpu_in(
    samples: Sequence[tuple[float, float]], since: float = 0.0, until: float = math.inf
) -> list[float]:
    return [pct for t, pct in samples if since <= t <= until]


def _stat(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": round(sum(values) / len(values), 1), "max": round(max(values), 1)}


def _rss(raw: Raw, window: dict[str, Any]) -> dict[str, Any]:
    before, after = raw.rss_kb.get(window["before"]), raw.rss_kb.get(window["after"])
    n = window["connections"]
    per_conn = None
    if before is not None and after is not None and n:
        per_conn = round((after - before) / n, 2)
    return {"before_kb": before, "after_kb": after, "connections": n, "per_connection_kb": per_conn}


def _dj_events(raw: Raw) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dj in raw.djs:
        for event in dj.events.values():
            name = DJ_MESSAGE.get(event.kind, event.kind)
            entry = out.setdefault(
                name, {"sent": 0, "acked": 0, "nacked": 0, "unanswered": 0, "errors": {}, "_ack": []}
            )
            entry["sent"] += 1
            if event.t_answer is None:
                entry["unanswered"] += 1
            elif event.error is None:
                entry["acked"] += 1
                entry["_ack"].append(event.t_answer - event.t_send)
            else:
                entry["nacked"] += 1
                entry["errors"][event.error] = entry["errors"].get(event.error, 0) + 1
    for entry in out.values():
        entry["ack_ms"] = stats.summary_ms(entry.pop("_ack"))
    return out


def summarize(
    run: Run, raw: Raw, settings: dict[str, Any], rss_window: dict[str, Any], steps: list[dict[str, Any]]
) -> dict[str, Any]:
    events = [e for dj in raw.djs for e in dj.events.values()]
    deliveries = stats.account_delivery(events, raw.dancers)
    actions = stats.account_actions(raw.actions)
    connections = stats.account_connections(raw.dancers)
    cpu = {name: [pct for _, pct in samples] for name, samples in raw.worker_cpu.items()}
    generator = stats.saturation(cpu)
    server_cpu = run.server.cpu_percent()
    summary: dict[str, Any] = {
        "settings": settings,
        "target": {
            "name": run.target.name,
            "address": f"{run.target.host}:{run.target.port}",
            "pid": run.target.pid,
            "spawned": run.target.spawned,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "nofile": run.fits,
        },
        "generator": {
            "dancer_workers": run.workers,
            "dj_workers": 1,
            **generator,
            # latencies use the kernel's receive timestamps; this is how far behind them the
            # generator read (its own queueing, excluded from the figures above)
            "read_lag_ms": stats.summary_ms(raw.lags),
        },
        "connections": connections,
        "delivery": {kind: d.to_json() for kind, d in sorted(deliveries.items())},
        "dj_events": _dj_events(raw),
        "actions": {kind: t.to_json() for kind, t in sorted(actions.items())},
        "reached_dj": stats.reached_dj(raw.actions, raw.djs, raw.db),
        "database": raw.db,
        "server": {
            "rss": _rss(raw, rss_window),
            "rss_peak_kb": run.server.rss_peak_kb() or None,
            "cpu_percent": _stat(server_cpu),
        },
        "success": stats.success_rate(connections, deliveries, actions),
        "steps": [_step(run, raw, step) for step in steps],
    }
    summary["verdict"] = _verdict(summary)
    return summary


def _step(run: Run, raw: Raw, step: dict[str, Any]) -> dict[str, Any]:
    markers = set(step["markers"])
    events = [e for dj in raw.djs for e in dj.events.values() if e.marker in markers]
    tracks = stats.account_delivery(events, raw.dancers).get("NOW_PLAYING", stats.Delivery("NOW_PLAYING"))
    since, until = step["window"]
    connected = sum(
        1
        for d in raw.dancers
        if d.t_subscribed is not None
        and d.t_subscribed < since
        and (d.t_closed is None or d.t_closed > until)
    )
    gen = {name: _cpu_in(samples, since, until) for name, samples in raw.worker_cpu.items()}
    window = {"before": step["rss_before"], "after": step["rss_after"], "connections": connected}
    return {
        "dancers": step["dancers"],
        "connected": connected,
        "fanout": tracks.to_json(),
        "server_cpu_percent": _stat(run.server.cpu_percent(since, until)),
        "generator": stats.saturation(gen),
        "rss": _rss(raw, window),
        "per_track_p99_ms": [row["p99"] for row in windows.per_event(events, raw.dancers)],
    }


def _verdict(s: dict[str, Any]) -> dict[str, Any]:
    thresholds = s["settings"].get("thresholds")
    saturated = s["generator"]["saturated"]
    if not thresholds:
        return {"judged": False, "generator_saturated": saturated}
    reasons, ok = [], True
    p95 = s["delivery"].get("NOW_PLAYING", {}).get("latency_ms", {}).get("p95")
    limit = thresholds["fanout_p95_ms"]
    if limit is not None:
        if p95 is None or p95 >= limit:
            ok = False
        reasons.append(
            f"fan-out p95 {_ms(p95)} {'<' if p95 is not None and p95 < limit else '>='} {limit:g} ms"
        )
    ratio = s["success"]["ratio"]
    floor = thresholds["min_success"]
    if not ratio > floor:
        ok = False
    reasons.append(f"success {_pct(ratio)} {'>' if ratio > floor else '<='} {floor * 100:g} %")
    return {"judged": True, "pass": ok, "reasons": reasons, "generator_saturated": saturated}


# -- rendering -------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _pct(ratio: float | None) -> str:
    return (
        "-" if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) else f"{ratio * 100:.2f} %"
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _kb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.1f} MB"


def _latency_row(label: str, summary: dict[str, Any]) -> str:
    cells = [f"{_num(summary[k]):>9}" for k in ("p50", "p95", "p99", "max")]
    return f"  {label:<34}{summary['n']:>8,} {''.join(cells)}"


def _saturation_banner(s: dict[str, Any]) -> list[str]:
    g = s["generator"]
    if not g["saturated"]:
        return []
    hot = ", ".join(f"{w} at {g['workers'][w]['max']:.0f} %" for w in g["hot_workers"])
    return [
        "!" * 100,
        f"!!! GENERATOR SATURATED: {hot} CPU (> {g['threshold']:.0f} % of a core).",
        "!!! Latencies include the load generator's own delay: use more --workers or a quieter machine.",
        "!" * 100,
    ]


def render(s: dict[str, Any]) -> str:
    st, t, g = s["settings"], s["target"], s["generator"]
    title = f"Capacity — {st['scenario']}" + (f" ({st['form']})" if "form" in st else "")
    where = f"{t['name']} at {t['address']}" + (
        f" (spawned, pid {t['pid']})" if t["spawned"] else f" (pid {t['pid']})"
    )
    m = s["machine"]
    lines = [
        *_saturation_banner(s),
        f"{title} against {where}",
        f"{s['connections']['dancers']:,} dancers; {g['dancer_workers']} dancer worker(s) + 1 DJ worker; "
        f"dancers {'quiet' if st.get('quiet') else 'active'}; {m['cpus']} CPUs, load average "
        f"{m['load_average_end'][0]:.2f} at the end (machine shared with other work)",
        "",
        f"  {'latency (ms)':<34}{'n':>8} {'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
        _latency_row("connect (TCP + upgrade)", s["connections"]["connect_ms"]),
        _latency_row("connect + subscribe", s["connections"]["connect_subscribe_ms"]),
    ]
    for kind, d in s["delivery"].items():
        lines.append(_latency_row(f"fan-out {kind}", d["latency_ms"]))
    for name, e in s["dj_events"].items():
        lines.append(_latency_row(f"DJ ACK {name}", e["ack_ms"]))
    for kind, a in s["actions"].items():
        lines.append(_latency_row(f"ACK {kind}", a["ack_ms"]))
    r = s["reached_dj"]
    lines.append(_latency_row("like -> DJ (LIKE_RECEIVED)", r["likes"]["dj_latency_ms"]))
    lines.append(_latency_row("vote -> DJ (POLL_UPDATE, coalesced)", r["votes"]["dj_latency_ms"]))
    lines.append(_latency_row("generator read lag (excluded)", g["read_lag_ms"]))
    lines += [
        "",
        f"  {'delivery (every dancer, every event)':<38}"
        f"{'expected':>10}{'delivered':>11}{'missing':>9}{'ratio':>10}",
    ]
    for kind, d in s["delivery"].items():
        lines.append(
            f"  {kind:<38}{d['expected']:>10,}{d['delivered']:>11,}{d['missing']:>9,}{_pct(d['ratio']):>10}"
        )
        for example in d["missing_examples"]:
            lines.append(f"    missing: {example}")
    lines += [
        "",
        f"  {'sent by'} {'message':<28}{'sent':>7}{'ACK':>7}{'unsupp.':>9}{'NACK':>7}{'no answer':>10}",
    ]
    for name, e in s["dj_events"].items():
        unsupported = sum(n for err, n in e["errors"].items() if stats.UNSUPPORTED in err)
        nacked = e["nacked"] - unsupported
        row = f"{e['sent']:>7,}{e['acked']:>7,}{unsupported:>9,}{nacked:>7,}{e['unanswered']:>10,}"
        lines.append(f"  DJ      {name:<28}{row}")
    for kind, a in s["actions"].items():
        row = f"{a['sent']:>7,}{a['acked']:>7,}{a['unsupported']:>9,}{a['nacked']:>7,}{a['unanswered']:>10,}"
        lines.append(f"  dancers {kind:<28}{row}")
    errors = {**{k: v for e in s["dj_events"].values() for k, v in e["errors"].items()}}
    for a in s["actions"].values():
        errors.update(a["nack_errors"])
    for text, count in sorted(errors.items(), key=lambda kv: -kv[1])[:6]:
        lines.append(f"    NACK x{count:,}: {text}")
    db_note = s["database"].get("note")
    lines += [
        "",
        f"  {'reached the DJ':<20}{'ACKed':>8}{'at DJ':>8}{'database':>10}",
        _reached_row("likes", r["likes"]["acked"], r["likes"]["at_dj"], _count(r["likes"]["in_database"])),
        _reached_row(
            "poll votes", r["votes"]["acked"], r["votes"]["at_dj"], _count(r["votes"]["in_database"])
        ),
        _reached_row("reactions", r["reactions"]["acked"], r["reactions"]["at_dj"], ""),
        f"  {'tempo votes':<20}{r['tempo']['acked']:>8,}{'':>8}"
        f"  (TEMPO_FEEDBACK frames at DJ: {r['tempo']['feedback_at_dj']:,})",
    ]
    if db_note:
        lines.append(f"    database: {db_note}")
    lines += ["", *_footer(s)]
    su = s["success"]
    lines.append(
        f"success: {_pct(su['ratio'])} ({su['succeeded']:,} of {su['attempts']:,} dancer operations)"
    )
    if s["steps"]:
        lines += ["", *render_steps(s["steps"])]
    if st.get("stopped_early"):
        lines.append(f"scale {st['stopped_early']}")
    v = s["verdict"]
    if v["judged"]:
        lines.append(f"verdict: {'PASS' if v['pass'] else 'FAIL'} — " + "; ".join(v["reasons"]))
    lines += _saturation_banner(s)
    return "\n".join(lines)


def _footer(s: dict[str, Any]) -> list[str]:
    """Connections, the server's memory and CPU, the generator's CPU."""
    c = s["connections"]
    closes = ", ".join(f"{k} x{v:,}" for k, v in c["close_codes"].items()) or "none"
    lines = [
        f"connections: {c['subscribed']:,}/{c['dancers']:,} subscribed, {c['failed']:,} failed, "
        f"{c['dropped_by_server']:,} dropped by the server; close codes: {closes}",
    ]
    for text, count in c["errors"].items():
        lines.append(f"    error x{count:,}: {text}")
    sv = s["server"]
    rss = sv["rss"]
    lines.append(
        f"server: RSS {_kb(rss['before_kb'])} -> {_kb(rss['after_kb'])} with {rss['connections']:,} "
        f"connections = {_num(rss['per_connection_kb'])} KB/connection (peak {_kb(sv['rss_peak_kb'])}); "
        f"CPU mean {_num(sv['cpu_percent']['mean'])} %, max {_num(sv['cpu_percent']['max'])} % of one core"
    )
    g = s["generator"]
    gens = ", ".join(f"{w} max {v['max']:.0f} % (mean {v['mean']:.0f} %)" for w, v in g["workers"].items())
    lines.append(f"generator: {gens}")
    return lines


def _reached_row(label: str, acked: int, at_dj: int, database: str) -> str:
    return f"  {label:<20}{acked:>8,}{at_dj:>8,}{database:>10}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render_steps(steps: list[dict[str, Any]]) -> list[str]:
    head = (
        f"  {'dancers':>8}{'joined':>8}{'fan-out p50':>12}{'p95':>9}{'p99':>9}{'max':>9}{'delivery':>10}"
        f"{'KB/conn':>9}{'srv CPU max':>12}{'gen CPU max':>12}"
    )
    lines = ["scale steps (track fan-out, ms; one broadcast at a time)", head]
    for st in steps:
        f = st["fanout"]
        lat = f["latency_ms"]
        gen_max = max((w["max"] for w in st["generator"]["workers"].values()), default=0.0)
        flag = " SATURATED" if st["generator"]["saturated"] else ""
        lines.append(
            f"  {st['dancers']:>8,}{st['connected']:>8,}{_num(lat['p50']):>12}"
            f"{_num(lat['p95']):>9}{_num(lat['p99']):>9}{_num(lat['max']):>9}{_pct(f['ratio']):>10}{_num(st['rss']['per_connection_kb']):>9}"
            f"{_num(st['server_cpu_percent']['max']):>11}%{gen_max:>11.0f}%{flag}"
        )
    for st in steps:  # one slow broadcast sets a step's p99: show which
        tracks = " ".join(_num(v) for v in st.get("per_track_p99_ms", []))
        lines.append(f"  p99 per track at {st['dancers']:,}: {tracks}")
    return lines


def compare(pika: dict[str, Any], yard: dict[str, Any]) -> dict[str, Any]:
    """Pika! against the yardstick, step by step: p99 ratio, delivery, memory per connection."""
    rows = []
    pairs = zip(pika["steps"] or [pika], yard["steps"] or [yard], strict=False)
    for a, b in pairs:
        fa = a.get("fanout") or a["delivery"].get("NOW_PLAYING", {})
        fb = b.get("fanout") or b["delivery"].get("NOW_PLAYING", {})
        pa, pb = fa.get("latency_ms", {}).get("p99"), fb.get("latency_ms", {}).get("p99")
        ka = (a.get("rss") or a["server"]["rss"])["per_connection_kb"]
        kb = (b.get("rss") or b["server"]["rss"])["per_connection_kb"]
        rows.append(
            {
                "dancers": a.get("dancers") or a["connections"]["dancers"],
                "p99_ms": {"pika": pa, "yardstick": pb, "ratio": _ratio(pa, pb)},
                "delivery": {"pika": fa.get("ratio"), "yardstick": fb.get("ratio")},
                "kb_per_connection": {"pika": ka, "yardstick": kb, "ratio": _ratio(ka, kb)},
            }
        )
    saturated = pika["generator"]["saturated"] or yard["generator"]["saturated"]
    return {"rows": rows, "generator_saturated": saturated}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def render_compare(c: dict[str, Any]) -> str:
    lines = [
        "Pika! / yardstick (websockets broadcast()), same scenario, same generator",
        f"  {'dancers':>8}{'p99 Pika!':>11}{'p99 yard':>10}{'ratio':>7}{'delivery Pika!':>16}{'yard':>10}"
        f"{'KB/conn Pika!':>15}{'yard':>8}{'ratio':>7}",
    ]
    for r in c["rows"]:
        p, d, k = r["p99_ms"], r["delivery"], r["kb_per_connection"]
        lines.append(
            f"  {r['dancers']:>8,}{_num(p['pika']):>11}{_num(p['yardstick']):>10}{_num(p['ratio']):>7}"
            f"{_pct(d['pika']):>16}{_pct(d['yardstick']):>10}{_num(k['pika']):>15}{_num(k['yardstick']):>8}"
            f"{_num(k['ratio']):>7}"
        )
    if c["generator_saturated"]:
        lines.append("!!! GENERATOR SATURATED in at least one run: the ratios are not trustworthy.")
    return "\n".join(lines)


# -- flood and logins: fan-out before / during / after a disturbance ----------------------------


def server_cpu(run: Run, span: Sequence[float] | None) -> dict[str, float | None]:
    """The server's CPU % (mean, max of one core) over `span` (wall clock), half a second wider:
    samples are about a second apart."""
    if not span:
        return {"mean": None, "max": None}
    return _stat(run.server.cpu_percent(span[0] - 0.5, span[1] + 0.5))


def _head(s: dict[str, Any], extra: str) -> list[str]:
    st, t, m = s["settings"], s["target"], s["machine"]
    where = f"{t['name']} at {t['address']}" + (
        f" (spawned, pid {t['pid']})" if t["spawned"] else f" (pid {t['pid']})"
    )
    return [
        *_saturation_banner(s),
        f"Capacity — {st['scenario']} against {where}",
        f"{st['dancers']:,} quiet dancers in one room{extra}; {st['tracks']} tracks "
        f"{st['track_interval_s']:g} s apart (after {st.get('warm_up_tracks', 0)} warm-up track(s), "
        "delivered and left out)",
        f"{m['cpus']} CPUs, load average {m['load_average_end'][0]:.2f} at the end "
        "(machine shared with other work)",
    ]


WINDOW_NAMES = {
    "flood": {
        "before": "before the flood (baseline)",
        "during": "during the flood",
        "after": "after the flood",
    },
    "logins": {"before": "no logins (baseline)", "during": "during the logins", "after": "after the logins"},
    "push": {
        "before": "no push (baseline)",
        "during": "while the pushes go out",
        "after": "after the pushes",
    },
}


def _fanout_table(s: dict[str, Any], scenario: str, section: dict[str, Any]) -> list[str]:
    names = {**WINDOW_NAMES[scenario], "all": "all tracks"}
    lines = [
        f"  {'NOW_PLAYING fan-out (ms)':<32}{'tracks':>7}{'receipts':>10}{'delivery':>10}"
        f"{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'srv CPU mean/max':>18}",
    ]
    for key, label in names.items():
        w = section["fanout"][key]
        if not w["sent"] and key == "after":
            continue
        lat, cpu = w["latency_ms"], w["server_cpu_percent"]
        cpu_cell = f"{_num(cpu['mean'])}/{_num(cpu['max'])} %" if cpu["mean"] is not None else "-"
        lines.append(
            f"  {label:<32}{w['events']:>7,}{w['delivered']:>10,}{_pct(w['ratio']):>10}"
            f"{_num(lat['p50']):>8}{_num(lat['p95']):>8}{_num(lat['p99']):>8}{_num(lat['max']):>8}{cpu_cell:>18}"
        )
        for example in w["missing_examples"]:
            lines.append(f"    missing: {example}")
    dj = s["dj_events"].get("BROADCAST_TRACK", {})
    if dj.get("nacked") or dj.get("unanswered"):
        errors = "; ".join(f"{text} x{n:,}" for text, n in dj["errors"].items())
        lines.append(
            f"  BROADCAST_TRACK: {dj['nacked']:,} NACKed, {dj['unanswered']:,} unanswered "
            f"(not counted): {errors}"
        )
    diff = section["p99_during_minus_before_ms"]
    sign = "" if diff is None else ("+" if diff >= 0 else "")
    lines.append(f"  p99 during - baseline: {sign}{_num(diff)} ms")
    start, end = section["window_s"]
    cells = [
        f"{row['p99']:.0f}" + ("*" if start <= row["t_send"] <= end else "")
        for row in section["per_track"]
        if row["p99"] is not None
    ]
    lines.append("  p99 per track (ms, * = during): " + " ".join(cells))
    return lines


def render_flood(s: dict[str, Any]) -> str:
    st, f = s["settings"], s["flood"]
    fl = f["flooder"]
    likes = fl["likes"]
    start = f["window_s"][0]
    lines = _head(s, " + 1 flooder")
    lines += [
        f"flood: SEND_LIKE at {st['flood_rate_per_s']:,.0f}/s for {st['flood_seconds']:g} s from "
        f"{st['flood_offset_s']:g} s after the first track, alternating {len(st['liked_tracks'])} played "
        f"track(s); likes limit per client per minute: {st['likes_per_minute']}",
        f"flood window: sends over {_num(f['sending_s'])} s; it lasts until the server answered the last "
        f"like: {_num(f['window_length_s'])} s in all",
        "",
        *_fanout_table(s, "flood", f),
        "",
        f"  the flooder's SEND_LIKE (clientId {fl['client_id']})",
        f"    sent {likes['sent']:,} at {_num(likes['send_rate_per_s'])}/s; ACK {likes['acked']:,}; "
        f"NACK {likes['nacked']:,} (rate limited {likes['rate_limited']:,}, other {likes['other_nacks']:,}); "
        f"unanswered {likes['unanswered']:,}",
    ]
    for text, count in likes["nack_errors"].items():
        lines.append(f"    NACK x{count:,}: {text}")
    a = likes["answer_ms"]
    lines.append(
        f"    answer latency (ms): n {a['n']:,}, p50 {_num(a['p50'])}, p95 {_num(a['p95'])}, "
        f"p99 {_num(a['p99'])}, max {_num(a['max'])}"
    )
    if fl["open_at_end"]:
        conn = "stayed open to the end"
    elif fl["close_code"] is None:
        conn = f"never open ({fl['close_error']})"
    else:
        who = "the server" if fl["closed_by_server"] else "the client"
        when = fl["closed_after_flood_start_s"]
        conn = f"closed by {who} with code {fl['close_code']}" + (
            f", {when:.2f} s after the flood began" if when is not None and start else ""
        )
        if fl["close_error"]:
            conn += f" ({fl['close_error']})"
    lines.append(f"    connection: {conn}; NOW_PLAYING frames it received: {fl['now_playing_received']:,}")
    lines += ["", *_footer(s), *_saturation_banner(s)]
    return "\n".join(lines)


def render_logins(s: dict[str, Any]) -> str:
    st, lg = s["settings"], s["logins"]
    lo = lg["logins"]
    lines = _head(s, "")
    lines += [
        f"logins: {st['login_clients']} clients (accounts registered beforehand), each POST /api/auth/login "
        f"in a loop with the right password; limits: {st['login_limits']}",
        "",
        *_fanout_table(s, "logins", lg),
    ]
    diff, limit = lg["p99_during_minus_before_ms"], lg["acceptance_ms"]
    if diff is not None:
        lines.append(
            f"  issue 5 acceptance (p99 delay <= {limit:g} ms): "
            + ("met" if lg["acceptance_met"] else "NOT met")
        )
    lat = lo["latency_ms"]
    statuses = ", ".join(f"{k} x{v:,}" for k, v in lo["statuses"].items()) or "none"
    lines += [
        "",
        f"  {'login (ms)':<32}{'n':>7} {'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'logins/s':>10}",
        f"  {'POST /api/auth/login -> 200':<32}{lat['n']:>7,} {_num(lat['p50']):>8}{_num(lat['p95']):>8}"
        f"{_num(lat['p99']):>8}{_num(lat['max']):>8}{_num(lo['per_second']):>10}",
        f"    {lo['attempts']:,} attempts over {lo['span_s']:.1f} s; outcomes: {statuses}",
        "",
        *_footer(s),
        *_saturation_banner(s),
    ]
    return "\n".join(lines)


def render_push(s: dict[str, Any]) -> str:
    st, p = s["settings"], s["push"]
    lines = _head(s, "")
    lines += [
        f"push: {st['subscriptions']:,} Web Push subscriptions of the room (a push service on 127.0.0.1 "
        f"answering 201); one announcement with push: true mid-run; {p['pushes_received']:,} pushes "
        f"received within {p['push_span_s']:.2f} s of it",
        "",
        *_fanout_table(s, "push", p),
        "",
        *_footer(s),
        *_saturation_banner(s),
    ]
    return "\n".join(lines)


def render_capacity(s: dict[str, Any]) -> str:
    st, t, m = s["settings"], s["target"], s["machine"]
    where = f"{t['name']} at {t['address']}" + (
        f" (spawned, pid {t['pid']})" if t["spawned"] else f" (pid {t['pid']})"
    )
    c, likes = s["connections"], s["likes"]
    idle = s["server_idle_cpu_percent"]
    lines = [
        f"Capacity — capacity against {where}",
        f"{c['subscribed']:,}/{st['dancers']:,} dancers subscribed in one room, {s['workers']} dancer "
        f"worker(s); steps of {st['step_seconds']:g} s; {st['pre_played_tracks']} tracks pre-played; "
        f"per-client limits {st['per_client_limits']}",
        f"{m['cpus']} CPUs, load average {m['load_average_start'][0]:.2f} at the start, "
        f"{m['load_average_end'][0]:.2f} at the end (machine shared with other work); server idle CPU "
        f"{_num(idle)} % with the room subscribed",
        f"server CPU: {t.get('server_cpu_covers', 'the server process')}"
        + (f", {t['server_workers']} workers" if t.get("server_workers", 1) > 1 else "")
        + f"; PostgreSQL's CPU {t.get('postgres_cpu', 'not measured')}"
        + (f" (idle {_num(s.get('postgres_idle_cpu_percent'))} %)" if t.get("postgres_pid") else ""),
        "",
        *steps.render_steps(s["steps"]),
        "",
        f"likes: {likes['acked']:,} ACKed, {likes['at_dj']:,} at the DJ, {_count(likes['in_database'])} "
        "in the database",
        *steps.render_result(s),
    ]
    return "\n".join(lines)


def render_any(s: dict[str, Any]) -> str:
    """The table for any scenario's result."""
    if "capacity" in s:
        return render_capacity(s)
    if "flood" in s:
        return render_flood(s)
    if "logins" in s:
        return render_logins(s)
    if "push" in s:
        return render_push(s)
    return render(s)

"""Live monitoring of a running Triton: scrape its Prometheus metrics twice and turn counters into rates.

Triton's counters only grow, so one scrape says little; two scrapes ``dt`` apart give requests/s,
failures/s and the average queue and compute time of the requests in between. The metrics text is
read as untrusted input: the body is capped, and a malformed line is skipped and counted, never
raised. Model states come from the repository index (a restricted API: it needs the admin header)
or, without it, from each model's ready endpoint. When the server is a local process whose identity
matches the record, its CPU and memory (and its Python stubs') come from ``/proc``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import ServerError
from toolkit.serve.procs import ProcessIdentity, identity_of, session_members

MAX_BODY = 16 << 20
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
# metric -> the field of a model's counters it adds to
FIELDS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_infer_duration_us": "compute_us",
    "nv_inference_pending_request_count": "pending",
}
SUMMARY = "nv_inference_request_summary_us"
Sample = tuple[str, dict[str, str], float]


def _labels(text: str) -> dict[str, str] | None:
    """``a="x",b="y"`` (the inside of the braces; a trailing comma allowed) as a dict; None when malformed."""
    labels: dict[str, str] = {}
    i = 0
    while i < len(text):
        m = LABEL_NAME.match(text, i)
        if not m or text[m.end():m.end() + 2] != '="':
            return None
        i, value = m.end() + 2, []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\":
                if i + 1 >= len(text) or text[i + 1] not in ESCAPES:
                    return None
                value.append(ESCAPES[text[i + 1]])
                i += 2
            else:
                value.append(text[i])
                i += 1
        if i >= len(text) or m.group() in labels:
            return None
        labels[m.group()] = "".join(value)
        i += 1
        if i < len(text):
            if text[i] != ",":
                return None
            i += 1
    return labels


def _value(text: str) -> float | None:
    """A sample value as the exposition format writes it (``NaN``, ``+Inf`` included); None otherwise."""
    # Go's ParseFloat (what Prometheus reads with) takes NaN and Inf in any case; prometheus-cpp writes "Nan"
    if not re.fullmatch(r"[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.|(?i:inf|infinity))|(?i:nan)", text):
        return None
    return float(text)


def _number(text: str) -> float | None:
    """A label's value as a number, None when it is not one."""
    try:
        return float(text)
    except ValueError:
        return None


def parse_line(line: str) -> Sample | None:
    """One sample line ``name{labels} value [timestamp]``; None when it is not one."""
    m = NAME.match(line)
    if not m:
        return None
    rest = line[m.end():]
    labels: dict[str, str] | None = {}
    if rest.startswith("{"):
        end = _closing_brace(rest)
        if end < 0:
            return None
        labels = _labels(rest[1:end])
        rest = rest[end + 1:]
    if labels is None or not rest[:1].isspace():
        return None
    parts = rest.split()
    if not 1 <= len(parts) <= 2 or (len(parts) == 2 and not re.fullmatch(r"-?[0-9]+", parts[1])):
        return None
    value = _value(parts[0])
    return None if value is None else (m.group(), labels, value)


def _closing_brace(text: str) -> int:
    """Index of the ``}`` closing the label set at ``text[0]`` (braces inside quoted values skipped); -1 if none."""
    quoted = False
    i = 1
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            return i
        i += 1
    return -1


def parse_metrics(text: str) -> tuple[list[Sample], int]:
    """(samples, number of malformed lines skipped) of Prometheus text exposition; comments and blanks ignored."""
    samples, skipped = [], 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        sample = parse_line(line)
        if sample is None:
            skipped += 1
        else:
            samples.append(sample)
    return samples, skipped


@dataclass
class Counters:
    """One model version's metrics at one scrape (counters summed over their other labels)."""

    success: float = 0.0
    failure: float = 0.0
    queue_us: float = 0.0
    compute_us: float = 0.0
    pending: float = 0.0
    p99_us: float | None = None


@dataclass
class Snapshot:
    """A scrape: when it was taken, each (model, version)'s counters, and how many lines were malformed."""

    at: float
    models: dict[tuple[str, str], Counters] = field(default_factory=dict)
    skipped: int = 0


def snapshot(samples: list[Sample], at: float, skipped: int = 0) -> Snapshot:
    """Group Triton's per-model samples by (model, version); a non-finite value (an idle summary's NaN
    quantile) says nothing and is left out."""
    snap = Snapshot(at=at, skipped=skipped)
    for name, labels, value in samples:
        if "model" not in labels or (name not in FIELDS and name != SUMMARY):
            continue
        if not math.isfinite(value):
            continue
        counters = snap.models.setdefault((labels["model"], labels.get("version", "")), Counters())
        if name == SUMMARY:
            if _number(labels.get("quantile", "")) == 0.99:  # written "0.99" or "0.990000" by exporters
                counters.p99_us = value
        else:
            key = FIELDS[name]
            setattr(counters, key, getattr(counters, key) + value)
    return snap


def _delta(old: float, new: float) -> float:
    """A counter's growth; after a reset (it went down) the count since the reset, never negative."""
    return new if new < old else new - old


def rates(prev: Snapshot, cur: Snapshot) -> list[dict[str, Any]]:
    """Per (model, version) in ``cur``: requests/s, failures/s, average queue and compute ms, p99 ms, pending."""
    dt = max(cur.at - prev.at, 1e-9)
    rows = []
    for (model, version), now in sorted(cur.models.items()):
        was = prev.models.get((model, version), Counters())
        done = _delta(was.success, now.success)
        rows.append({
            "model": model, "version": version,
            "requests_per_s": done / dt,
            "failures_per_s": _delta(was.failure, now.failure) / dt,
            "queue_ms": _delta(was.queue_us, now.queue_us) / done / 1000 if done else None,
            "compute_ms": _delta(was.compute_us, now.compute_us) / done / 1000 if done else None,
            "p99_ms": now.p99_us / 1000 if now.p99_us is not None else None,
            "pending": int(now.pending),
        })
    return rows


def fetch(url: str, timeout: float, headers: dict[str, str] | None = None,
          data: bytes | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET (POST with ``data``); status 0 when nothing answers. Bodies over 16 MiB are refused."""
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:  # noqa: S310 - http URL built from host:port
            status, body = r.status, r.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(MAX_BODY + 1)
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""
    if len(body) > MAX_BODY:
        raise ServerError(f"{url} answered more than {MAX_BODY >> 20} MiB; not a Triton endpoint, nothing was parsed")
    return status, body


def _proc_usage(ident: ProcessIdentity) -> tuple[int, int] | None:
    """(CPU clock ticks used, RSS bytes) of the process, None once it is no longer ``ident``."""
    try:
        fields = Path(f"/proc/{ident.pid}/stat").read_bytes().decode("ascii", "replace").rsplit(")", 1)[1].split()
        rss_pages = int(Path(f"/proc/{ident.pid}/statm").read_text().split()[1])
        ticks = int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)
    except (OSError, IndexError, ValueError):
        return None
    return (ticks, rss_pages * os.sysconf("SC_PAGE_SIZE")) if identity_of(ident.pid) == ident else None


class Monitor:
    """Scrapes one Triton: ``http_url`` and ``metrics_url`` are ``host:port``; ``headers`` the admin header
    (``{}`` without it); ``server`` the identity of its local process, when it is one (checked, not trusted)."""

    def __init__(self, http_url: str, metrics_url: str, headers: dict[str, str] | None = None,
                 server: ProcessIdentity | None = None, timeout: float = 5.0) -> None:
        self.http_url, self.metrics_url = http_url, metrics_url
        self.headers, self.server, self.timeout = dict(headers or {}), server, timeout

    def check(self) -> None:
        """Refuse early, in one line, a URL nothing answers on."""
        status, _ = fetch(f"http://{self.http_url}/v2/health/live", self.timeout)
        if status == 0:
            raise ServerError(f"no Triton server answers at http://{self.http_url}; start one (`tritonkit serve`) or "
                              "give its HTTP host:port")

    def scrape(self) -> Snapshot:
        """One scrape of ``/metrics``, parsed (malformed lines counted in ``skipped``)."""
        url = f"http://{self.metrics_url}/metrics"
        status, body = fetch(url, self.timeout)
        if status != 200:
            what = "nothing answers" if status == 0 else f"it answered HTTP {status}"
            raise ServerError(f"no Triton metrics at {url} ({what}); give the metrics port with --metrics-url "
                              "(Triton serves them on --metrics-port, 8002 by default)")
        samples, skipped = parse_metrics(body.decode("utf-8", errors="replace"))
        return snapshot(samples, time.monotonic(), skipped)

    def states(self, models: list[tuple[str, str]]) -> tuple[dict[tuple[str, str], str], str | None]:
        """(model, version) -> state from the repository index; without the admin key, from each version's
        ready endpoint for ``models``, with a note saying why."""
        if self.headers:
            status, body = fetch(f"http://{self.http_url}/v2/repository/index", self.timeout,
                                 {**self.headers, "Content-Type": "application/json"}, b"{}")
            try:
                index = json.loads(body) if status == 200 else None
            except ValueError:
                index = None
            if isinstance(index, list):
                return {(str(e.get("name", "")), str(e.get("version", ""))): str(e.get("state", "?"))
                        for e in index if isinstance(e, dict)}, None
        found = {}
        for model, version in models:
            path = f"/v2/models/{urllib.request.quote(model, safe='')}" + (f"/versions/{version}" if version else "")
            status, _ = fetch(f"http://{self.http_url}{path}/ready", self.timeout)
            found[(model, version)] = "READY" if status == 200 else "UNAVAILABLE"
        return found, "index needs the admin key: states are from each model's ready endpoint"

    def processes(self) -> dict[int, tuple[ProcessIdentity, tuple[int, int]]]:
        """pid -> (identity, usage) of the server and its stubs, when it is a local process that still matches."""
        if self.server is None or identity_of(self.server.pid) != self.server:
            return {}
        found = {}
        for ident in session_members(self.server.pid):
            usage = _proc_usage(ident)
            if usage is not None:
                found[ident.pid] = (ident, usage)
        return found

    def sample(self, interval: float, prev: Snapshot | None = None,
               prev_procs: dict[int, tuple[ProcessIdentity, tuple[int, int]]] | None = None) -> dict[str, Any]:
        """A report from two scrapes ``interval`` s apart (or from ``prev`` and one new scrape); its ``_next``
        holds what the next call continues from."""
        if prev is None:
            prev_procs = self.processes()
            prev = self.scrape()
            time.sleep(interval)
        cur, procs = self.scrape(), self.processes()
        rows = rates(prev, cur)
        states, note = self.states([(r["model"], r["version"]) for r in rows])
        seen = {(r["model"], r["version"]) for r in rows}
        for model, version in states:
            if (model, version) not in seen:
                rows.append({"model": model, "version": version, "requests_per_s": None, "failures_per_s": None,
                             "queue_ms": None, "compute_ms": None, "p99_ms": None, "pending": None})
        for row in rows:  # a version Triton still counts but neither lists nor serves is not loaded
            row["state"] = states.get((row["model"], row["version"]), "UNAVAILABLE")
        rows.sort(key=lambda r: (r["model"], r["version"]))
        report = {"http_url": self.http_url, "metrics_url": self.metrics_url, "interval_s": round(cur.at - prev.at, 3),
                  "models": rows, "note": note, "malformed_lines": cur.skipped,
                  "processes": _process_rows(prev_procs or {}, procs, cur.at - prev.at, self.server),
                  "_next": (cur, procs)}
        return report


def _process_rows(before: dict[int, tuple[ProcessIdentity, tuple[int, int]]],
                  after: dict[int, tuple[ProcessIdentity, tuple[int, int]]], dt: float,
                  server: ProcessIdentity | None) -> list[dict[str, Any]]:
    """CPU % (over ``dt``) and RSS of each process seen at both ends, the server first."""
    ticks = os.sysconf("SC_CLK_TCK")
    rows = []
    for pid, (ident, (used, rss)) in after.items():
        old = before.get(pid)
        cpu = (used - old[1][0]) / ticks / max(dt, 1e-9) * 100 if old and old[0] == ident else None
        role = "server" if server is not None and ident == server else "stub"
        rows.append({"pid": pid, "role": role, "exe": os.path.basename(ident.exe),
                     "cpu_pct": cpu, "rss_mib": rss / (1 << 20)})
    return sorted(rows, key=lambda r: (r["role"] != "server", r["pid"]))


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render(report: dict[str, Any]) -> str:
    """The report as a fixed-width table (then process lines and notes)."""
    head = ("MODEL", "VER", "STATE", "REQ/S", "FAIL/S", "QUEUE_MS", "COMPUTE_MS", "P99_MS", "PENDING")
    body = [(r["model"], r["version"] or "-", r["state"], _cell(r["requests_per_s"], ".1f"),
             _cell(r["failures_per_s"], ".1f"), _cell(r["queue_ms"], ".3f"), _cell(r["compute_ms"], ".3f"),
             _cell(r["p99_ms"], ".3f"), _cell(r["pending"], "d")) for r in report["models"]]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    lines = [f"Triton http://{report['http_url']}  metrics http://{report['metrics_url']}/metrics  "
             f"over {report['interval_s']:.2f} s", ""]
    for row in [head, *body]:
        cells = (str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        lines.append("  ".join(cells).rstrip())
    if not body:
        lines.append("(no models in the metrics or the index)")
    for p in report["processes"]:
        lines.append(f"{p['role']} pid {p['pid']} ({p['exe']}): cpu {_cell(p['cpu_pct'], '.1f')}%  "
                     f"rss {p['rss_mib']:.1f} MiB")
    if report["note"]:
        lines.append(f"note: {report['note']}")
    if report["malformed_lines"]:
        lines.append(f"note: {report['malformed_lines']} malformed metrics line(s) skipped")
    return "\n".join(lines)


def public(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its continuation state (what ``--json`` prints)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}

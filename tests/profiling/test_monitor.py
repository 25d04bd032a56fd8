"""`tritonkit monitor`: the Prometheus text parser, counters turned into rates, and a real served digits."""

from __future__ import annotations

import http.server
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.errors import ServerError
from toolkit.perf.monitor import MAX_BODY, Monitor, parse_metrics, public, rates, render, snapshot
from toolkit.serve.ports import free_port
from toolkit.serve.procs import identity_of

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")

BEFORE = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="digits",version="1"} 100
nv_inference_request_success{model="digits",version="2"} 7 1700000000000
nv_inference_request_failure{model="digits",reason="REJECTED",version="1"} 1
nv_inference_request_failure{model="digits",reason="BACKEND",version="1"} 2
nv_inference_queue_duration_us{model="digits",version="1"} 5000
nv_inference_compute_infer_duration_us{model="digits",version="1"} 20000
nv_inference_pending_request_count{model="digits",version="1"} 0
nv_gpu_utilization{gpu_uuid="GPU-1"} 0.5
"""

AFTER = """\
nv_inference_request_success{model="digits",version="1"} 140
nv_inference_request_success{model="digits",version="2"} 3
nv_inference_request_failure{model="digits",reason="REJECTED",version="1"} 3
nv_inference_request_failure{model="digits",reason="BACKEND",version="1"} 4
nv_inference_queue_duration_us{model="digits",version="1"} 9000
nv_inference_compute_infer_duration_us{model="digits",version="1"} 60000
nv_inference_pending_request_count{model="digits",version="1"} 5
# TYPE nv_inference_request_summary_us summary
nv_inference_request_summary_us{model="digits",version="1",quantile="0.5"} 900
nv_inference_request_summary_us{model="digits",version="1",quantile="0.990000"} 2500
nv_inference_request_summary_us{model="digits",version="1",quantile="0.999"} 9999
nv_inference_request_summary_us{model="digits",version="2",quantile="0.990000"} Nan
nv_inference_request_summary_us_sum{model="digits",version="1"} 123456
nv_inference_request_summary_us_count{model="digits",version="1"} 140
"""

MALFORMED = [
    "nv_inference_request_success{model=\"digits\",version=\"1\"}",  # no value
    "nv_inference_request_success{model=\"digits\" 3",  # unclosed label set
    "nv_inference_request_success{model=digits} 3",  # unquoted label value
    "nv_inference_request_success{model=\"a\",model=\"b\"} 3",  # repeated label
    "nv_inference_request_success{model=\"a\\x\"} 3",  # unknown escape
    "nv_inference_request_success 3 4 5",  # too many fields
    "nv_inference_request_success 0x10",  # not a number in this format
    "nv_inference_request_success 3 12.5",  # timestamp not an integer
    "9starts_with_digit 1",
    "{model=\"x\"} 1",
    "\x00\xff garbage",
    "nv_inference_request_success NaNa",
]


def test_parser_reads_labels_escapes_timestamps_and_special_values() -> None:
    text = 'a{x="q\\"uote\\\\b\\nc",y="{}, "} 1.5e3\nb +Inf\nc NaN 17\nd{z="1",} -2\ne Nan\n\n# comment {\n'
    samples, skipped = parse_metrics(text)
    assert skipped == 0
    assert samples[0] == ("a", {"x": 'q"uote\\b\nc', "y": "{}, "}, 1500.0)
    assert samples[1][2] == float("inf") and samples[2][2] != samples[2][2] and samples[3] == ("d", {"z": "1"}, -2.0)
    assert samples[4][2] != samples[4][2]  # prometheus-cpp's spelling of NaN


def test_malformed_lines_are_skipped_and_counted_never_raised() -> None:
    samples, skipped = parse_metrics("\n".join([*MALFORMED, 'ok{model="m",version="1"} 4']))
    assert skipped == len(MALFORMED)
    assert samples == [("ok", {"model": "m", "version": "1"}, 4.0)]


def test_rates_from_two_scrapes() -> None:
    before = snapshot(*parse_metrics(BEFORE)[:1], at=10.0)
    after = snapshot(*parse_metrics(AFTER)[:1], at=12.0)
    rows = {(r["model"], r["version"]): r for r in rates(before, after)}
    one = rows[("digits", "1")]
    assert one["requests_per_s"] == pytest.approx(20.0)  # (140 - 100) / 2 s
    assert one["failures_per_s"] == pytest.approx(2.0)  # both reasons: (3 + 4 - 1 - 2) / 2 s
    assert one["queue_ms"] == pytest.approx(0.1)  # 4000 us over 40 requests
    assert one["compute_ms"] == pytest.approx(1.0)  # 40000 us over 40 requests
    assert one["p99_ms"] == pytest.approx(2.5) and one["pending"] == 5
    # version 2's counter went 7 -> 3: a restart; its rate counts the 3 since, never a negative one
    two = rows[("digits", "2")]
    assert two["requests_per_s"] == pytest.approx(1.5) and two["p99_ms"] is None  # its only quantile is NaN
    assert ("nv_gpu_utilization", "") not in rows and len(rows) == 2


def test_render_shows_a_dash_where_a_value_is_missing() -> None:
    before, after = snapshot(*parse_metrics(BEFORE)[:1], at=0.0), snapshot(*parse_metrics(AFTER)[:1], at=1.0)
    rows = rates(before, after)
    for row in rows:
        row["state"] = "READY"
    report = {"http_url": "h:1", "metrics_url": "h:3", "interval_s": 1.0, "models": rows, "processes": [],
              "note": "index needs the admin key", "malformed_lines": 2}
    lines = render(report).splitlines()
    two = next(line for line in lines if line.startswith("digits  2"))
    assert two.split()[-2:] == ["-", "0"]  # no p99 summary for version 2; nothing pending
    assert "note: index needs the admin key" in lines and "note: 2 malformed metrics line(s) skipped" in lines


class _Peer(http.server.BaseHTTPRequestHandler):
    """An HTTP endpoint that is live but has no Triton metrics (404), or answers an oversized body."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        if self.path == "/v2/health/live":
            self.send_response(200)
            self.end_headers()
        elif self.path == "/metrics" and self.server.body:  # type: ignore[attr-defined]
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.server.body)  # type: ignore[attr-defined]
        elif self.path == "/metrics" and self.server.huge:  # type: ignore[attr-defined]
            self.send_response(200)
            self.end_headers()
            chunk = b"#" * (1 << 20)
            try:
                for _ in range((MAX_BODY >> 20) + 2):
                    self.wfile.write(chunk)
            except OSError:
                pass
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def peer() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Peer)
    server.huge, server.body = False, b""  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, "monitor", *args], capture_output=True, text=True, timeout=60)


def test_nothing_answering_a_missing_metrics_endpoint_and_a_bare_host_are_one_error_line(peer) -> None:
    port = peer.server_address[1]
    for args, words in [([f"127.0.0.1:{free_port()}", "--once"], "no Triton server answers"),
                        ([f"127.0.0.1:{port}", "--metrics-url", f"127.0.0.1:{port}", "--once"], "HTTP 404"),
                        (["127.0.0.1", "--once"], "is not host:port")]:
        done = _monitor(*args)
        assert done.returncode != 0 and done.stdout == "", args
        assert done.stderr.startswith("error: ") and words in done.stderr and done.stderr.count("\n") == 1, args


def test_a_metrics_body_over_16_mib_is_refused(peer) -> None:
    peer.huge = True
    url = f"127.0.0.1:{peer.server_address[1]}"
    with pytest.raises(ServerError, match="more than 16 MiB"):
        Monitor(url, url).scrape()


def test_on_a_terminal_the_table_redraws_in_place_and_ctrl_c_exits_0_quietly(peer) -> None:
    peer.body = (BEFORE + "garbage line\n").encode()
    url = f"127.0.0.1:{peer.server_address[1]}"
    leader, follower = pty.openpty()
    proc = subprocess.Popen([TRITONKIT, "monitor", url, "--metrics-url", url, "--interval", "0.1"], stdin=follower,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while seen.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
            seen += os.read(leader, 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        try:
            while chunk := os.read(leader, 65536):
                seen += chunk
        except OSError:  # the terminal closed with the process
            pass
    finally:
        proc.kill()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert text.count("\x1b[H\x1b[2J") >= 2 and "digits" in text and "1 malformed metrics line(s)" in text
    assert "Traceback" not in text and "error" not in text and "interrupted" not in text


# -- a real server ------------------------------------------------------------------------------------------


@pytest.fixture()
def traffic(triton_server, digits_onnx: Path) -> Iterator[None]:
    """digits inferences over HTTP in the background for the test's duration."""
    from toolkit.client.predictions import heldout_samples
    from toolkit.client.predictor import Predictor
    from toolkit.export.onnx import spec_from_onnx

    rows = heldout_samples(spec_from_onnx(digits_onnx), 4)[0]
    stop = threading.Event()

    def send() -> None:
        with Predictor("digits", triton_server.http_url, "http") as pred:
            while not stop.is_set():
                pred.predict(rows)
                time.sleep(0.01)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    time.sleep(0.3)
    yield
    stop.set()
    thread.join(timeout=10)


@pytest.mark.server
def test_monitor_once_json_sees_digits_served(triton_server, traffic) -> None:
    done = _monitor(triton_server.http_url, "--metrics-url", triton_server.metrics_url, "--once", "--json",
                    "--interval", "0.5")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    digits = [r for r in report["models"] if r["model"] == "digits"]
    assert digits and any(r["requests_per_s"] > 0 for r in digits)
    assert all(r["state"] == "READY" for r in digits) and all(r["version"] for r in digits)
    assert report["note"].startswith("index needs the admin key")  # nothing recorded: no admin header here
    assert report["malformed_lines"] == 0


@pytest.mark.server
def test_monitor_in_process_with_admin_key_and_local_processes(triton_server, traffic) -> None:
    mon = Monitor(triton_server.http_url, triton_server.metrics_url, headers=triton_server.admin_headers,
                  server=identity_of(triton_server.pid))
    report = mon.sample(0.5)
    digits = [r for r in report["models"] if r["model"] == "digits" and r["requests_per_s"] is not None]
    assert digits and digits[0]["requests_per_s"] > 0 and digits[0]["compute_ms"] > 0
    assert report["note"] is None and digits[0]["state"] == "READY"  # from the repository index
    server = [p for p in report["processes"] if p["role"] == "server"]
    assert len(server) == 1 and server[0]["pid"] == triton_server.pid and server[0]["rss_mib"] > 10
    assert server[0]["cpu_pct"] is not None and server[0]["cpu_pct"] >= 0
    text = render(report)
    assert "digits" in text and f"server pid {triton_server.pid}" in text
    json.dumps(public(report))  # what --json prints is plain JSON

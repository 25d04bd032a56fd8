"""Triton replicas on one object-storage repository behind real load balancers: start-up, version switch,
replica kill.

Why: users outgrow one server by keeping the repository in object storage and running replicas behind a
proxy. This measures, on this machine, what that path costs and whether it drops requests:

1. start-up of one server from S3 against the same repository from a folder (side by side, alternating);
2. two embedded replicas (``--model-control poll``) reading one S3 repository (moto on loopback) behind
   nginx and HAProxy, each proxying HTTP and gRPC (nginx ``grpc_pass`` over h2c, HAProxy ``proto h2``),
   started here with configs generated from ``benchmarks/replicas/*.in`` on free loopback ports, stopped by
   PID; client load through every proxy and protocol at once, retried on UNAVAILABLE/502/503/504 and
   connection errors with tritonkit's :class:`~toolkit.client.retry.RetryPolicy`;
3. a new version published with ``tritonkit repo add`` to the S3 repository (objects first, the config
   naming it last); each replica probed directly until it answers with the new version;
4. one replica killed (SIGKILL, as a crash) and started again on the same ports.

Figures: the start-up ratio, the time until every replica serves the new version, failed requests (after
retries) during the switch and during the kill, and requests answered by a version the config no longer
names once every replica switched (each answer's ``model_version`` tells). JSON and markdown reports go to
``benchmarks/reports/`` under timestamped names (never over an earlier report).

Run: ``python benchmarks/bench_replicas.py`` (needs nginx and/or haproxy, and the default repository
``model_repository/`` from ``make repo``, or ``--repository``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.objectstore import CREDENTIALS, moto_server  # noqa: E402
from toolkit.client.failures import failure_kind  # noqa: E402
from toolkit.client.retry import RetryPolicy  # noqa: E402
from toolkit.serve.embedded import EmbeddedServer  # noqa: E402
from toolkit.serve.ports import free_port  # noqa: E402

TEMPLATES = Path(__file__).resolve().parent / "replicas"
TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
PROXIES = ("nginx", "haproxy")
PROTOCOLS = ("http", "grpc")
HOST = "127.0.0.1"


# -- the proxies ---------------------------------------------------------------------------------------
@dataclass
class Proxy:
    """One running load balancer: its HTTP and gRPC front ports and its process (stopped by PID)."""

    name: str
    http_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    folder: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def render(template: str, fields: dict[str, str]) -> str:
    """Fill ``@NAME@`` fields (nginx and HAProxy configs are full of braces and dollars)."""
    for name, value in fields.items():
        template = template.replace(f"@{name}@", value)
    if "@" in "".join(line.split("#", 1)[0] for line in template.splitlines()):
        raise ValueError("a template field was left unfilled")
    return template


def proxy_config(name: str, replicas: list[tuple[int, int]], http_port: int, grpc_port: int, folder: Path,
                 model: str) -> str:
    """The config of proxy ``name`` for ``replicas`` ((http port, grpc port) each); HAProxy checks ``model``."""
    fields = {"DIR": str(folder), "HOST": HOST, "HTTP_PORT": str(http_port), "GRPC_PORT": str(grpc_port),
              "MODEL": model}
    if name == "nginx":
        line = "        server {}:{} max_fails=1 fail_timeout=2s;"
        fields["HTTP_SERVERS"] = "\n".join(line.format(HOST, h) for h, _ in replicas)
        fields["GRPC_SERVERS"] = "\n".join(line.format(HOST, g) for _, g in replicas)
        return render((TEMPLATES / "nginx.conf.in").read_text(), fields)
    fields["HTTP_SERVERS"] = "\n".join(f"    server r{i} {HOST}:{h} check" for i, (h, _) in enumerate(replicas))
    fields["GRPC_SERVERS"] = "\n".join(f"    server r{i} {HOST}:{g} proto h2 check port {h} check-proto h1"
                                       for i, (h, g) in enumerate(replicas))
    return render((TEMPLATES / "haproxy.cfg.in").read_text(), fields)


def start_proxy(name: str, replicas: list[tuple[int, int]], work: Path, model: str) -> Proxy:
    """Write the config into a folder of its own, check it with the proxy itself, start it in the foreground."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port = free_port(), free_port()
    conf = folder / ("nginx.conf" if name == "nginx" else "haproxy.cfg")
    conf.write_text(proxy_config(name, replicas, http_port, grpc_port, folder, model))
    exe = shutil.which(name) or f"/usr/sbin/{name}"
    if name == "nginx":
        check = [exe, "-t", "-q", "-p", str(folder), "-c", str(conf)]
        run = [exe, "-p", str(folder), "-c", str(conf)]
    else:
        check = [exe, "-c", "-q", "-f", str(conf)]
        run = [exe, "-db", "-f", str(conf)]
    checked = subprocess.run(check, capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"{name} refused its config {conf}: {(checked.stderr or checked.stdout).strip()}")
    log = open(folder / f"{name}.out", "wb")  # noqa: SIM115 - the process holds it
    process = subprocess.Popen(run, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    proxy = Proxy(name, http_port, grpc_port, process, folder)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {folder / f'{name}.out'}")
        if _listening(http_port) and _listening(grpc_port):
            return proxy
        time.sleep(0.05)
    proxy.stop()
    raise RuntimeError(f"{name} did not listen on {http_port}/{grpc_port} within 10 s")


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- requests --------------------------------------------------------------------------------------------
class HTTPInfer:
    """KServe v2 JSON inference over one keep-alive connection (the response names ``model_version``)."""

    def __init__(self, port: int, model: str, timeout: float = 5.0) -> None:
        self.port, self.model, self.timeout = port, model, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.body = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                            "data": [random.Random(0).uniform(0, 16) for _ in range(64)]}]})

    def __call__(self) -> str:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", f"/v2/models/{self.model}/infer", body=self.body,
                              headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if resp.status != 200:
            self.close()
            raise HTTPStatusError(resp.status, data[:200].decode(errors="replace"))
        return str(json.loads(data)["model_version"])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class HTTPStatusError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


class GRPCInfer:
    """tritonclient's gRPC inference (its channel reconnects by itself)."""

    def __init__(self, port: int, model: str) -> None:
        import numpy as np
        import tritonclient.grpc as grpcclient

        self.grpcclient = grpcclient
        self.client = grpcclient.InferenceServerClient(f"{HOST}:{port}")
        self.model = model
        self.inp = grpcclient.InferInput("input", [1, 1, 8, 8], "FP32")
        self.inp.set_data_from_numpy(np.random.default_rng(0).uniform(0, 16, (1, 1, 8, 8)).astype(np.float32))

    def __call__(self) -> str:
        result = self.client.infer(self.model, [self.inp], client_timeout=5.0)
        return str(result.get_response().model_version)

    def close(self) -> None:
        self.client.close()


def kind_of(exc: BaseException) -> str:
    """Retried or not: tritonkit's classification, plus a proxy's 502/503/504 (its word for "no replica")."""
    if isinstance(exc, HTTPStatusError):
        return "unavailable" if exc.status in (502, 503, 504) else "bad"
    # A keep-alive connection the proxy closed as the request went out (http.client's RemoteDisconnected is
    # also an HTTPException, which tritonkit reads as "not Triton"): a fresh connection is the fix.
    if isinstance(exc, ConnectionError):
        return "connect"
    return failure_kind(exc)


@dataclass
class Outcome:
    start: float
    end: float
    ok: bool
    version: str | None
    attempts: int
    error: str = ""


@dataclass
class Stream:
    """One client loop through one proxy and protocol, at about ``rate`` requests per second."""

    name: str
    call: Callable[[], str]
    close: Callable[[], None]
    rate: float
    policy: RetryPolicy
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def one(self) -> Outcome:
        state = self.policy.start(timeout=5.0, deadline=20.0)
        start = time.monotonic()
        while True:
            state.budget()
            try:
                version = self.call()
                return Outcome(start, time.monotonic(), True, version, state.attempts)
            except Exception as exc:  # noqa: BLE001 - every failure is classified and counted
                delay = state.next_delay(kind_of(exc))
                if delay is None:
                    return Outcome(start, time.monotonic(), False, None, state.attempts,
                                   f"{type(exc).__name__}: {str(exc)[:160]}")
                self.policy.sleep(delay)

    def run(self) -> None:
        gap = 1.0 / self.rate
        while not self.stop.is_set():
            t = time.monotonic()
            self.outcomes.append(self.one())
            self.stop.wait(max(0.0, gap - (time.monotonic() - t)))
        self.close()


# -- replicas --------------------------------------------------------------------------------------------
def replica(url: str, http_port: int, grpc_port: int, work: Path, index: int, poll_secs: int) -> EmbeddedServer:
    return EmbeddedServer(url, http_port=http_port, grpc_port=grpc_port, metrics_port=free_port(),
                          model_control="poll", poll_secs=poll_secs, log_path=work / f"replica{index}.log",
                          download_root=work / "downloads")


def start_replicas(url: str, count: int, work: Path, poll_secs: int) -> list[EmbeddedServer]:
    """Start ``count`` replicas at once (each its own thread; start-up from S3 is mostly waiting)."""
    servers = [replica(url, free_port(), free_port(), work, i, poll_secs) for i in range(count)]
    errors: list[BaseException] = []

    def go(s: EmbeddedServer) -> None:
        try:
            s.start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for s in servers:
            s.stop()
        raise errors[0]
    return servers


def startup_side_by_side(url: str, folder: Path, runs: int, work: Path) -> dict[str, Any]:
    """Seconds until ready, from the folder and from S3 alternately (same repository, same machine load)."""
    times: dict[str, list[float]] = {"folder": [], "s3": []}
    for i in range(runs):
        for where, repo in (("folder", str(folder)), ("s3", url)):
            s = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                               log_path=work / f"startup-{where}-{i}.log", download_root=work / "downloads")
            try:
                s.start()
                times[where].append(round(s.ready_seconds or 0.0, 2))
            finally:
                s.stop()
    if not runs:
        return {}
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"runs": runs, "folder_s": times["folder"], "s3_s": times["s3"], "folder_median_s": med["folder"],
            "s3_median_s": med["s3"], "ratio": round(med["s3"] / med["folder"], 2) if med["folder"] else None}


def http_status(port: int, path: str) -> int:
    """The status of GET ``path`` on a replica (0: no answer)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def direct_version(port: int, model: str) -> str | None:
    """The version one replica answers with (asked directly, not through a proxy); None when it does not."""
    probe = HTTPInfer(port, model, timeout=2.0)
    try:
        return probe()
    except Exception:  # noqa: BLE001 - no answer is an answer here
        return None
    finally:
        probe.close()


# -- the scenario ----------------------------------------------------------------------------------------
def publish(url: str, model: str, onnx: Path, env: dict[str, str]) -> tuple[float, float]:
    """`tritonkit repo add` to the S3 repository (objects, then the config naming the new version last)."""
    t0 = time.monotonic()
    r = subprocess.run([TRITONKIT, "repo", "add", model, "--onnx", str(onnx), "--repository", url, "--force"],
                       capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"repo add failed: {r.stderr.strip()}")
    return t0, time.monotonic()


def count(outcomes: list[Outcome], since: float, until: float) -> dict[str, Any]:
    window = [o for o in outcomes if since <= o.start < until]
    failed = [o for o in window if not o.ok]
    return {"requests": len(window), "failed": len(failed), "retried": sum(1 for o in window if o.attempts > 1),
            "errors": sorted({o.error for o in failed})[:3]}


def run_scenario(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole benchmark; returns the report (figures and settings)."""
    proxies = [p for p in args.proxies if shutil.which(p) or Path(f"/usr/sbin/{p}").exists()]
    if not proxies:
        raise SystemExit(f"none of {', '.join(args.proxies)} is installed (apt-get install nginx haproxy)")
    folder = Path(args.repository)
    if not (folder / args.model / "config.pbtxt").is_file():
        raise SystemExit(f"{folder} has no model {args.model!r}; build it with `make repo` or pass --repository")
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    env = {**os.environ, **CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # the replicas' credentials
    servers: list[EmbeddedServer] = []
    running: list[Proxy] = []
    streams: list[Stream] = []
    report: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    try:
        with moto_server(log=work / "moto.log") as s3:
            repo = work / "repository"
            repo.mkdir()
            shutil.copytree(folder / args.model, repo / args.model)
            s3.make_bucket("tk-replicas")
            url = s3.url("tk-replicas", "models")
            pushed = subprocess.run([TRITONKIT, "repo", "push", str(repo), url], capture_output=True, text=True,
                                    env=env, timeout=300)
            if pushed.returncode != 0:
                raise RuntimeError(f"repo push failed: {pushed.stderr.strip()}")
            old = _served_version(repo / args.model / "config.pbtxt")
            log(f"repository {url} (model {args.model}, version {old})")

            if args.startup_runs:
                # The whole --repository (every model, python and ensembles included), as a user serves it.
                full = s3.url("tk-replicas", "full")
                pushed = subprocess.run([TRITONKIT, "repo", "push", str(folder), full], capture_output=True,
                                        text=True, env=env, timeout=300)
                if pushed.returncode != 0:
                    raise RuntimeError(f"repo push failed: {pushed.stderr.strip()}")
                log(f"start-up of {folder}, folder vs S3, {args.startup_runs} runs each ...")
                report["startup"] = startup_side_by_side(full, folder, args.startup_runs, work)
                report["startup"]["models"] = sorted(p.name for p in folder.iterdir()
                                                     if (p / "config.pbtxt").is_file())
                log(f"  folder {report['startup']['folder_s']} s, S3 {report['startup']['s3_s']} s, "
                    f"ratio {report['startup']['ratio']}")

            t = time.monotonic()
            servers = start_replicas(url, args.replicas, work, args.poll_secs)
            report["replicas_ready_s"] = round(time.monotonic() - t, 2)
            log(f"{len(servers)} replicas ready in {report['replicas_ready_s']} s (poll every {args.poll_secs} s)")
            pairs = [(s.http_port, s.grpc_port) for s in servers]
            replica_pids = [s.pid for s in servers]
            for name in proxies:
                running.append(start_proxy(name, pairs, work, args.model))
            log("proxies: " + ", ".join(f"{p.name} http {p.http_port} grpc {p.grpc_port}" for p in running))

            policy = RetryPolicy(attempts=args.attempts, initial_s=0.05, max_s=1.0)
            for p in running:
                for proto in PROTOCOLS:
                    call: Any = HTTPInfer(p.http_port, args.model) if proto == "http" else \
                        GRPCInfer(p.grpc_port, args.model)
                    streams.append(Stream(f"{p.name}/{proto}", call, call.close, args.rate, policy))
            threads = [threading.Thread(target=st.run, daemon=True) for st in streams]
            for th in threads:
                th.start()
            t_load = time.monotonic()
            time.sleep(args.steady_s)

            # -- switch: publish, then watch each replica directly until it answers with the new version
            t_pub0, t_pub1 = publish(url, args.model, repo / args.model / old / "model.onnx", env)
            new = str(int(old) + 1)
            log(f"published version {new} in {t_pub1 - t_pub0:.1f} s; waiting for every replica to serve it")
            switched: dict[int, float] = {}
            regressions = 0
            seen_new: set[int] = set()
            not_ready: dict[int, int] = {i: 0 for i in range(len(servers))}  # probes that found it not ready
            all_not_ready = 0
            all_not_ready_s = 0.0  # seconds between probes that found no replica ready
            probes = 0
            last = time.monotonic()
            deadline = t_pub1 + args.switch_timeout_s
            while len(switched) < len(servers) or time.monotonic() < max(switched.values()) + args.after_s:
                if time.monotonic() > deadline:
                    break
                probes += 1
                ready = [http_status(s.http_port, "/v2/health/ready") == 200 for s in servers]
                all_not_ready += not any(ready)
                now = time.monotonic()
                all_not_ready_s += (now - last) if not any(ready) else 0.0
                last = now
                for i, r in enumerate(ready):
                    not_ready[i] += not r
                for i, s in enumerate(servers):
                    v = direct_version(s.http_port, args.model)
                    if v == new:
                        seen_new.add(i)
                        switched.setdefault(i, time.monotonic())
                    elif v is not None and i in seen_new:
                        regressions += 1
                time.sleep(0.2)
            if len(switched) < len(servers):
                raise RuntimeError(f"only {len(switched)} of {len(servers)} replicas served version {new} within "
                                   f"{args.switch_timeout_s} s of the publish")
            t_all = max(switched.values())
            t_switch_end = time.monotonic()
            report["switch"] = {
                "old_version": old, "new_version": new, "publish_s": round(t_pub1 - t_pub0, 2),
                "per_replica_s": [round(switched[i] - t_pub1, 2) for i in range(len(servers))],
                "all_replicas_s": round(t_all - t_pub1, 2),
                "probe_regressions": regressions,
                # Strict readiness while the old version unloads: probes that found a replica (or all) not ready.
                "probes": probes, "not_ready_probes": [not_ready[i] for i in range(len(servers))],
                "all_not_ready_probes": all_not_ready, "all_not_ready_s": round(all_not_ready_s, 1),
            }
            log(f"every replica serves version {new} {t_all - t_pub1:.1f} s after the publish")

            # -- kill one replica (a crash), start it again on the same ports
            victim = servers[0]
            t_kill = time.monotonic()
            os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
            victim.stop()
            log("replica 0 killed; starting it again on the same ports")
            again = EmbeddedServer(url, http_port=victim.http_port, grpc_port=victim.grpc_port,
                                   metrics_port=victim.metrics_port, model_control="poll", poll_secs=args.poll_secs,
                                   log_path=work / "replica0-again.log", download_root=work / "downloads")
            servers[0] = again
            again.start()
            replica_pids.append(again.pid)
            t_back = time.monotonic()
            back_version = direct_version(again.http_port, args.model)
            time.sleep(args.after_s)
            t_end = time.monotonic()
            for st in streams:
                st.stop.set()
            for th in threads:
                th.join(30)

            report["kill"] = {"restart_s": round(t_back - t_kill, 2), "restarted_serves": back_version}
            per_stream = {}
            for st in streams:
                outs = st.outcomes
                after = [o for o in outs if o.start >= t_all and o.ok]
                per_stream[st.name] = {
                    "total": count(outs, t_load, t_end),
                    "steady": count(outs, t_load, t_pub0),
                    "switch": count(outs, t_pub0, t_switch_end),
                    "kill": count(outs, t_kill, t_end),
                    "old_version_after_switch": sum(1 for o in after if o.version != new),
                    "old_version_during_switch": sum(1 for o in outs if o.ok and t_pub1 <= o.start < t_all
                                                     and o.version != new),
                    "rate_per_s": round(len(outs) / max(1e-9, t_end - t_load), 1),
                }
            report["streams"] = per_stream
            report["totals"] = {
                "requests": sum(v["total"]["requests"] for v in per_stream.values()),
                "failed": sum(v["total"]["failed"] for v in per_stream.values()),
                "failed_during_switch": sum(v["switch"]["failed"] for v in per_stream.values()),
                "failed_during_kill": sum(v["kill"]["failed"] for v in per_stream.values()),
                "retried": sum(v["total"]["retried"] for v in per_stream.values()),
                "old_version_after_switch": sum(v["old_version_after_switch"] for v in per_stream.values()),
                "old_version_during_switch": sum(v["old_version_during_switch"] for v in per_stream.values()),
            }
            report["proxies"] = [p.name for p in running]
            # Every process started here, for callers to check that none outlives the run.
            report["pids"] = {**{p.name: p.process.pid for p in running},
                              **{f"replica{i}": pid for i, pid in enumerate(replica_pids)}}
    finally:
        for st in streams:
            st.stop.set()
        for p in running:
            p.stop()
        for s in servers:
            s.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if args.keep_work:
            log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _served_version(config: Path) -> str:
    """The one version a tritonkit config names (``version_policy specific``), else "1"."""
    import re

    found = re.findall(r"versions:\s*(\d+)", config.read_text())
    return max(found, key=int) if found else "1"


# -- output ------------------------------------------------------------------------------------------------
def table(report: dict[str, Any]) -> str:
    """The figures as a markdown table (printed and written to the report)."""
    lines = ["| stream | requests | req/s | retried | failed (switch) | failed (kill) | old version after "
             "switch | old version during switch |", "|---|---|---|---|---|---|---|---|"]
    for name, v in report["streams"].items():
        lines.append(f"| {name} | {v['total']['requests']} | {v['rate_per_s']} | {v['total']['retried']} | "
                     f"{v['switch']['failed']} | {v['kill']['failed']} | {v['old_version_after_switch']} | "
                     f"{v['old_version_during_switch']} |")
    t = report["totals"]
    lines.append(f"| **all** | {t['requests']} | | {t['retried']} | {t['failed_during_switch']} | "
                 f"{t['failed_during_kill']} | {t['old_version_after_switch']} | {t['old_version_during_switch']} |")
    sw, kill = report["switch"], report["kill"]
    summary = [
        "",
        f"- replicas: {report['settings']['replicas']}, poll every {report['settings']['poll_secs']} s; "
        f"ready together in {report['replicas_ready_s']} s",
        f"- version {sw['old_version']} -> {sw['new_version']}: published in {sw['publish_s']} s; served by "
        f"every replica {sw['all_replicas_s']} s later (each: {sw['per_replica_s']} s); probe regressions "
        f"{sw['probe_regressions']}; readiness probes not ready per replica {sw['not_ready_probes']}, all at once "
        f"{sw['all_not_ready_probes']} of {sw['probes']} (about {sw['all_not_ready_s']} s)",
        f"- replica killed (SIGKILL) and started again in {kill['restart_s']} s; it serves version "
        f"{kill['restarted_serves']}",
    ]
    if report.get("startup"):
        st = report["startup"]
        summary.append(f"- start-up of {', '.join(st['models'])} from S3 {st['s3_s']} s vs folder {st['folder_s']} s "
                       f"(alternating): median ratio {st['ratio']}")
    return "\n".join(lines + summary)


def write_reports(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """``replicas-<UTC time>.json`` and ``.md``; an existing name gets a suffix, never overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        base = folder / (f"replicas-{stamp}" + (f"-{n}" if n else ""))
        try:
            with open(base.with_suffix(".json"), "x") as fh:
                json.dump(report, fh, indent=2)
            break
        except FileExistsError:
            continue
    else:
        raise RuntimeError(f"no free report name in {folder}")
    md = base.with_suffix(".md")
    with open(md, "x") as fh:
        fh.write(f"# Replicas behind {', '.join(report['proxies'])} on one S3 repository\n\n{table(report)}\n")
    return base.with_suffix(".json"), md


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--repository", type=Path, default=ROOT / "model_repository", help="Folder holding --model.")
    ap.add_argument("--model", default="digits")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--proxies", nargs="+", choices=PROXIES, default=list(PROXIES))
    ap.add_argument("--poll-secs", type=int, default=2, help="Each replica's repository poll interval.")
    ap.add_argument("--rate", type=float, default=20.0, help="Requests per second of each stream (proxy x protocol).")
    ap.add_argument("--attempts", type=int, default=6, help="Attempts per request (the first included).")
    ap.add_argument("--startup-runs", type=int, default=3, help="Start-ups from folder and S3 each (0: skip).")
    ap.add_argument("--steady-s", type=float, default=3.0, help="Load before the publish.")
    ap.add_argument("--after-s", type=float, default=3.0, help="Load after the switch and after the restart.")
    ap.add_argument("--switch-timeout-s", type=float, default=120.0)
    ap.add_argument("--reports", type=Path, default=ROOT / "benchmarks" / "reports")
    ap.add_argument("--no-report", action="store_true", help="Print only.")
    ap.add_argument("--keep-work", action="store_true", help="Keep the temporary folder (configs, logs).")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run_scenario(args)
    print(table(report))
    if not args.no_report:
        js, md = write_reports(report, args.reports)
        print(f"reports: {js} {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The S3 publish-crash loop: ``repo add`` killed at random points under two polling Tritons (issue 16).

What it proves: a polling Triton never loads a half-uploaded version, and the bucket's live config
only ever names complete versions recorded with it, whatever moment a writer dies at.

Set-up: a moto S3 server on loopback, one bucket, model ``m`` (``y = x * w``; every run publishes a new
``w``, so a version's outputs say which file it is). Two embedded Tritons poll the bucket
(``--model-control poll``). Each crash run starts ``tritonkit repo add m --repository s3://...`` and
kills it: odd runs at a protocol step boundary (``TRITONKIT_FAULT_AT``, cycling through every step of
:data:`toolkit.repository.s3.S3_STEPS`), even runs with SIGKILL at a random moment after the writer
took the lease (uniform over 1.2 times a clean publish's lease time, so some runs complete).
Then models new to the bucket are killed before their config goes live (the hold config's case).
Meanwhile a checker, every ``--tick`` seconds:

* asks both servers which versions of ``m`` are READY (``/v2/repository/index``);
* for every version seen READY the first time on a server: its objects must be complete against its
  manifest (S3's stored sha256), it must be named by a config the checker saw live, and its outputs
  (one request to that version) must equal the weights in the bucket's ``model.onnx`` of that version;
  otherwise it is a *bad load*;
* reads the live config: every version it names must be complete and recorded with that config;
  otherwise it is a *mismatched config*.

After the runs a last ``repo add`` must complete (taking over the lease a killed writer left) and both
servers must serve the version it published. Also measured: ``repo push`` / ``repo pull`` of a local
repository (first copy and an unchanged re-run). Report: a table on stdout, JSON and Markdown under
``benchmarks/reports/``. Run::

    .venv/bin/python benchmarks/bench_s3_publish.py [--crash-runs 20] [--poll-secs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.objectstore import CREDENTIALS, moto_server  # noqa: E402
from tests.s3.s3_helpers import WIDTH, scale_model  # noqa: E402

MODEL = "m"
REPORTS = Path(__file__).resolve().parent / "reports"


def tritonkit_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("tritonkit")), *args]


def http_json(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
              timeout: float = 5.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read() or b"null")


class Checker:
    """Watches both servers and the bucket (module docstring); counts what breaks the rules."""

    def __init__(self, url: str, servers: list[Any], tick: float) -> None:
        from toolkit.repository.s3 import S3Storage

        self.url, self.servers, self.tick = url, servers, tick
        self.storage = S3Storage(url)
        self.ever_named: set[tuple[str, int]] = set()
        self.seen: set[tuple[int, str, int]] = set()  # (server, model, version) checked
        self.expected: dict[tuple[str, int], list[float]] = {}
        self.counts = {"ticks": 0, "loads_checked": 0, "bad_loads": 0, "config_checks": 0, "mismatched_configs": 0,
                       "stale_loaded_observations": 0, "index_errors": 0, "infer_errors": 0}
        self.problems: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def loaded(self, server: Any) -> set[tuple[str, int]]:
        rows = http_json(f"http://{server.http_url}/v2/repository/index", {}, server.admin_headers)
        return {(str(r["name"]), int(r["version"])) for r in rows
                if r.get("state") == "READY" and str(r.get("version", "")).isdigit()}

    def weights(self, model: str, version: int) -> list[float]:
        """The outputs a version must give for x = ones: its ``w`` in the bucket's model file."""
        if (model, version) not in self.expected:
            import onnx
            from onnx import numpy_helper

            data = self.storage.get_bytes(f"{model}/{version}/model.onnx", "model")
            w = next(numpy_helper.to_array(i) for i in onnx.load_from_string(data).graph.initializer
                     if i.name == "w")
            self.expected[(model, version)] = [float(v) for v in w]
        return self.expected[(model, version)]

    def config_check(self) -> dict[str, list[int]]:
        from tests.s3.s3_helpers import served_consistent
        from toolkit.repository.remote_publish import named_in, remote_config

        out = {}
        for model in self.storage.model_names():
            named = named_in(remote_config(self.storage, model), self.storage.version_numbers(model))
            self.ever_named |= {(model, v) for v in named}
            out[model] = named
            self.counts["config_checks"] += 1
            bad = served_consistent(self.url, model)
            if bad:
                self.counts["mismatched_configs"] += 1
                self.problems.append(f"{model}: config names inconsistent versions: {bad}")
        return out

    def check_load(self, i: int, server: Any, model: str, version: int) -> None:
        from toolkit.repository.remote_publish import verify_remote_version

        self.counts["loads_checked"] += 1
        why = []
        if (model, version) not in self.ever_named:
            self.config_check()  # a config may have switched since the last look
        if (model, version) not in self.ever_named:
            why.append("never named by a live config")
        incomplete = verify_remote_version(self.storage, model, version)
        if incomplete:
            why.append(f"objects differ from its manifest: {incomplete}")
        else:
            body = {"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32", "data": [1.0] * WIDTH}]}
            try:
                out = http_json(f"http://{server.http_url}/v2/models/{model}/versions/{version}/infer", body)
                got = [float(v) for v in out["outputs"][0]["data"]]
            except Exception:  # noqa: BLE001 - unloaded between the index and the request: not a verdict
                self.counts["infer_errors"] += 1
                self.seen.discard((i, model, version))
                return
            if got != self.weights(model, version):
                why.append(f"outputs {got} differ from the bucket's model ({self.weights(model, version)})")
        if why:
            self.counts["bad_loads"] += 1
            self.problems.append(f"server {i} loaded {model} version {version}: {'; '.join(why)}")

    def run(self) -> None:
        while not self.stop.wait(self.tick):
            self.once()

    def once(self) -> None:
        self.counts["ticks"] += 1
        try:
            named = self.config_check()
        except Exception as exc:  # noqa: BLE001 - a transient read during a write: counted, not fatal
            self.problems.append(f"config read failed: {exc}")
            return
        for i, server in enumerate(self.servers):
            try:
                loaded = self.loaded(server)
            except Exception:  # noqa: BLE001
                self.counts["index_errors"] += 1
                continue
            if any(v not in named.get(m, []) for m, v in loaded):
                self.counts["stale_loaded_observations"] += 1  # poll lag after a switch: unloaded next poll
            for m, v in sorted(loaded):
                if (i, m, v) not in self.seen:
                    self.seen.add((i, m, v))
                    self.check_load(i, server, m, v)


def add_process(url: str, onnx: Path, env: dict[str, str], model: str = MODEL) -> subprocess.Popen[bytes]:
    return subprocess.Popen(tritonkit_cmd("repo", "add", model, "--repository", url, "--onnx", str(onnx),
                                          "--no-warmup", "--keep-versions", "2", "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def wait_for_lease(storage: Any, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    """When the writer took the lease (the lease object names its pid; a killed writer's may still be there),
    or exited; polled every 20 ms."""
    from contract.errors import RepositoryError
    from toolkit.repository.s3 import LEASE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(storage.get_bytes(LEASE, "lease")).get("pid") == proc.pid:
                break
        except (RepositoryError, ValueError):
            pass
        time.sleep(0.02)
    return time.monotonic()


def crash_loop(url: str, work: Path, runs: int, seed: int, env: dict[str, str]) -> dict[str, Any]:
    """The runs; returns per-run records and the clean publish duration used for random kill times."""
    from toolkit.repository.s3 import S3_STEPS

    rng = random.Random(seed)
    steps = [s for s in S3_STEPS if s != "s3_hold_config"]  # the model exists: no hold config is written
    from toolkit.repository.s3 import S3Storage

    storage = S3Storage(url)
    durations = []
    for k in range(3):  # how long a clean publish holds the lease: random kills fall in that window
        clean = add_process(url, scale_model(work / f"clean{k}.onnx", 1000.0 + k), env)
        leased = wait_for_lease(storage, clean)
        assert clean.wait(300) == 0, clean.stderr.read() if clean.stderr else b""
        durations.append(time.monotonic() - leased)
    clean_s = sorted(durations)[1]
    records = []
    for r in range(runs):
        onnx = scale_model(work / f"run{r}.onnx", float(r + 1))
        run_env = dict(env)
        mode = "step" if r % 2 else "random"
        step = steps[(r // 2) % len(steps)] if mode == "step" else ""
        if step:
            run_env["TRITONKIT_FAULT_AT"] = step
        started = time.monotonic()
        proc = add_process(url, onnx, run_env)
        delay = None
        if mode == "random":
            delay = rng.uniform(0.0, 1.2 * clean_s)  # after the lease is taken: inside the protocol
            wait_for_lease(storage, proc)
            try:
                proc.wait(delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        rc = proc.returncode
        version = json.loads(out)["version"] if rc == 0 and out else None
        records.append({"run": r, "mode": mode, "step": step, "kill_after_s": delay, "rc": rc,
                        "killed": rc == -9, "version": version, "seconds": round(time.monotonic() - started, 2),
                        "stderr": err.decode(errors="replace").strip()[-300:] if rc not in (0, -9) else ""})
        time.sleep(rng.uniform(0.0, 1.0))  # let polls happen between runs at varied phases
    return {"records": records, "clean_publish_s": round(clean_s, 2)}


def new_model_runs(url: str, work: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """A model new to the bucket killed at each step before its config goes live (the hold config's case),
    then one published whole: the checker must never see a killed one loaded."""
    from toolkit.repository.s3 import S3_STEPS

    records = []
    steps = [*S3_STEPS[:S3_STEPS.index("s3_config_written")], ""]
    for k, step in enumerate(steps):
        name = f"new{k}"
        proc = add_process(url, scale_model(work / f"{name}.onnx", 50.0 + k), {**env, "TRITONKIT_FAULT_AT": step}
                           if step else env, model=name)
        proc.communicate(timeout=300)
        records.append({"model": name, "step": step or "(not killed)", "rc": proc.returncode})
    return records


def transfers(url: str, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """repo push / pull timings: 3 versions of an 8 MiB model, then an unchanged re-run, then one new version."""
    from toolkit.repository.options import ServingOptions
    from toolkit.repository.publish import publish_onnx

    local = work / "transfer-local"
    opts = ServingOptions(warmup=False, keep_versions=3)
    for w in (1.0, 2.0, 3.0):
        publish_onnx(local, "big", scale_model(work / f"big{w}.onnx", w, payload_mb=8), opts)
    out: dict[str, Any] = {}

    def timed(name: str, *args: str) -> None:
        t = time.monotonic()
        r = subprocess.run(tritonkit_cmd(*args, "--json"), capture_output=True, env=env, check=False)
        if r.returncode != 0:
            raise SystemExit(f"{name} failed: {r.stderr.decode().strip()}")
        out[name] = {"seconds": round(time.monotonic() - t, 2), **json.loads(r.stdout)}

    timed("push_first", "repo", "push", str(local), url)
    timed("push_unchanged", "repo", "push", str(local), url)
    publish_onnx(local, "big", scale_model(work / "big4.onnx", 4.0, payload_mb=8), opts)
    timed("push_one_new_version", "repo", "push", str(local), url)
    timed("pull_first", "repo", "pull", url, str(work / "transfer-copy"))
    timed("pull_unchanged", "repo", "pull", url, str(work / "transfer-copy"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crash-runs", type=int, default=20)
    ap.add_argument("--poll-secs", type=int, default=1)
    ap.add_argument("--tick", type=float, default=0.25, help="checker interval (s)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--settle-timeout", type=float, default=120.0)
    ap.add_argument("--reports", type=Path, default=REPORTS)
    args = ap.parse_args()
    os.environ.update(CREDENTIALS)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    env = dict(os.environ)
    from toolkit.repository.options import ServingOptions
    from toolkit.repository.publish import publish_onnx
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    work = Path(tempfile.mkdtemp(prefix="bench_s3_publish_"))
    result: dict[str, Any] = {"crash_runs": args.crash_runs, "poll_secs": args.poll_secs, "seed": args.seed}
    servers: list[Any] = []
    try:
        with moto_server(log=work / "moto.log") as s3:
            bucket = s3.make_bucket("crash-loop")
            url = s3.url(bucket, "repo")
            publish_onnx(url, MODEL, scale_model(work / "v1.onnx", 0.5), ServingOptions(warmup=False, keep_versions=2))
            for i in range(2):
                srv = EmbeddedServer(url, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                                     model_control="poll", poll_secs=args.poll_secs, log_path=work / f"triton{i}.log",
                                     download_root=work / f"downloads{i}")
                t = time.monotonic()
                srv.start()
                result.setdefault("server_start_s", []).append(round(time.monotonic() - t, 2))
                servers.append(srv)
            checker = Checker(url, servers, args.tick)
            checker.thread.start()
            loop = crash_loop(url, work, args.crash_runs, args.seed, env)
            fresh = new_model_runs(url, work, env)
            final = add_process(url, scale_model(work / "final.onnx", 9999.0), env)
            out, err = final.communicate(timeout=300)
            final_ok = final.returncode == 0
            final_version = json.loads(out)["version"] if final_ok else None
            t = time.monotonic()
            settled = None
            while time.monotonic() - t < args.settle_timeout and final_ok:
                try:
                    if all({(MODEL, final_version), (fresh[-1]["model"], 1)} <= checker.loaded(s) for s in servers):
                        settled = round(time.monotonic() - t, 2)
                        break
                except Exception:  # noqa: BLE001, S110 - a server busy reloading: ask again
                    pass
                time.sleep(0.25)
            time.sleep(args.poll_secs * 2 + 1)
            checker.stop.set()
            checker.thread.join(timeout=30)
            checker.once()
            records = loop["records"]
            result.update({
                "runs": len(records), "kills": sum(r["killed"] for r in records),
                "completed_before_kill": sum(r["rc"] == 0 for r in records),
                "other_exits": [r for r in records if r["rc"] not in (0, -9)],
                "step_kills": sum(r["killed"] and r["mode"] == "step" for r in records),
                "random_kills": sum(r["killed"] and r["mode"] == "random" for r in records),
                "clean_publish_s": loop["clean_publish_s"], **checker.counts, "problems": checker.problems[:50],
                "final_publish_ok": final_ok, "final_version": final_version,
                "final_stderr": err.decode(errors="replace").strip()[-300:] if not final_ok else "",
                "final_served_by_both_after_s": settled, "records": records, "new_model_runs": fresh,
                "new_model_kills": sum(r["rc"] == -9 for r in fresh),
                "new_models_loaded": sorted({m for srv in servers for m, _ in checker.loaded(srv) if m != MODEL}),
            })
            for srv in servers:
                srv.stop()
            servers = []
            result["transfers"] = transfers(s3.url(bucket, "transfer"), work, env)
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(result, args.reports)


def report(result: dict[str, Any], folder: Path) -> None:
    rows = [("crash runs", result["runs"]), ("kills (step boundary / random)",
                                             f"{result['kills']} ({result['step_kills']} / {result['random_kills']})"),
            ("runs that completed before their kill", result["completed_before_kill"]),
            ("other exits", len(result["other_exits"])),
            ("loads checked (server x version)", result["loads_checked"]), ("bad loads", result["bad_loads"]),
            ("checker ticks / config checks", f"{result['ticks']} / {result['config_checks']}"),
            ("mismatched configs", result["mismatched_configs"]),
            ("loaded-but-no-longer-named observations (poll lag)", result["stale_loaded_observations"]),
            ("requests to a READY version that failed (unloaded meanwhile)", result["infer_errors"]),
            ("new models killed before their config (hold config) / loaded at the end",
             f"{result['new_model_kills']} / {result['new_models_loaded']}"),
            ("final publish after the crashes", "ok" if result["final_publish_ok"] else "FAILED"),
            ("final version (and the new model) served by both servers after (s)",
             result["final_served_by_both_after_s"]),
            ("clean repo add, lease held (s)", result["clean_publish_s"]),
            ("server start from S3 (s)", result.get("server_start_s"))]
    for name, t in result.get("transfers", {}).items():
        rows.append((f"{name.replace('_', ' ')} (s; files, bytes)",
                     f"{t['seconds']} ({t.get('uploaded') or t.get('downloaded')} files, {t['bytes']} B, "
                     f"{t['skipped']} already there)"))
    width = max(len(r[0]) for r in rows)
    table = "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
    print(table)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M%S")
    base = folder / f"{stamp}-bench_s3_publish"
    base.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    md = ["# S3 publish-crash loop", "", f"{result['runs']} runs, poll every {result['poll_secs']} s, two "
          "embedded Tritons on one moto bucket.", "", "| measure | value |", "|---|---|"]
    md += [f"| {name} | {value} |" for name, value in rows]
    if result["problems"]:
        md += ["", "## Problems", ""] + [f"- {p}" for p in result["problems"]]
    base.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"report: {base}.json, {base}.md")
    if result["bad_loads"] or result["mismatched_configs"] or not result["final_publish_ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()

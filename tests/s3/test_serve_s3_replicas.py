"""Two replicas on one S3 repository behind nginx and HAProxy (HTTP and gRPC), bounded: the benchmark's
scenario with short phases. With the proxies' and the client's retries no request fails during a version
switch or a replica kill, and once every replica serves the new version nothing answers with the old one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolkit.serve.procs import identity_of

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_replicas_switch_and_kill_without_failures(digits_build: dict[str, Path]) -> None:
    from benchmarks.bench_replicas import PROXIES, parse_args, run_scenario

    proxies = [p for p in PROXIES if shutil.which(p) or Path(f"/usr/sbin/{p}").exists()]
    if not proxies:
        pytest.skip("neither nginx nor haproxy is installed (apt-get install nginx haproxy)")
    args = parse_args(["--repository", str(digits_build["repository"]), "--proxies", *proxies, "--startup-runs", "0",
                       "--poll-secs", "1", "--rate", "10", "--steady-s", "1", "--after-s", "1", "--attempts", "8",
                       "--switch-timeout-s", "90", "--no-report"])
    report = run_scenario(args, log=lambda *_: None)

    assert report["proxies"] == proxies
    assert set(report["streams"]) == {f"{p}/{proto}" for p in proxies for proto in ("http", "grpc")}
    totals = report["totals"]
    for name, stream in report["streams"].items():
        assert stream["steady"]["requests"] > 0 and stream["kill"]["requests"] > 0, (name, stream)
    assert totals["failed"] == 0, report["streams"]
    assert totals["old_version_after_switch"] == 0, report["streams"]
    switch = report["switch"]
    assert (switch["old_version"], switch["new_version"]) == ("1", "2")
    assert switch["probe_regressions"] == 0
    assert 0 < switch["all_replicas_s"] < 90
    assert report["kill"]["restarted_serves"] == "2"
    # Nothing it started outlives it: proxies and replicas (the killed one included) are gone.
    assert all(identity_of(pid) is None for pid in report["pids"].values()), report["pids"]

"""Served profiling, reports, regression check, config search and bad input: real Triton, real perf_analyzer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.profiling.conftest import FAST, one_error_line, tk


@pytest.fixture(scope="module")
def sweep(triton_server, digits_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("reports")
    proc = tk("profile", "digits", "--url", triton_server.grpc_url, "--concurrency", "1,4", "--batch", "1,8", *FAST,
              "--local", f"digits={digits_onnx}", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


@pytest.mark.server
def test_profile_sweeps_concurrency_by_batch_with_formed_batch(sweep: dict) -> None:
    runs = sweep["runs"]
    assert [(r["model"], r["batch_size"]) for r in runs] == [("digits", 1), ("digits", 8)]
    for run in runs:
        assert [r["concurrency"] for r in run["rows"]] == [1, 4]  # none dropped, stable or not
        stable = [r for r in run["rows"] if r["stable"]]
        assert all(r["formed_batch"] >= run["batch_size"] for r in stable)
        assert Path(run["log_path"]).is_file()
    assert runs[1]["rows"][0]["requests_per_sec"] == pytest.approx(runs[1]["rows"][0]["infer_per_sec"] / 8)


@pytest.mark.server
def test_profile_report_is_self_contained_with_efficiency_and_bottlenecks(sweep: dict) -> None:
    report = Path(sweep["report"])
    md, page = report.read_text(), report.with_suffix(".html").read_text()
    assert "Bottleneck" in md and "samples/s" in md and "serving efficiency" in md
    assert page.count("data:image/png;base64,") >= 3 and "<img" in page and 'src="breakdown' not in page
    heads = [h for h in sweep["headline"] if h.get("efficiency")]
    assert heads and all(0 < h["efficiency"] < 5 for h in heads)


@pytest.mark.server
def test_report_compare_exits_nonzero_only_when_throughput_drops(sweep: dict, tmp_path: Path) -> None:
    old = Path(sweep["report"]).parent
    same = tmp_path / "same"
    shutil.copytree(old, same)
    assert tk("report", str(same), "--compare", str(old)).returncode == 0
    worse = tmp_path / "worse"
    shutil.copytree(old, worse)
    data = json.loads((worse / "results.json").read_text())
    for run in data["runs"]:
        for row in run["rows"]:
            row["infer_per_sec"] *= 0.5
    (worse / "results.json").write_text(json.dumps(data))
    proc = tk("report", str(worse), "--compare", str(old), "--threshold", "10")
    assert proc.returncode == 1 and "REGRESSION" in proc.stdout
    assert "Change against" in (worse / "report.md").read_text()


@pytest.mark.server
def test_profile_lists_ready_models_when_model_missing(triton_server) -> None:
    line = one_error_line(tk("profile", "nosuch", "--url", triton_server.grpc_url))
    assert "nosuch" in line and "digits" in line


def test_profile_fails_in_one_line_when_no_server_answers() -> None:
    from toolkit.serve.ports import free_port

    port = free_port()
    line = one_error_line(tk("profile", "digits", "--url", f"127.0.0.1:{port}"))
    assert f"127.0.0.1:{port}" in line and "tritonkit serve" in line


def test_profile_says_how_to_install_when_perf_analyzer_missing(tmp_path: Path) -> None:
    proc = tk("profile", "digits", env={"TRITONKIT_PERF_ANALYZER": str(tmp_path / "none")})
    line = one_error_line(proc)
    assert "perf_analyzer not found" in line and "pip install" in line and proc.returncode == 3


def test_report_fails_in_one_line_when_csv_is_from_failed_run(tmp_path: Path) -> None:
    csv = tmp_path / "failed.csv"
    csv.write_text("Concurrency,Inferences/Second,Client Send\n")  # header only: what a failed run leaves
    line = one_error_line(tk("report", "--csv", str(csv), "--out", str(tmp_path)))
    assert "failed.csv" in line and "failed" in line


def test_shapes_come_from_warmup_or_name_the_needed_flag(dynamic_onnx: Path, tmp_path: Path) -> None:
    from google.protobuf.json_format import MessageToDict

    from contract.errors import UsageError
    from toolkit.perf.server import shapes_for
    from toolkit.repository.config import ServingOptions, read_config
    from toolkit.repository.publish import publish_onnx

    publish_onnx(tmp_path / "repo", "dyn", dynamic_onnx, ServingOptions(warmup=False))
    cfg = MessageToDict(read_config(tmp_path / "repo" / "dyn" / "config.pbtxt"), preserving_proto_field_name=True)
    with pytest.raises(UsageError, match=r"--shape input:1,H,H"):
        shapes_for(cfg)
    assert shapes_for(cfg, {"input": [1, 16, 16]}) == {"input": [1, 16, 16]}
    cfg["model_warmup"] = [{"inputs": {"input": {"dims": ["1", "8", "8"]}}}]
    assert shapes_for(cfg) == {"input": [1, 8, 8]}


@pytest.mark.server
def test_tune_picks_fastest_within_budget_and_applies_it(digits_build: dict, tmp_path: Path) -> None:
    from toolkit.repository.config import read_config
    from toolkit.repository.manifest import live_labels
    from toolkit.repository.storage import version_numbers

    repo = tmp_path / "repo"
    shutil.copytree(digits_build["repository"], repo)
    labels_before = live_labels(repo / "digits")
    assert labels_before
    proc = tk("tune", "digits", "--repository", str(repo), "--max-instances", "1", "--delays-us", "0,2000",
              "--preferred", "none", "--concurrency", "4", *FAST, "--latency-budget-ms", "2000", "--apply", "--json",
              timeout=400)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert [t["variant"] for t in result["trials"]] == ["current", "i1_d0_pnone", "i1_d2000_pnone"]
    measured = [t for t in result["trials"] if t["samples_per_sec"]]
    winner = result["winner"]
    assert winner["samples_per_sec"] == max(t["samples_per_sec"] for t in measured)
    if winner["current"]:
        assert result["applied"] is None and version_numbers(repo / "digits") == [1]
    else:
        assert result["applied"]["version"] == 2
        cfg = read_config(repo / "digits" / "config.pbtxt")
        assert cfg.dynamic_batching.max_queue_delay_microseconds == winner["max_queue_delay_us"]
        assert live_labels(repo / "digits") == labels_before  # the tuned version keeps its labels

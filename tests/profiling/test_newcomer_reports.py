"""Issue 15, reports that guide: one folder per profile run, honest statuses and advice, like-with-like
comparisons, serving efficiency by default, readable plots, the ensemble front door, input checks.

Real Triton and perf_analyzer; a report's rows are marked unstable by editing its results.json
(what a busy machine produces, without waiting for one).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.profiling.conftest import FAST, ROOT, one_error_line, tk

QUICK = [*FAST, "--max-trials", "3"]


def _report_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def run(triton_server, digits_build: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One sweep of digits and the image ensemble at concurrency 1,2; efficiency found in the repository."""
    out = tmp_path_factory.mktemp("newcomer")
    proc = tk("profile", "digits", "digits_image", "--url", triton_server.grpc_url, "--concurrency", "1,2",
              "--batch", "1", *QUICK, "--repository", str(digits_build["repository"]), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return {"out": out, "proc": proc, **json.loads(proc.stdout)}


def _mark_unstable(folder: Path, concurrency: int) -> None:
    """Turn one level of every run into what perf_analyzer leaves for a level that did not stabilize."""
    data = json.loads((folder / "results.json").read_text())
    for r in data["runs"]:
        for row in r["rows"]:
            if row["concurrency"] == concurrency:
                row["stable"] = False
                for key in ("p50_us", "p90_us", "p95_us", "p99_us", "server_queue_us", "client_send_us"):
                    row[key] = math.nan
    (folder / "results.json").write_text(json.dumps(data))


# -- item 8: one folder per run --------------------------------------------------------------------
@pytest.mark.server
def test_profile_writes_separate_folder_when_run_twice_on_one_day(triton_server, tmp_path: Path) -> None:
    args = ["profile", "digits", "--url", triton_server.grpc_url, "--concurrency", "1", "--batch", "1", *QUICK,
            "--no-efficiency", "--out", str(tmp_path)]
    assert tk(*args).returncode == 0
    first = _report_folders(tmp_path)
    assert len(first) == 1
    before = (first[0] / "report.md").read_bytes()
    proc = tk(*args[:7], "8", *args[8:])  # second run at batch 8
    assert proc.returncode == 0, proc.stderr
    folders = _report_folders(tmp_path)
    assert len(folders) == 2
    assert (first[0] / "report.md").read_bytes() == before
    second = next(f for f in folders if f != first[0])
    assert sorted(p.name for p in (first[0] / "perf").iterdir() if p.suffix == ".log") == ["digits-b1.log"]
    assert sorted(p.name for p in (second / "perf").iterdir() if p.suffix == ".log") == ["digits-b8.log"]
    assert "b8" in (second / "report.md").read_text() and "b8" not in before.decode()


@pytest.mark.server
def test_profile_keeps_good_report_when_preflight_fails(run: dict, triton_server) -> None:
    out: Path = run["out"]
    before = {p: p.read_bytes() for p in out.rglob("report.md")}
    line = one_error_line(tk("profile", "nosuch", "--url", triton_server.grpc_url, "--out", str(out)))
    assert "nosuch" in line
    assert {p: p.read_bytes() for p in out.rglob("report.md")} == before
    assert len(_report_folders(out)) == 1  # no empty folder left either


# -- item 13: reports that guide ------------------------------------------------------------------
@pytest.mark.server
def test_report_says_partial_with_count_when_levels_unstable(run: dict, tmp_path: Path) -> None:
    folder = tmp_path / "rep"
    shutil.copytree(Path(run["report"]).parent, folder)
    _mark_unstable(folder, 2)
    assert tk("report", str(folder)).returncode == 0
    md = (folder / "report.md").read_text()
    assert "partial (1 of 2 levels unstable)" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| 2 | 1 | UNSTABLE"))
    assert row.rstrip(" |").endswith("-") and "0.0 |" not in row  # formed batch unknown, not 0.0


@pytest.mark.server
def test_report_shows_every_level_command_when_sweep_has_several(run: dict) -> None:
    md = Path(run["report"]).read_text()
    for c in (1, 2):
        assert md.count(f"--concurrency-range {c}:{c}:1") == 2  # digits and digits_image


def test_explain_advises_more_concurrency_only_when_higher_level_helped() -> None:
    from toolkit.perf.analyzer import PerfRow, PerfRun
    from toolkit.perf.explain import explain

    def row(c: int, tput: float) -> PerfRow:  # client-side time dominates: the server waits for work
        return PerfRow(c, 1, tput, 300, 300, 20, 5, 50, 5, 300, 1000, 1200, 1300, 1500)

    flat = PerfRun("m", [], rows=[row(4, 1000), row(8, 1020)])
    assert "higher concurrency did not raise throughput" in explain(flat.rows[0], 0, flat)
    assert "try higher concurrency" not in explain(flat.rows[0], 0, flat)
    rising = PerfRun("m", [], rows=[row(4, 1000), row(8, 1800)])
    assert "higher concurrency raised throughput" in explain(rising.rows[0], 0, rising)
    assert "try higher concurrency" in explain(rising.rows[1], 0, rising)  # nothing above was measured


@pytest.mark.server
def test_report_compare_warns_and_uses_common_levels_when_levels_differ(run: dict, tmp_path: Path) -> None:
    old = Path(run["report"]).parent
    new = tmp_path / "new"
    shutil.copytree(old, new)
    data = json.loads((new / "results.json").read_text())
    for r in data["runs"]:
        r["rows"] = [row for row in r["rows"] if row["concurrency"] == 1]
    (new / "results.json").write_text(json.dumps(data))
    proc = tk("report", str(new), "--compare", str(old))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: different levels; compared at 1 only" in proc.stdout
    peak = next(ln for ln in proc.stdout.splitlines() if "peak samples/s" in ln and "digits b1" in ln)
    assert peak.split()[-1] == "ok" and "+0.0%" in peak  # concurrency 1 against concurrency 1


def test_report_fails_in_one_line_when_results_hold_no_data(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"runs": [{"model": "digits", "command": [], "rows": [],
                                                                  "ok": False, "error": "server gone"}]}))
    line = one_error_line(tk("report", str(tmp_path)))
    assert "nothing was measured" in line and "server gone" in line
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "report.md").exists()


@pytest.mark.server
def test_csv_report_states_csv_time_and_unknown_environment(run: dict, tmp_path: Path) -> None:
    from datetime import datetime, timezone

    csv = Path(run["runs"][0]["csv_path"].split(",")[0])
    proc = tk("report", "--csv", str(csv), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    md = next(tmp_path.rglob("report.md")).read_text()
    stamp = datetime.fromtimestamp(csv.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    assert f"last written {stamp}" in md and "environment is unknown" in md and "AMD" not in md


# -- item 12: serving efficiency by default --------------------------------------------------------
@pytest.mark.server
def test_profile_reports_efficiency_by_default_when_repository_holds_served_file(run: dict) -> None:
    heads = {h["label"]: h for h in run["headline"]}
    assert 0 < heads["digits b1"]["efficiency"] < 5
    assert "efficiency" not in heads["digits_image b1"]  # an ensemble has no single model file


# -- item 2 (profile part): the ensemble front door -------------------------------------------------
@pytest.mark.server
def test_profile_measures_ensemble_when_all_inputs_optional(run: dict) -> None:
    image = next(r for r in run["runs"] if r["model"] == "digits_image")
    assert image["ok"] and [r["concurrency"] for r in image["rows"]] == [1, 2]
    cmd = image["commands"][0]
    sent = json.loads(Path(cmd[cmd.index("--input-data") + 1]).read_text())["data"][0]
    assert list(sent) == ["IMAGE"] and sent["IMAGE"]["shape"] == [8, 8, 1]  # the classifier's own image size


@pytest.mark.server
def test_profile_names_server_error_when_perf_analyzer_sees_no_valid_requests(triton_server,
                                                                              tmp_path: Path) -> None:
    proc = tk("profile", "digits_image", "--url", triton_server.grpc_url, "--concurrency", "1", "--batch", "1",
              "--shape", "IMAGE:8,8,5", *QUICK, "--out", str(tmp_path))  # 5 channels: the server refuses
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "server error:" in errors[0] and "IMAGE must be" in errors[0]
    assert "No valid requests" not in proc.stdout + proc.stderr


# -- item 14: plots -----------------------------------------------------------------------------
@pytest.mark.server
def test_plots_label_real_levels_and_break_line_when_level_unstable(run: dict, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolkit.perf.analyzer import PerfRun
    from toolkit.perf.plots import throughput_figure

    folder = tmp_path / "rep"
    shutil.copytree(Path(run["report"]).parent, folder)
    _mark_unstable(folder, 2)
    runs = [PerfRun.from_dict(d) for d in json.loads((folder / "results.json").read_text())["runs"]]
    fig = throughput_figure(plt, runs)
    ax1, ax2 = fig.axes
    assert [t.get_text() for t in ax1.get_xticklabels()] == ["1", "2"]
    assert math.isnan(ax1.lines[0].get_ydata()[1])  # the unstable level is not joined
    assert any(c.get_offsets().shape[0] == 1 for c in ax1.collections)  # but marked
    legend = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert {"p50", "p90", "p99"} <= set(legend)
    markers = {h.get_label(): h.get_marker() for h in ax2.get_legend().legend_handles}
    assert len({markers["p50"], markers["p90"], markers["p99"]}) == 3, markers  # told apart without colour
    assert len(ax2.lines) == 0  # latency vs throughput: points, no line to fold back when throughput dips
    assert {a.get_text() for a in ax2.texts} == {"c1"}  # stable points annotated with their level
    plt.close(fig)
    assert tk("report", str(folder)).returncode == 0  # and the breakdown draws the unstable level


# -- item 15 (profile part) and input checks -------------------------------------------------------
@pytest.mark.server
def test_profile_prints_plain_line_per_level_when_not_on_terminal(run: dict) -> None:
    err = run["proc"].stderr
    assert "perf_analyzer 1/4: digits batch 1 concurrency 1" in err and "4/4: digits_image" in err
    assert "\r" not in err and "%|" not in err  # no tqdm bar in a log


@pytest.mark.parametrize("flag,value", [("--measurement-ms", "0"), ("--measurement-ms", "-5"),
                                        ("--max-trials", "0"), ("--stability-pct", "0")])
def test_profile_refuses_in_one_line_when_measurement_setting_invalid(flag: str, value: str,
                                                                     tmp_path: Path) -> None:
    line = one_error_line(tk("profile", "digits", flag, value, "--out", str(tmp_path)))
    assert flag in line and value in line
    assert not list(tmp_path.iterdir())


def test_profile_asks_for_model_in_one_line_when_none_is_given(tmp_path: Path) -> None:
    line = one_error_line(tk("profile", "--out", str(tmp_path)))
    assert "give MODEL" in line and "tritonkit profile digits" in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("url", ["localhost", "127.0.0.1:0", "127.0.0.1:70000"])
def test_profile_refuses_in_one_line_when_url_has_no_valid_port(url: str, tmp_path: Path) -> None:
    line = one_error_line(tk("profile", "digits", "--url", url, "--out", str(tmp_path)))
    assert f"{url!r}" in line and "host:port" in line
    assert not list(tmp_path.iterdir())


def test_profile_refuses_missing_local_file_in_one_line_before_any_import_heavier_than_click(tmp_path: Path) -> None:
    missing = tmp_path / "gone.onnx"
    code = ("import sys\nfrom click.testing import CliRunner\nfrom toolkit.cli import main\n"
            f"r = CliRunner().invoke(main, ['profile', 'digits', '--local', 'digits={missing}', "
            f"'--out', '{tmp_path}'])\n"
            "assert r.exit_code != 0 and 'model file not found' in r.output, r.output\n"
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'imported a runtime'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = one_error_line(tk("profile", "digits", "--local", f"digits={missing}", "--out", str(tmp_path)))
    assert str(missing) in line and "model file not found" in line


def test_profile_help_imports_no_torch_when_asked_for_help() -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom toolkit.cli import main\n"
            "r = CliRunner().invoke(main, ['profile', '--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_tune_refuses_in_one_line_when_measurement_ms_not_positive(tmp_path: Path) -> None:
    line = one_error_line(tk("tune", "digits", "--repository", str(tmp_path), "--measurement-ms", "0"))
    assert "--measurement-ms 0" in line


@pytest.mark.server
def test_profile_dials_recorded_server_when_no_url_given(digits_build: dict, tmp_path: Path) -> None:
    from toolkit.serve.ports import free_port

    repo = tmp_path / "model_repository"
    shutil.copytree(digits_build["repository"], repo)
    ports = [str(free_port()) for _ in range(3)]
    started = tk("serve", "--runtime", "embedded", "--detach", "--repository", str(repo), "--http-port", ports[0],
                 "--grpc-port", ports[1], "--metrics-port", ports[2])
    try:
        assert started.returncode == 0, started.stderr
        proc = tk("profile", "digits", "--repository", str(repo), "--concurrency", "1", "--batch", "1", *QUICK,
                  "--no-efficiency", "--out", str(tmp_path / "out"), "--json")
        assert proc.returncode == 0, proc.stderr
        cmd = json.loads(proc.stdout)["runs"][0]["commands"][0]
        assert cmd[cmd.index("-u") + 1] == f"127.0.0.1:{ports[1]}"
    finally:
        assert tk("serve", "stop", "--repository", str(repo)).returncode == 0

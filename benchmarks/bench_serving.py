"""All issue-7 figures side by side in one run, written as one report.

    .venv/bin/python benchmarks/bench_serving.py [--measurement-ms 3000] [--quick]

1. Compute-bound (resnet_small, 3x64x64, untrained weights: speed only): serving efficiency at
   saturation = served samples/s (batch-1 requests, dynamic batching) / in-process ONNX Runtime
   samples/s at the batch size the server formed (Triton's inference_count / execution_count).
   Goal >= 0.9.
2. Overhead-bound (the digits CNN): served samples/s at concurrency 16, batch-1 requests / the same
   for a python-backend model that only returns zeros of the right shape (the server's floor), both
   on the same server. Goal >= 0.9. Beside it, two figures that say where the gap lies:
   - ``linear`` (flatten + one 64x10 Gemm: the digits inputs/outputs with next to no compute) served
     by the same onnxruntime backend / zeros: the backend's own overhead against the floor;
   - the compute ceiling: the floor's samples/s if each sample also paid the digits CNN's
     in-process ONNX Runtime time at the batch the server formed, 1 / (1 + zeros/s x ORT s/sample).
   The three run in ``--rounds`` interleaved rounds (default 3); each model's median round counts.
3. Dynamic batching on vs off for the compute-bound model at concurrency 16.
4. PyTriton (``pytriton.triton.Triton`` binding an ONNX Runtime session) vs tritonkit's repository,
   same Triton binary, same model, concurrency 16.

The server and perf_analyzer share the machine's cores with the client; run it on a quiet machine
for figures (``--quick`` only checks that everything runs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ZEROS_MODEL_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Returns zeros of the output shape: the serving path's own cost, no model."""

    def execute(self, requests):
        out = []
        for r in requests:
            n = pb_utils.get_input_tensor_by_name(r, "input").as_numpy().shape[0]
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("logits", np.zeros((n, 10), np.float32))]))
        return out
'''


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def resnet_onnx(work: Path) -> Path:
    import torch

    from contract.spec import ModelSpec, TensorSpec
    from toolkit.export.onnx import onnx_from_module
    from trainers.models import create_model

    out = work / "resnet_small.onnx"
    if not out.is_file():
        torch.manual_seed(0)
        model = create_model("resnet_small", num_classes=10, in_channels=3)
        spec = ModelSpec(inputs=(TensorSpec("input", (3, 64, 64)),), outputs=(TensorSpec("logits", (10,)),))
        onnx_from_module(model, spec, out, check_parity=False)
    return out


def digits_onnx(work: Path) -> Path:
    from toolkit.repository.storage import version_numbers

    served = ROOT / "model_repository" / "digits"
    if version_numbers(served):
        return served / str(version_numbers(served)[-1]) / "model.onnx"
    from toolkit.pipeline import build_repository

    res = build_repository(work / "digits_repo", checkpoint=work / "digits.pt", onnx_path=work / "digits.onnx",
                           log=log)
    return res.onnx


def linear_onnx(work: Path) -> Path:
    """Digits-shaped inputs and outputs with next to no compute: the backend's overhead alone."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = work / "linear.onnx"
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((64, 10)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(10, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "W", "B"], ["logits"])],
        "linear", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)
    return out


def zeros_model(repo: Path) -> None:
    """A python-backend model with digits' inputs/outputs that returns zeros."""
    from tritonclient.grpc import model_config_pb2 as mc

    from toolkit.repository.config import config_to_text

    cfg = mc.ModelConfig(name="zeros", backend="python", max_batch_size=32)
    cfg.input.add(name="input", data_type=mc.TYPE_FP32, dims=[1, 8, 8])
    cfg.output.add(name="logits", data_type=mc.TYPE_FP32, dims=[10])
    cfg.dynamic_batching.max_queue_delay_microseconds = 100
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    (repo / "zeros" / "1").mkdir(parents=True, exist_ok=True)
    (repo / "zeros" / "1" / "model.py").write_text(ZEROS_MODEL_PY)
    (repo / "zeros" / "config.pbtxt").write_text(config_to_text(cfg))


def pytriton_child(onnx_path: str, name: str, ports: str, token: str) -> None:
    """Runs in a subprocess: PyTriton binding an ONNX Runtime session; serves until stdin closes."""
    import onnxruntime as ort
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    http, grpc, metrics = (int(p) for p in ports.split(","))
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    out = sess.get_outputs()[0]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {out.name: sess.run([out.name], {inp.name: inputs[inp.name]})[0]}

    config = TritonConfig(http_address="127.0.0.1", http_port=http, grpc_address="127.0.0.1", grpc_port=grpc,
                          metrics_address="127.0.0.1", metrics_port=metrics)
    with Triton(config=config, security_config=TritonSecurityConfig(access_token=token)) as triton:
        triton.bind(model_name=name, infer_func=infer,
                    inputs=[Tensor(name=inp.name, dtype=np.float32, shape=tuple(inp.shape[1:]))],
                    outputs=[Tensor(name=out.name, dtype=np.float32, shape=tuple(out.shape[1:]))],
                    config=ModelConfig(max_batch_size=32, batcher=DynamicBatcher(max_queue_delay_microseconds=100)))
        triton.run()
        Path(os.environ["BENCH_READY_FILE"]).write_text("ready")  # Triton's own log owns stdout
        sys.stdin.read()


def throughput(run: object) -> float:
    row = run.saturation()  # type: ignore[attr-defined]
    return row.infer_per_sec if row else float("nan")


def median_run(runs: list) -> object:
    """The run whose throughput is the median (the lower middle one; a failed run counts as lowest)."""
    ordered = sorted(runs, key=lambda r: -math.inf if math.isnan(throughput(r)) else throughput(r))
    return ordered[(len(ordered) - 1) // 2]


def run_pytriton(onnx_path: Path, name: str, work: Path, pa_kwargs: dict) -> object:
    import secrets
    import sysconfig

    from toolkit.perf.analyzer import run_perf_analyzer
    from toolkit.serve.install import prepare_triton
    from toolkit.serve.ports import free_port

    ports = [free_port() for _ in range(3)]
    token = secrets.token_urlsafe(16)
    env = prepare_triton().env()  # TOOLCHAIN.md: the running Python's libpython first, then the wheel's libs
    env["LD_LIBRARY_PATH"] = os.pathsep.join([sysconfig.get_config_var("LIBDIR") or "", env["LD_LIBRARY_PATH"]])
    ready = work / f".pytriton-{name}.ready"
    ready.unlink(missing_ok=True)
    env["BENCH_READY_FILE"] = str(ready)
    logfile = open(work / f"pytriton-{name}.log", "w")  # noqa: SIM115 - closed below
    child = subprocess.Popen([sys.executable, __file__, "--pytriton-child", str(onnx_path), name,
                              ",".join(map(str, ports)), token], stdin=subprocess.PIPE, stdout=logfile,
                             stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PyTriton did not start; see {work / f'pytriton-{name}.log'}")
            time.sleep(0.2)
        # PyTriton restricts statistics (perf_analyzer's server-side breakdown) to its access token.
        return run_perf_analyzer(name, f"127.0.0.1:{ports[1]}", work / "perf", label=f"{name} (PyTriton)",
                                 headers={"triton-grpc-protocol-triton-access-token": token}, **pa_kwargs)
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
        logfile.close()
        ready.unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(ROOT / ".tritonkit" / "bench"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reports"))
    ap.add_argument("--measurement-ms", type=int, default=3000)
    ap.add_argument("--stability-pct", type=int, default=15)
    ap.add_argument("--saturation", default="1,4,16,32", help="Concurrency levels for the resnet saturation sweep.")
    ap.add_argument("--quick", action="store_true", help="Short windows, wide stability: checks it runs.")
    ap.add_argument("--rounds", type=int, default=3, help="Interleaved rounds of digits, linear and zeros.")
    ap.add_argument("--skip-pytriton", action="store_true")
    ap.add_argument("--pytriton-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: use 1 or more")
    if args.pytriton_child:
        pytriton_child(*args.pytriton_child)
        return 0
    if args.quick:
        args.measurement_ms, args.stability_pct, args.saturation, args.rounds = 500, 100, "4,16", 1

    from toolkit.perf.analyzer import run_perf_analyzer
    from toolkit.perf.local import PerformanceProfiler
    from toolkit.perf.report import environment, report_dir, write_perf_report
    from toolkit.repository.config import ServingOptions
    from toolkit.repository.publish import publish_onnx
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = work / stamp
    repo = run_dir / "repository"
    log("exporting models")
    resnet, digits, linear = resnet_onnx(work), digits_onnx(work), linear_onnx(work)
    publish_onnx(repo, "resnet", resnet, ServingOptions(max_batch_size=32, max_queue_delay_us=0))
    publish_onnx(repo, "resnet_nobatch", resnet, ServingOptions(max_batch_size=32, dynamic_batching=False))
    publish_onnx(repo, "digits", digits, ServingOptions(max_batch_size=32))
    publish_onnx(repo, "linear", linear, ServingOptions(max_batch_size=32))
    zeros_model(repo)
    pa = {"measurement_ms": args.measurement_ms, "stability_pct": args.stability_pct, "max_trials": 8}
    folder = report_dir(args.out, "bench_serving")
    perf_dir = folder / "perf"
    runs = []
    rounds: dict[str, list] = {"digits": [], "linear": [], "zeros": []}
    log("starting the embedded server")
    server = EmbeddedServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                            log_path=run_dir / "triton.log")
    server.start(timeout=300)
    try:
        env = environment(server.grpc_url)
        sat = [int(c) for c in args.saturation.split(",")]
        log(f"resnet saturation sweep {sat}")
        resnet_run = run_perf_analyzer("resnet", server.grpc_url, perf_dir, concurrency=sat, label="resnet b1 "
                                       "(dynamic batching)", **pa)
        runs.append(resnet_run)
        log("resnet without dynamic batching, concurrency 16")
        runs.append(run_perf_analyzer("resnet_nobatch", server.grpc_url, perf_dir, concurrency=[16],
                                      label="resnet b1 (no dynamic batching)", **pa))
        # Interleaved rounds: this machine's speed drifts between windows, and a ratio of two runs
        # taken a minute apart carries that drift. Each model's median round is its figure.
        labels = {"digits": "digits b1", "linear": "linear (backend, no compute) b1",
                  "zeros": "zeros (python backend floor) b1"}
        for i in range(1, args.rounds + 1):
            for name, label in labels.items():
                log(f"{name}, concurrency 16, round {i}/{args.rounds}")
                rounds[name].append(run_perf_analyzer(name, server.grpc_url, perf_dir / f"round{i}", concurrency=[16],
                                                      label=f"{label} round {i}", **pa))
        digits_run, linear_run, zeros_run = (median_run(rounds[n]) for n in labels)
        runs += [digits_run, linear_run, zeros_run]
    finally:
        server.stop()
    py_runs = []
    if not args.skip_pytriton:
        for onnx_path, name in ((resnet, "resnet_pytriton"), (digits, "digits_pytriton")):
            log(f"PyTriton {name}, concurrency 16")
            try:
                py_runs.append(run_pytriton(onnx_path, name, folder, {"concurrency": [16], **pa}))
            except RuntimeError as exc:
                log(str(exc))
        runs += py_runs
    log("in-process ONNX Runtime at the formed batch sizes")
    sat_row = resnet_run.saturation()
    formed = sat_row.formed_batch if sat_row and sat_row.formed_batch else 1.0
    sizes = sorted({1, max(1, int(formed)), max(1, int(formed + 0.999))})
    iterations = 30 if args.quick else 200
    local = PerformanceProfiler(resnet, threads=os.cpu_count()).profile(sizes, num_iterations=iterations)
    digits_row = digits_run.rows[0] if digits_run.rows else None
    digits_formed = digits_row.formed_batch if digits_row and digits_row.formed_batch else 1.0
    digits_sizes = sorted({1, max(1, int(digits_formed)), max(1, int(digits_formed + 0.999))})
    # The backend's default: all cores for its one instance.
    digits_local = PerformanceProfiler(digits, threads=os.cpu_count()).profile(digits_sizes,
                                                                               num_iterations=iterations * 5)

    def peak(run: object, conc: int | None = None) -> tuple[float, float]:
        """Highest throughput, from stable levels where there are any (as the report's headline)."""
        rows = [r for r in run.rows if conc is None or r.concurrency == conc]  # type: ignore[attr-defined]
        rows = [r for r in rows if r.stable] or rows
        best = max(rows, key=lambda r: r.infer_per_sec) if rows else None
        return (best.infer_per_sec, best.p99_us / 1000) if best else (float("nan"), float("nan"))

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b and b == b and a == a else "-"

    served_sat, _ = peak(resnet_run)
    base = local.at_batch(formed)
    eff = served_sat / base if base else float("nan")
    d16, d99 = peak(digits_run, 16)
    z16, z99 = peak(zeros_run, 16)
    l16, l99 = peak(linear_run, 16)
    digits_cost = 1.0 / digits_local.at_batch(digits_formed) if digits_local.at_batch(digits_formed) else float("nan")
    ceiling = 1.0 / (1.0 + z16 * digits_cost)
    per_round = ", ".join(ratio(throughput(d), throughput(z)) for d, z in zip(rounds["digits"], rounds["zeros"]))
    on16, on99 = peak(runs[0], 16)
    off16, off99 = peak(runs[1], 16)
    figures = [
        {"title": "Compute-bound: serving efficiency at saturation (goal >= 0.9)",
         "text": f"resnet_small 3x64x64: served {served_sat:.1f} samples/s at saturation with batches of {formed:.1f}; "
                 f"in-process ONNX Runtime ({os.cpu_count()} threads) at batch {formed:.1f}: {base:.1f} samples/s; "
                 f"efficiency {eff:.2f}.",
         "table": {"header": ["served samples/s", "formed batch", "in-process samples/s", "efficiency", "goal"],
                   "rows": [[f"{served_sat:.1f}", f"{formed:.1f}", f"{base:.1f}", f"{eff:.2f}", ">= 0.9"]]}},
        {"title": "Overhead-bound: digits vs the python-backend zeros floor, concurrency 16 (goal >= 0.9)",
         "text": f"The digits CNN costs {digits_cost * 1e6:.1f} us/sample in-process (ONNX Runtime, batch "
                 f"{digits_formed:.1f}, {os.cpu_count()} threads): if each of the floor's samples paid that, "
                 f"the ratio could reach {ceiling:.2f} at best. linear (same backend, next to no compute) "
                 "measures the backend's own overhead against the floor. Figures: each model's median of "
                 f"{args.rounds} interleaved round(s); digits / zeros in each round: {per_round}.",
         "table": {"header": ["model", "samples/s", "p99 ms", "/ zeros", "goal"],
                   "rows": [["digits", f"{d16:.1f}", f"{d99:.2f}", ratio(d16, z16), ">= 0.9"],
                            ["linear", f"{l16:.1f}", f"{l99:.2f}", ratio(l16, z16), ""],
                            ["zeros (floor)", f"{z16:.1f}", f"{z99:.2f}", "1.00", ""],
                            ["compute ceiling for digits", "", "", f"{ceiling:.2f}", ""]]}},
        {"title": "Dynamic batching on vs off, resnet, concurrency 16",
         "table": {"header": ["", "samples/s", "p99 ms"],
                   "rows": [["on", f"{on16:.1f}", f"{on99:.2f}"], ["off", f"{off16:.1f}", f"{off99:.2f}"],
                            ["on / off", ratio(on16, off16), ratio(on99, off99)]]}},
    ]
    if py_runs:
        rows = []
        for ours, theirs in ((runs[0], py_runs[0] if py_runs else None),
                             (digits_run, py_runs[1] if len(py_runs) > 1 else None)):
            if theirs is None:
                continue
            a, a99 = peak(ours, 16)
            b, b99 = peak(theirs, 16)
            rows.append([ours.label, f"{a:.1f}", f"{a99:.2f}", f"{b:.1f}", f"{b99:.2f}", ratio(a, b)])
        figures.append({"title": "PyTriton vs tritonkit repository, same Triton binary, concurrency 16",
                        "table": {"header": ["model", "tritonkit samples/s", "tritonkit p99 ms", "PyTriton samples/s",
                                             "PyTriton p99 ms", "tritonkit / PyTriton"], "rows": rows}})
    report = write_perf_report(runs, folder, "Serving benchmarks (issue 7)",
                               local={"resnet": local, "digits": digits_local}, env=env,
                               figures=figures)
    summary = {"report": str(report), "figures": [{"title": f["title"], **f.get("table", {})} for f in figures]}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export + parity time of the default digits model, and its accuracy per precision.

    .venv/bin/python benchmarks/bench_export.py [--checkpoint digits.pt] [--epochs 15]

Measures (CPU, ONNX Runtime):
- ``onnx_from_checkpoint`` (export, cleanup, checker, fp32 parity on real and random inputs) in
  process, and the whole ``tritonkit export`` command in a fresh process (imports included);
  the goal is under 10 s on 2 CPU cores;
- accuracy on the held-out digits test split: torch fp32, ONNX fp32, ONNX fp16, ONNX int8.

Prints a table and writes ``benchmarks/reports/export-<UTC time>/report.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _accuracy_onnx(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from toolkit.runners import OnnxRunner

    with OnnxRunner(path) as runner:
        out = np.concatenate([runner.infer({runner.input_names[0]: x[i:i + 64]})[runner.output_names[0]]
                              for i in range(0, len(x), 64)])
    return float(np.mean(out.argmax(1) == y))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: train the default model")
    ap.add_argument("--epochs", type=int, default=15, help="epochs when training (the make repo default)")
    ap.add_argument("--repeats", type=int, default=3, help="in-process export+parity repetitions")
    ap.add_argument("--reports", type=Path, default=ROOT / "benchmarks" / "reports")
    args = ap.parse_args()

    import torch

    from toolkit.export.onnx import onnx_from_checkpoint
    from toolkit.export.precision import quantize_onnx
    from toolkit.export.records import record_path
    from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of
    from trainers.data import load_digits_splits, normalize

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench_export."))
    ckpt = args.checkpoint
    if ckpt is None:
        from trainers.recipes import train_digits_default

        ckpt = train_digits_default(work / "digits.pt", epochs=args.epochs, quiet=True)

    onnx_path = work / "digits.onnx"
    onnx_from_checkpoint(ckpt, onnx_path)  # warm-up: imports and first ONNX Runtime session
    times, cpu_times = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        onnx_from_checkpoint(ckpt, onnx_path)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)  # wall time suffers on a shared machine
    record = json.loads(record_path(onnx_path).read_text())

    tk = Path(sys.executable).with_name("tritonkit")
    t0 = time.perf_counter()
    subprocess.run([str(tk), "export", str(ckpt), "-o", str(work / "cli.onnx")], check=True, capture_output=True)
    cli_seconds = time.perf_counter() - t0

    payload = load_checkpoint(ckpt)
    spec = model_spec_of(payload)
    test = load_digits_splits(seed=int(payload.get("dataset", {}).get("seed", 0)))["test"]
    x = normalize(test.images, spec.scale, spec.mean, spec.std)
    with torch.no_grad():
        pred = model_from_checkpoint(payload)(torch.from_numpy(x)).argmax(1).numpy()
    torch_acc = float((pred == test.labels).mean())
    rows = [("torch fp32", torch_acc, None), ("ONNX fp32", _accuracy_onnx(onnx_path, x, test.labels), None)]
    for precision in ("fp16", "int8"):
        t0 = time.perf_counter()
        out, _ = quantize_onnx(onnx_path, work / f"digits.{precision}.onnx", precision=precision, check=False)
        rows.append((f"ONNX {precision}", _accuracy_onnx(out, x, test.labels), time.perf_counter() - t0))

    lines = [
        f"# Export benchmark ({datetime.now(timezone.utc).isoformat(timespec='seconds')})",
        "",
        f"checkpoint: {ckpt} (test split: {len(test.labels)} images)",
        f"export + parity, in process: median {np.median(times):.2f} s over {len(times)} runs "
        f"(min {min(times):.2f} s; CPU time median {np.median(cpu_times):.2f} s); goal < 10 s",
        f"`tritonkit export` command, fresh process: {cli_seconds:.2f} s",
        f"fp32 parity max abs error: {record['parity']['logits']['max_abs']:.3g}",
        "",
        "| stage | accuracy | drop vs torch (points) | conversion s |",
        "|---|---|---|---|",
    ]
    for name, acc, secs in rows:
        secs_text = "" if secs is None else f"{secs:.2f}"
        lines.append(f"| {name} | {acc:.4f} | {100 * (torch_acc - acc):.2f} | {secs_text} |")
    text = "\n".join(lines)
    print(text)
    out_dir = args.reports / f"export-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(text + "\n")
    (out_dir / "report.json").write_text(json.dumps({
        "export_parity_seconds": times, "export_parity_cpu_seconds": cpu_times, "cli_export_seconds": cli_seconds,
        "parity": record["parity"], "accuracy": {name: acc for name, acc, _ in rows},
        "conversion_seconds": {name: s for name, _, s in rows if s is not None},
        "test_images": int(len(test.labels)),
    }, indent=2))
    print(f"report: {out_dir}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

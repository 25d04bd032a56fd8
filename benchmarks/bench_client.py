"""``tritonkit predict --digits 1000 --concurrency 8`` against a bare ``tritonclient`` loop.

Both send the same rows (the held-out digits, already normalized), in the same batches, 8 in
flight, over gRPC to one embedded Triton started here on free loopback ports. The CLI's figure is
the sending phase it reports in its JSON summary (``seconds``: first request to last answer, as
the bare loop is timed); the CLI's whole wall time, process start included, is shown beside it.
Runs alternate (CLI, bare, CLI, bare...) and the median of each is reported. Goal: ratio >= 0.9.

    .venv/bin/python benchmarks/bench_client.py [--repeats 5] [--batch-sizes 1,32]

Writes ``benchmarks/reports/client_<time>.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from contract.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def bare_loop(url: str, x: np.ndarray, batch_size: int, concurrency: int) -> float:
    """Seconds to send ``x`` in batches with plain tritonclient gRPC calls from a thread pool."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    spans = [(s, min(len(x), s + batch_size)) for s in range(0, len(x), batch_size)]

    def one(span: tuple[int, int]) -> np.ndarray:
        part = x[span[0]:span[1]]
        inp = grpcclient.InferInput("input", list(part.shape), "FP32")
        inp.set_data_from_numpy(part)
        res = client.infer("digits", [inp], outputs=[grpcclient.InferRequestedOutput("logits")], client_timeout=30)
        return res.as_numpy("logits")

    with ThreadPoolExecutor(concurrency) as pool:
        t0 = time.perf_counter()
        out = np.concatenate(list(pool.map(one, spans)))
        seconds = time.perf_counter() - t0
    client.close()
    assert out.shape == (len(x), 10)
    return seconds


def cli_run(url: str, digits: int, batch_size: int, concurrency: int) -> tuple[dict, float]:
    """The CLI's JSON summary and its whole wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [TRITONKIT, "predict", "digits", "--digits", str(digits), "--concurrency", str(concurrency),
         "--batch-size", str(batch_size), "--url", url, "--json"],
        capture_output=True, text=True, timeout=300,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"tritonkit predict failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout.splitlines()[-1]), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints/digits_smallcnn.pt"),
                    help="Reused when it exists, else trained into a temporary folder.")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/reports"))
    args = ap.parse_args()

    from toolkit.client.predictions import heldout_samples
    from toolkit.pipeline import build_repository
    from toolkit.serve.embedded import EmbeddedServer
    from toolkit.serve.ports import free_port
    from trainers.recipes import digits_model_spec

    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        tmpdir = Path(tmp)
        ckpt = Path(args.checkpoint) if Path(args.checkpoint).is_file() else tmpdir / "digits.pt"
        build_repository(tmpdir / "model_repository", checkpoint=ckpt, onnx_path=tmpdir / "digits.onnx",
                         log=lambda *_: None)
        server = EmbeddedServer(tmpdir / "model_repository", http_port=free_port(), grpc_port=free_port(),
                                metrics_port=free_port(), log_path=tmpdir / "triton.log")
        server.start(timeout=180)
        try:
            x, _ = heldout_samples(digits_model_spec([str(i) for i in range(10)]), args.digits)
            bare_loop(server.grpc_url, x, 32, args.concurrency)  # warm the server's instance
            rows = []
            for bs in (int(b) for b in args.batch_sizes.split(",")):
                cli_tp, cli_wall, bare_tp = [], [], []
                for _ in range(args.repeats):
                    summary, wall = cli_run(server.grpc_url, args.digits, bs, args.concurrency)
                    assert summary["n"] == len(x), summary
                    cli_tp.append(summary["n"] / summary["seconds"])
                    cli_wall.append(wall)
                    bare_tp.append(len(x) / bare_loop(server.grpc_url, x, bs, args.concurrency))
                rows.append({
                    "batch_size": bs, "rows": len(x), "requests": -(-len(x) // bs),
                    "cli_rows_per_s": statistics.median(cli_tp), "bare_rows_per_s": statistics.median(bare_tp),
                    "ratio": statistics.median(cli_tp) / statistics.median(bare_tp),
                    "cli_wall_s": statistics.median(cli_wall), "cli_runs": cli_tp, "bare_runs": bare_tp,
                })
        finally:
            server.stop()

    head = (f"tritonkit predict --digits {args.digits} --concurrency {args.concurrency} vs bare tritonclient "
            f"gRPC loop; {len(x)} held-out digits (the whole test split), median of {args.repeats}, "
            f"{os.cpu_count()} CPUs")
    table = ["| batch | requests | tritonkit rows/s | bare rows/s | ratio | CLI wall s (with start-up) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['batch_size']} | {r['requests']} | {r['cli_rows_per_s']:.0f} | "
                     f"{r['bare_rows_per_s']:.0f} | {r['ratio']:.2f} | {r['cli_wall_s']:.2f} |")
    text = "\n".join([f"# Client overhead\n\n{head}\n", *table, ""])
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    atomic_write_text(out / f"client_{stamp}.md", text)
    atomic_write_text(out / f"client_{stamp}.json", json.dumps({"header": head, "rows": rows}, indent=2))
    print(f"report: {out / f'client_{stamp}.md'}")


if __name__ == "__main__":
    main()

"""How long ``validate_repository`` takes on a 50-model repository (issue 5 asks for under 5 s).

The repository: 44 ONNX classifiers (a tiny CNN exported here with torch), 2 TensorRT plans with
plan records, 2 python preprocessing models and 2 ensembles. Run:

    .venv/bin/python benchmarks/bench_validate.py [--models 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.toolkit.validate_fixtures import add_onnx_model, build_clean_repository, export_tiny_onnx  # noqa: E402
from toolkit.repository.validate import summary, validate_repository  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_validate_"))
    try:
        onnx = export_tiny_onnx(tmp / "tiny.onnx")
        repo = tmp / "repo"
        build_clean_repository(tmp / "base", onnx)
        repo.mkdir()
        for i in range(2):  # 4 models each: onnx, plan, python, ensemble (renamed consistently)
            for src in ("digits", "digits_trt", "preprocess", "pipeline"):
                d = repo / f"{src}{i}" if src != "digits" else repo / f"digits{i}"
                shutil.copytree(tmp / "base" / src, d)
                text = (d / "config.pbtxt").read_text()
                for name in ("digits_trt", "preprocess", "pipeline", "digits"):
                    text = text.replace(f'"{name}"', f'"{name}{i}"')
                (d / "config.pbtxt").write_text(text)
        n = len(list(repo.iterdir()))
        for j in range(args.models - n):
            add_onnx_model(repo, f"m{j:03d}", onnx)
        n = len(list(repo.iterdir()))
        cold_start = time.perf_counter()
        problems = validate_repository(repo, target_triton="24.09")
        cold = time.perf_counter() - cold_start
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            validate_repository(repo, target_triton="24.09")
            times.append(time.perf_counter() - t0)
        print(f"models: {n}; result: {summary(problems)}")
        for p in problems:
            print("  ", p.line())
        print(f"first run (includes importing onnx/protobuf): {cold:.3f} s")
        print(f"warm runs: median {statistics.median(times):.3f} s, max {max(times):.3f} s over {args.repeat}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

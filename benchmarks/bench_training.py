"""Training figures: the default digits run (``make repo``) and the Trainer's overhead.

1. Wall time and test accuracy of ``trainers.recipes.train_digits_default`` (goal: >= 97% test
   accuracy, < 30 s on 2 CPU cores).
2. Optimizer steps per second of ``Trainer.fit`` against a bare hand-written loop over the same
   model, data, optimizer and batch order, measured side by side (interleaved repeats, median) in
   one run (goal: fit >= 0.95x the bare loop).

Writes ``benchmarks/reports/training.json`` and ``training.md``; prints the table.
Usage: ``.venv/bin/python benchmarks/bench_training.py [--epochs 5] [--repeats 3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.fileio import atomic_write_bytes  # noqa: E402
from trainers.callbacks import ModelCheckpoint  # noqa: E402
from trainers.checkpoint import load_checkpoint  # noqa: E402
from trainers.data import create_dataloader, load_digits_splits  # noqa: E402
from trainers.loggers import default_loggers  # noqa: E402
from trainers.models import create_model  # noqa: E402
from trainers.recipes import digits_model_spec, train_digits_default  # noqa: E402
from trainers.trainer import Trainer  # noqa: E402


def fresh(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = create_model("smallcnn", num_classes=10, in_channels=1, width=32)
    return model, torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)


def bare_loop(loader, epochs: int) -> tuple[float, float]:
    """The hand-written baseline: the same steps, nothing else. Returns steps/s (wall, CPU)."""
    model, opt = fresh()
    loss_fn = nn.CrossEntropyLoss()
    steps = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        gen = torch.Generator().manual_seed(epoch)
        order = torch.randperm(len(loader.dataset), generator=gen).tolist()
        for i in range(0, len(order), loader.batch_size):
            x, y = loader.collate_fn([loader.dataset[j] for j in order[i:i + loader.batch_size]])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            steps += 1
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def trainer_fit(loader, epochs: int, run_dir: Path, classes: list[str], full: bool) -> tuple[float, float]:
    """``Trainer.fit``; ``full`` adds a resumable last.pt per epoch and the progress bar."""
    model, opt = fresh()
    callbacks = [ModelCheckpoint(save_best=False, save_last=True)] if full else []
    trainer = Trainer(model, opt, callbacks=callbacks, run_dir=run_dir,
                      loggers=default_loggers(progress=full, curves=False),
                      model_spec=digits_model_spec(classes).to_dict(), labels=classes)
    if full:  # the bar draws to stderr; keep the table readable
        devnull = open(os.devnull, "w")  # noqa: SIM115
        saved, sys.stderr = sys.stderr, devnull
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = trainer.fit(loader, None, epochs=epochs)
    finally:
        if full:
            sys.stderr = saved
            devnull.close()
    return result.steps / (time.perf_counter() - t0), result.steps / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "reports")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        ckpt = train_digits_default(Path(tmp) / "default" / "model.pt", quiet=True)
        default_wall, default_cpu = time.perf_counter() - t0, time.process_time() - c0
        default_metrics = load_checkpoint(ckpt)["metrics"]

        torch.set_num_threads(args.threads)
        splits = load_digits_splits(0)
        classes = splits["train"].classes
        loader = create_dataloader(splits["train"], {"batch_size": 32, "shuffle": True})
        bare, fit_min, fit_full = [], [], []
        for r in range(args.repeats):  # interleaved, so load changes hit all three alike
            bare.append(bare_loop(loader, args.epochs))
            fit_min.append(trainer_fit(loader, args.epochs, Path(tmp) / f"min{r}", classes, False))
            fit_full.append(trainer_fit(loader, args.epochs, Path(tmp) / f"full{r}", classes, True))

    runs = {"bare": bare, "fit": fit_min, "fit_full": fit_full}
    wall = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    report = {
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                    "load_avg_1m": os.getloadavg()[0]},
        "default_digits": {
            "wall_seconds": round(default_wall, 2),
            "cpu_seconds": round(default_cpu, 2),
            "train_seconds": round(float(default_metrics["train_seconds"]), 2),
            "test_accuracy": round(float(default_metrics["test_accuracy"]), 4),
            "goals": {"test_accuracy_min": 0.97, "wall_seconds_max": 30},
        },
        "overhead": {
            "epochs": args.epochs, "repeats": args.repeats, "threads": args.threads,
            "steps_per_wall_s": {k: round(v, 1) for k, v in wall.items()},
            "steps_per_cpu_s": {k: round(v, 1) for k, v in cpu.items()},
            "all_runs_wall_cpu": runs,
            "ratio_wall": {k: round(wall[k] / wall["bare"], 3) for k in ("fit", "fit_full")},
            "ratio_cpu": {k: round(cpu[k] / cpu["bare"], 3) for k in ("fit", "fit_full")},
            "goal_ratio_min": 0.95,
        },
    }
    d, o = report["default_digits"], report["overhead"]
    rw, rc = o["ratio_wall"], o["ratio_cpu"]
    md = "\n".join([
        "# Training benchmark",
        "",
        f"Machine: {os.cpu_count()} CPUs, torch {torch.__version__}, 1-min load average "
        f"{report['machine']['load_avg_1m']:.1f} at the end (other work shares the cores).",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| default digits run, wall time (s) | {d['wall_seconds']} (fit {d['train_seconds']}) | < 30 |",
        f"| default digits run, CPU time (s) | {d['cpu_seconds']} | |",
        f"| default digits run, test accuracy | {d['test_accuracy']:.4f} | >= 0.97 |",
        "",
        "| loop | steps/s (wall) | ratio | steps/CPU-s | ratio |",
        "|---|---|---|---|---|",
        f"| bare hand-written loop | {wall['bare']:.1f} | 1 | {cpu['bare']:.1f} | 1 |",
        f"| Trainer.fit, no callbacks | {wall['fit']:.1f} | {rw['fit']} | {cpu['fit']:.1f} | {rc['fit']} |",
        f"| Trainer.fit, last.pt each epoch + progress bar | {wall['fit_full']:.1f} | {rw['fit_full']} "
        f"| {cpu['fit_full']:.1f} | {rc['fit_full']} |",
        "",
        f"SmallCNN(width 32), digits train split (1257 images, 40 steps/epoch), batch 32, AdamW, "
        f"{o['epochs']} epochs per run, {o['threads']} torch thread(s), median of {o['repeats']} "
        "interleaved repeats. Goal: fit >= 0.95x the bare loop. CPU-time ratios are less disturbed by "
        "other processes on the shared cores than wall-time ratios.",
        "",
    ])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "training.json", json.dumps(report, indent=2).encode())
    atomic_write_bytes(args.out / "training.md", md.encode())
    print(md)


if __name__ == "__main__":
    main()

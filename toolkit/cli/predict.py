"""``tritonkit predict``: classify images (or held-out digits) through a running Triton server.

Where the preprocessing comes from, first found wins: ``--spec FILE`` (a spec .json, a repository
version's manifest.json or the exported .onnx), ``--repository DIR`` (the manifest of the model's
newest version there), the served config's ``tritonkit.model_spec`` parameter. ``--digits`` needs
none of them: the digits set defines its own transform. Labels always come from the server
(the output's label file, through Triton's classification extension).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from contract.errors import TritonkitError, UsageError
from contract.fileio import open_user_file
from toolkit.client.endpoint import DEFAULT_URLS, check_url
from toolkit.serve.state import admin_headers_for, recorded_url

# The suffixes of toolkit.client.images.IMAGE_FORMATS (what the client decodes).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _expand(paths: tuple[str, ...]) -> list[Path]:
    """Files as given; a folder stands for its image and .npy files, sorted.

    Nothing is opened here; every file is later opened as a regular file only, so a FIFO or device
    in a folder is refused by name instead of blocking the command.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in (*IMAGE_SUFFIXES, ".npy")))
        else:
            out.append(p)
    return out


def _load_npy(path: Path) -> Any:
    """One ``.npy`` model input, read only from a regular file whose size matches its header.

    A header may declare any shape in a few bytes; numpy would allocate it before reading, so the
    declared size is checked against the bytes the file holds first.
    """
    import numpy as np
    from numpy.lib import format as npformat

    hint = "save model inputs with numpy.save"
    fh = os.fdopen(open_user_file(path, UsageError, missing="no such file; check the path",
                                  hint="give .npy files or images"), "rb")
    with fh:
        try:
            version = npformat.read_magic(fh)
            read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
            held = os.fstat(fh.fileno()).st_size - fh.tell()
            if dtype.hasobject:
                raise UsageError(f"{path}: holds Python objects ({dtype}), not numbers; {hint}")
            if declared != held:
                raise UsageError(f"{path}: its header declares shape {list(shape)} {dtype} ({declared} bytes) "
                                 f"but the file holds {held}; {hint}")
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        except (OSError, ValueError, EOFError, SyntaxError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"{path}: cannot be read as a .npy array ({reason}); {hint}") from None


def _load_inputs(pred: Any, files: list[Path]) -> tuple[Any, list[str]]:
    """Images -> the training transform; ``.npy`` files are model inputs already (sent as they are)."""
    import numpy as np

    images = [f for f in files if f.suffix.lower() != ".npy"]
    arrays = [f for f in files if f.suffix.lower() == ".npy"]
    if images and arrays:
        raise UsageError("give either image files or .npy model inputs, not both in one run")
    if images:
        return pred.preprocess(images), [str(f) for f in images]
    parts, names = [], []
    for f in arrays:
        a = _load_npy(f)
        if a.ndim == 0:
            raise UsageError(f"{f}: holds a single number, not a model input; save the input array itself")
        a = a[None] if pred.max_batch_size > 0 and a.ndim == len(pred.inputs[0]["shape"]) - 1 else a
        parts.append(a)
        names.extend(f"{f}[{i}]" for i in range(len(a)))
    return np.concatenate([pred.validate(p) for p in parts]), names


def _check_model_name(model: str | None) -> str:
    """MODEL is required and comes first: a file path there means the name was left out."""
    if not model:
        raise UsageError("give MODEL, the served model's name, first: tritonkit predict MODEL [IMAGES...] "
                         "(e.g. tritonkit predict digits --digits 10)")
    if "/" in model or Path(model).suffix.lower() in (*IMAGE_SUFFIXES, ".npy") or Path(model).is_file():
        raise UsageError(f"MODEL {model!r} looks like a file, not a model name; give the model name first: "
                         f"tritonkit predict MODEL {model} (e.g. tritonkit predict digits {model})")
    return model


def _digits_count(text: str | None) -> int | None:
    """``--digits``: a count from 1 to the held-out digits there are, or ``all``; checked before connecting."""
    if text is None:
        return None
    from toolkit.client.predictions import heldout_count

    have = heldout_count()
    if text.strip().lower() == "all":
        return have
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--digits {text!r} is not a number; give a count from 1 to {have}, or all") from None
    if not 1 <= n <= have:
        raise UsageError(f"--digits {n}: the held-out digits test split holds {have}; give a count from 1 to "
                         f"{have}, or --digits all")
    return n


@click.command()
@click.argument("model", required=False)
@click.argument("images", nargs=-1)
@click.option("--digits", "digits_text", default=None, metavar="N|all",
              help="Classify N held-out test digits, or all of them (the default, 10, when no IMAGES are given).")
@click.option("--url", default=None, help="host:port (default: the server `tritonkit serve` recorded for "
              "--repository or model_repository, else the only one recorded for you, else 127.0.0.1:8001 gRPC, "
              ":8000 HTTP).")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True)
@click.option("--top-k", default=5, show_default=True, help="Labels shown per input.")
@click.option("--batch-size", default=32, show_default=True, help="Inputs per request (capped at max_batch_size).")
@click.option("--concurrency", default=4, show_default=True, help="Requests in flight.")
@click.option("--timeout", default=30.0, show_default=True,
              help="Seconds each call (connect, metadata, each inference) may take in all, retries included.")
@click.option("--spec", "spec_file", default=None, help="Model spec: a spec .json, manifest.json or .onnx file.")
@click.option("--repository", default=None, help="Read the spec from this tritonkit model repository.")
@click.option("--shared-memory", type=click.Choice(["off", "auto", "on"]), default="off", show_default=True,
              help="Send inputs through system shared memory (server on this host).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input, then a summary object.")
def predict(model: str | None, images: tuple[str, ...], digits_text: str | None, url: str | None, protocol: str,
            top_k: int, batch_size: int, concurrency: int, timeout: float, spec_file: str | None,
            repository: str | None, shared_memory: str, as_json: bool) -> None:
    """Classify IMAGES (files or folders) or held-out digits with MODEL (required: the served model's name).

    Prints, per input, the top-k labels with softmax scores and the request latency (a table, or
    JSON lines with --json), then a summary: count, accuracy (digits), latency percentiles and
    throughput.
    """
    import time

    from toolkit.client.predictions import load_spec, spec_from_repository, topk_from_logits
    from toolkit.client.predictor import Predictor

    model = _check_model_name(model)
    if images and digits_text is not None:
        raise UsageError("give IMAGES or --digits N, not both")
    if spec_file and repository:
        raise UsageError("give --spec or --repository, not both")
    if top_k < 1:
        raise UsageError(f"--top-k {top_k} must be at least 1")
    if url is not None:
        check_url(url)
    n_digits = _digits_count(digits_text)
    spec = load_spec(spec_file) if spec_file else spec_from_repository(repository, model) if repository else None

    # Without --url: the server `tritonkit serve` recorded (whatever its ports, from any folder). It
    # restricts its shared-memory and model-index APIs to its admin header; the header is found (and
    # sent) only when the URL is a verified recorded server's own address.
    try:
        url = url or recorded_url(protocol, repository)
        admin = admin_headers_for(url or DEFAULT_URLS[protocol])
    except TritonkitError:  # an unreadable run record: restricted calls then say what they miss
        admin = {}
    pred = Predictor(model, url=url, protocol=protocol, timeout=timeout, deadline=timeout, spec=spec,
                     batch_size=batch_size, concurrency=concurrency, shared_memory=shared_memory,
                     admin_headers=admin)
    try:
        truth = None
        if images:
            files = _expand(images)
            if not files:
                raise UsageError(f"no image files in {', '.join(images)}; give image files or folders holding them")
            x, names = _load_inputs(pred, files)
        else:
            from toolkit.client.predictions import heldout_samples
            from trainers.recipes import digits_model_spec

            x, truth = heldout_samples(pred.spec or digits_model_spec([str(i) for i in range(10)]),
                                      10 if n_digits is None else n_digits)
            names = [f"digit #{i}" for i in range(len(x))]
        x = pred.validate(x)
        labels = pred.labels
        pred.latency.reset()
        t0 = time.perf_counter()
        logits, row_ms = pred.predict_many_timed(x)
        seconds = time.perf_counter() - t0
    finally:
        pred.close()
    best = topk_from_logits(logits, labels, top_k) if len(logits) else []
    n_right = 0
    for i, (name, top) in enumerate(zip(names, best)):
        row: dict[str, Any] = {"label": top[0].label, "score": round(top[0].score, 6),
                               "topk": [{"label": t.label, "score": round(t.score, 6)} for t in top],
                               "latency_ms": round(float(row_ms[i]), 3)}
        if truth is not None:
            want = labels[int(truth[i])] if int(truth[i]) < len(labels) else str(int(truth[i]))
            row = {"index": i, **row, "truth": want, "correct": top[0].label == want}
            n_right += row["correct"]
        else:
            row = {"file": name, **row}
        if as_json:
            click.echo(json.dumps(row))
        else:
            shown = "  ".join(f"{t.label} {t.score:.4f}" for t in top)
            judged = "" if truth is None else f"  truth {row['truth']} {'right' if row['correct'] else 'WRONG'}"
            click.echo(f"{name:<28} {shown:<60} {row['latency_ms']:8.2f} ms{judged}")
    lat = pred.latency.percentiles()
    summary = {
        "model": model, "url": pred.url, "protocol": protocol, "n": len(best),
        "accuracy": (n_right / len(best) if best else float("nan")) if truth is not None else None,
        "latency_ms": lat, "seconds": round(seconds, 6),
        "throughput": round(len(best) / seconds, 2) if seconds > 0 else None,
        "batch_size": pred.batch_size, "concurrency": concurrency,
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    acc = "" if summary["accuracy"] is None else f"accuracy {summary['accuracy']:.4f}; "
    click.echo(f"{len(best)} inputs via {protocol}://{pred.url} in {seconds:.3f} s "
               f"({summary['throughput'] or 0:.0f}/s); {acc}request latency p50 {lat.get('p50', 0):.2f} ms "
               f"p99 {lat.get('p99', 0):.2f} ms")

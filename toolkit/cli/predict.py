"""``tritonkit predict``: classify images (or held-out digits) through a running Triton server.

Where the preprocessing comes from, first found wins: ``--spec FILE`` (a spec .json, a repository
version's manifest.json or the exported .onnx), ``--repository DIR`` (the manifest of the model's
newest version there), the served config's ``tritonkit.model_spec`` parameter. ``--digits`` needs
none of them: the digits set defines its own transform. Labels always come from the server
(the output's label file, through Triton's classification extension).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from contract.errors import TritonkitError, UsageError
from toolkit.client.endpoint import DEFAULT_URLS, check_url
from toolkit.client.inputs import (
    IMAGE_SUFFIXES,
    encoded_batch,
    expand,
    front_door,
    load_npy,
    raw_pixels,
    readable_images,
)
from toolkit.serve.state import admin_headers_for, recorded_url


def _list_files(images: tuple[str, ...], warn: Any) -> tuple[list[Path], list[Path], list[tuple[Path, str]]]:
    """(readable images, .npy files, skipped images), checked before anything connects: a corrupt
    image named here is refused; one found in a folder is skipped with a warning."""
    listed = expand(images)
    if not listed:
        raise UsageError(f"no image files in {', '.join(images)}; give image files or folders holding them")
    pictures = [f for f in listed if f.path.suffix.lower() != ".npy"]
    arrays = [f.path for f in listed if f.path.suffix.lower() == ".npy"]
    if pictures and arrays:
        raise UsageError("give either image files or .npy model inputs, not both in one run")
    if not pictures:
        return [], arrays, []
    good, skipped = readable_images(pictures)
    for path, reason in skipped:
        warn(f"warning: skipped {path}: {reason}")
    return good, [], skipped


def _load_inputs(pred: Any, good: list[Path], arrays: list[Path]) -> tuple[Any, list[str]]:
    """Images -> what the model takes (the training transform here, or encoded bytes for an image front
    door); ``.npy`` files are model inputs already. Returns the batch and the row names."""
    import numpy as np

    if good:
        door = front_door(pred.inputs, pred.max_batch_size)
        if door.encoded:
            pred.select_input(door.encoded)
            return encoded_batch(good), [str(f) for f in good]
        return pred.preprocess(good), [str(f) for f in good]
    parts, names = [], []
    for f in arrays:
        a = load_npy(f)
        if a.ndim == 0:
            raise UsageError(f"{f}: holds a single number, not a model input; save the input array itself")
        a = a[None] if pred.max_batch_size > 0 and a.ndim == len(pred.inputs[0]["shape"]) - 1 else a
        parts.append(a)
        names.extend(f"{f}[{i}]" for i in range(len(a)))
    return np.concatenate([pred.validate(p) for p in parts]), names


def _heldout(pred: Any, n: int) -> tuple[Any, Any]:
    """``n`` held-out digits as the model takes them: raw UINT8 pixels for an image front door (it
    preprocesses itself), else normalized with the served spec (or the digits set's own transform)."""
    from toolkit.client.predictions import heldout_raw, heldout_samples
    from trainers.recipes import digits_model_spec

    door = front_door(pred.inputs, pred.max_batch_size)
    if door.raw:
        pred.select_input(door.raw)
        raw, truth = heldout_raw(n)
        return raw_pixels(raw), truth
    spec = pred.spec or digits_model_spec([str(i) for i in range(10)])
    digits = digits_model_spec([str(i) for i in range(10)])
    if tuple(spec.input.shape) != tuple(digits.input.shape):
        raise UsageError(f"--digits sends the embedded {'x'.join(map(str, digits.input.shape))} digits, but model "
                         f"{pred.model!r} takes [{', '.join(map(str, spec.input.shape))}]; give images or .npy "
                         "files instead")
    return heldout_samples(spec, n)


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
    good, arrays, skipped = _list_files(images, lambda line: click.echo(line, err=True)) if images else ([], [], [])
    pred = Predictor(model, url=url, protocol=protocol, timeout=timeout, deadline=timeout, spec=spec,
                     batch_size=batch_size, concurrency=concurrency, shared_memory=shared_memory,
                     admin_headers=admin)
    try:
        truth = None
        door = front_door(pred.inputs, pred.max_batch_size)
        if door.raw:  # labels come from a classification request on a raw (all-zero) image
            pred.select_input(door.raw)
        labels = pred.labels
        if images:
            x, names = _load_inputs(pred, good, arrays)
        else:
            x, truth = _heldout(pred, 10 if n_digits is None else n_digits)
            names = [f"digit #{i}" for i in range(len(x))]
        x = pred.validate(x)
        spans = pred.chunks(len(x), None)
        pred.latency.reset()
        t0 = time.perf_counter()
        logits, row_ms = pred.predict_many_timed(x)
        seconds = time.perf_counter() - t0
    finally:
        pred.close()
    best = topk_from_logits(logits, labels, top_k) if len(logits) else []
    request_of = [k for k, (s, e) in enumerate(spans, 1) for _ in range(s, e)]
    if not as_json:
        judged = "  truth" if truth is not None else ""
        click.echo(f"{'input':<28} {f'top {top_k} (label score)':<60} {'request':>13} {'its latency':>11}{judged}")
    n_right = 0
    for i, (name, top) in enumerate(zip(names, best)):
        row: dict[str, Any] = {"label": top[0].label, "score": round(top[0].score, 6),
                               "topk": [{"label": t.label, "score": round(t.score, 6)} for t in top],
                               "request": request_of[i], "latency_ms": round(float(row_ms[i]), 3)}
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
            rows = spans[request_of[i] - 1][1] - spans[request_of[i] - 1][0]
            request = f"#{request_of[i]} ({rows} in)"
            judged = "" if truth is None else f"  {row['truth']} {'right' if row['correct'] else 'WRONG'}"
            click.echo(f"{name:<28} {shown:<60} {request:>13} {row['latency_ms']:8.2f} ms{judged}")
    lat = pred.latency.percentiles()
    summary = {
        "model": model, "url": pred.url, "protocol": protocol, "n": len(best),
        "accuracy": (n_right / len(best) if best else float("nan")) if truth is not None else None,
        "latency_ms": lat, "seconds": round(seconds, 6),
        "throughput": round(len(best) / seconds, 2) if seconds > 0 else None,
        "batch_size": pred.batch_size, "concurrency": concurrency, "requests": len(spans),
        "skipped": [{"file": str(p), "reason": r} for p, r in skipped],
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    acc = "" if summary["accuracy"] is None else f"accuracy {summary['accuracy']:.4f}; "
    left_out = f"; skipped {len(skipped)} unreadable image(s)" if skipped else ""
    click.echo(f"{len(best)} inputs in {len(spans)} request(s) via {protocol}://{pred.url} in {seconds:.3f} s "
               f"({summary['throughput'] or 0:.0f}/s); {acc}request latency p50 {lat.get('p50', 0):.2f} ms "
               f"p99 {lat.get('p99', 0):.2f} ms (a row shows the request that carried it; --batch-size 1 times "
               f"each input alone){left_out}")

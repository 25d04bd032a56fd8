"""``tritonkit predict``: classify images through a running Triton server."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("model", default="digits")
@click.option("--digits", "n_digits", default=10, show_default=True, help="Classify N held-out digits.")
@click.option("--url", default=None, help="host:port (default 127.0.0.1:8001 gRPC, :8000 HTTP).")
@click.option("--protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds for every call.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def predict(model: str, n_digits: int, url: str | None, protocol: str, batch_size: int, timeout: float,
            as_json: bool) -> None:
    """Classify held-out digits with MODEL served by Triton: label, score, right or wrong."""
    from toolkit.client import Predictor
    from toolkit.predictions import accuracy, classify, heldout_digits
    from toolkit.spec import ModelSpec
    from trainers.recipes import digits_model_spec

    pred = Predictor(model, url=url, protocol=protocol, timeout=timeout)
    labels = [str(i) for i in range(10)]
    spec: ModelSpec = digits_model_spec(labels)
    x, y = heldout_digits(spec, n_digits)
    rows = classify(pred, x, labels, y, batch_size=batch_size)
    for r in rows:
        if as_json:
            click.echo(json.dumps({"index": r.index, "label": r.label, "score": round(r.score, 6),
                                   "truth": r.truth, "correct": r.correct}))
        else:
            click.echo(f"digit #{r.index:<4} predicted {r.label}  score {r.score:.4f}  truth {r.truth}  "
                       f"{'right' if r.correct else 'WRONG'}")
    lat = pred.latency.percentiles()
    summary = {"model": model, "n": len(rows), "accuracy": accuracy(rows), "latency_ms": lat, "url": pred.url}
    click.echo(json.dumps(summary) if as_json else
               f"accuracy {summary['accuracy']:.4f} over {len(rows)} held-out digits via {protocol}://{pred.url}; "
               f"latency p50 {lat.get('p50', 0):.2f} ms p99 {lat.get('p99', 0):.2f} ms")

"""``tritonkit image``: build and show the CPU stand-in for NVIDIA's Triton container image."""

from __future__ import annotations

import json
from typing import Any

import click

from toolkit.cli.options import json_option


def _size(num: int) -> str:
    return f"{num / 1e6:.0f} MB" if num < 1e9 else f"{num / 1e9:.2f} GB"


@click.group()
def image() -> None:
    """The CPU stand-in for NVIDIA's Triton image (podman; for tests and CPU deployments).

    It has the NGC layout tritonkit relies on (/opt/tritonserver, the python backend, tritonkit's
    Python-based onnxruntime backend), runs as the non-root user triton-server and is tagged
    localhost/tritonkit/tritonserver-cpu:<triton version>-<content hash>. On a GPU machine, pass
    NVIDIA's image to `tritonkit serve --runtime docker --image nvcr.io/nvidia/tritonserver:<release>-py3`.
    """


@image.command()
@click.option("--force", is_flag=True, help="Build again even when the image with this content hash exists.")
@json_option("Print one JSON object (tag, built, seconds, steps, size) instead of the summary line.")
def build(force: bool, as_json: bool) -> None:
    """Build the stand-in image unless it exists (needs root, podman and debootstrap; minutes the first time).

    The Debian root filesystem and the Python packages are cached under <tritonkit home>/image, so a
    rebuild after a backend change takes seconds. Progress goes to stderr.
    """
    from toolkit.serve.image import build_image, image_info

    result = build_image(force=force, progress=lambda line: click.echo(line, err=True))
    info = image_info(result.tag) or {}
    if as_json:
        click.echo(json.dumps({"tag": result.tag, "built": result.built, "seconds": round(result.seconds, 1),
                               "steps": result.steps, "size": info.get("size"), "id": info.get("id")}))
        return
    size = f" ({_size(info['size'])})" if info.get("size") else ""
    if result.built:
        click.echo(f"built {result.tag}{size} in {result.seconds:.0f}s")
    else:
        click.echo(f"{result.tag}{size} exists; reused (`tritonkit image build --force` builds it again)")


@image.command(name="show")
@json_option("Print one JSON object: tag, exists, size, id, triton_version, inputs, engine_problem.")
def show(as_json: bool) -> None:
    """Say which tag this tritonkit's stand-in image has, whether it is built, and its size."""
    from toolkit.serve.image import engine_problem, image_info, plan_image

    plan = plan_image()
    problem = engine_problem()
    info = None if problem else image_info(plan.tag)
    out: dict[str, Any] = {"tag": plan.tag, "exists": info is not None, "triton_version": plan.triton_version,
                           "content_hash": plan.digest, "inputs": plan.inputs, "engine_problem": problem}
    if info:
        out.update(size=info["size"], id=info["id"], created=info["created"], user=info["user"])
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"image:   {plan.tag}")
    if info:
        click.echo(f"status:  built ({_size(info['size'])}, id {info['id']}, user {info['user']})")
    elif problem:
        click.echo(f"status:  cannot check ({problem})")
    else:
        click.echo("status:  not built (`tritonkit image build` or `make image`)")
    for key, value in plan.inputs.items():
        click.echo(f"  {key}: {value}")


image.add_command(show, name="inspect")

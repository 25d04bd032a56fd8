"""The server side of a profile: a client for it, the served config, the input shapes to send.

perf_analyzer needs concrete shapes for variable dims; they come from ``--shape`` or from the
served config's warm-up, and a model that is not ready is named with the models that are.
"""

from __future__ import annotations

import json
from typing import Any

from contract.errors import ProfileError, ServerError, TritonkitError, UsageError
from contract.spec import METADATA_SPEC_KEY, ModelSpec
from toolkit.repository.options import IMAGE_INPUTS_PARAMETER


def server_client(url: str, protocol: str) -> Any:
    """A tritonclient ``InferenceServerClient`` for ``protocol`` (grpc or http); the caller closes it."""
    if protocol == "grpc":
        import tritonclient.grpc as mod
    elif protocol == "http":
        import tritonclient.http as mod
    else:
        raise UsageError(f"protocol {protocol!r} is not supported; use grpc or http")
    return mod.InferenceServerClient(url)


def model_config(url: str, model: str, *, protocol: str = "grpc", version: str = "",
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The served config of ``model`` as a dict (Triton's JSON form).

    Raises:
        ServerError: nothing answers at ``url``.
        ProfileError: the model (version) is not ready there; names the ready models.
    """
    from tritonclient.utils import InferenceServerException

    client = server_client(url, protocol)
    try:
        try:
            live = client.is_server_live(headers=headers)
        except Exception:  # noqa: BLE001 - connection errors come in many types
            live = False
        if not live:
            raise ServerError(
                f"no Triton server answers at {protocol}://{url}; start one with 'tritonkit serve' or pass --url"
            )
        try:
            ready = client.is_model_ready(model, version, headers=headers)
        except InferenceServerException:
            ready = False
        if not ready:
            try:
                index = client.get_model_repository_index(headers=headers)
                if protocol == "grpc":
                    index = [{"name": m.name, "state": m.state} for m in index.models]
                names = sorted({m["name"] for m in index if m.get("state") == "READY"})
                have = ", ".join(names) or "none"
            except InferenceServerException:  # restricted: the statistics API lists the loaded models
                from toolkit.client.predictor import loaded_models

                try:
                    stats = client.get_inference_statistics(**({"as_json": True} if protocol == "grpc" else {}))
                    have = ", ".join(sorted({m["name"] for m in loaded_models(stats)})) or "none"
                except InferenceServerException:
                    have = "unknown (model index and statistics not allowed)"
            what = f"model {model!r}" + (f" version {version}" if version else "")
            raise ProfileError(f"{what} is not ready at {url}; ready models: {have}")
        cfg = client.get_model_config(model, version, headers=headers, **({"as_json": True} if protocol == "grpc"
                                                                           else {}))
    finally:
        client.close()
    return cfg.get("config", cfg) if protocol == "grpc" else cfg


def shapes_for(config: dict[str, Any], given: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """Concrete shapes (without batch) for inputs with variable dims: ``given``, else the config's warm-up.

    Raises:
        UsageError: a variable-dim input has neither; says which ``--shape`` is needed.
    """
    given = dict(given or {})
    inputs = config.get("input", [])
    names = [i["name"] for i in inputs]
    unknown = [n for n in given if n not in names]
    if unknown:
        raise UsageError(f"--shape names input {unknown[0]!r}, which model {config.get('name')!r} lacks; "
                         f"its inputs: {', '.join(names)}")
    warm: dict[str, list[int]] = {}
    for w in config.get("model_warmup", []):
        for name, spec in (w.get("inputs") or {}).items():
            dims = [int(d) for d in spec.get("dims", [])]
            if dims and all(d > 0 for d in dims):
                warm.setdefault(name, dims)
    shapes: dict[str, list[int]] = {}
    for inp in inputs:
        dims = [int(d) for d in inp.get("dims", [])]
        if inp["name"] in given:
            shapes[inp["name"]] = list(given[inp["name"]])
        elif any(d < 0 for d in dims):
            if inp["name"] not in warm:
                example = ",".join("H" if d < 0 else str(d) for d in dims)
                raise UsageError(
                    f"model {config.get('name')!r} input {inp['name']!r} has variable dims "
                    f"[{','.join(str(d) for d in dims)}] and its config has no warm-up shape; pass "
                    f"--shape {inp['name']}:{example} (dims without the batch dimension)"
                )
            shapes[inp["name"]] = warm[inp["name"]]
    return shapes


def parse_shape(text: str) -> tuple[str, list[int]]:
    """``name:1,64,64`` -> (``name``, [1, 64, 64])."""
    name, _, dims = text.rpartition(":")
    try:
        values = [int(d) for d in dims.split(",")]
        if not name or any(v <= 0 for v in values):
            raise ValueError
    except ValueError:
        raise UsageError(f"--shape {text!r} is malformed; use NAME:D1,D2,... with positive dims, "
                         "e.g. input:3,64,64") from None
    return name, values


def chosen_inputs(config: dict[str, Any], given: dict[str, list[int]] | None = None) -> dict[str, list[int]] | None:
    """For a model whose inputs are all optional (the image ensemble: IMAGE or IMAGE_BYTES), the one
    input to send and its shape; None when every input is to be sent as usual.

    perf_analyzer sends every input, which such a model refuses ("send exactly one of ..."). The
    input named by ``--shape`` wins, else the first numeric one (random bytes are no valid encoded
    image); its variable dims come from ``--shape``, the warm-up, the classifier's own input size
    (:func:`image_shape`), or 1 (any size is accepted).
    """
    inputs = config.get("input", [])
    if len(inputs) < 2 or not all(i.get("optional") for i in inputs):
        return None
    given = dict(given or {})
    names = [i["name"] for i in inputs]
    pick = next((i for i in inputs if i["name"] in given), None)
    pick = pick or next((i for i in inputs if i.get("data_type") != "TYPE_STRING"), inputs[0])
    try:
        dims = shapes_for({**config, "input": [pick]}, {k: v for k, v in given.items() if k == pick["name"]})
    except UsageError:
        dims = {}
    shape = (dims.get(pick["name"]) or image_shape(config, pick["name"])
             or [d if d > 0 else 1 for d in (int(x) for x in pick.get("dims", []))])
    unknown = [n for n in given if n not in names]
    if unknown:
        raise UsageError(f"--shape names input {unknown[0]!r}, which model {config.get('name')!r} lacks; "
                         f"its inputs: {', '.join(names)}")
    return {pick["name"]: shape}


def image_shape(config: dict[str, Any], name: str) -> list[int] | None:
    """``[H, W, C]`` of the classifier behind an image ensemble's raw input ``name``, from the
    description and model spec its config carries (what a real client sends); None without them."""
    params = config.get("parameters") or {}
    try:
        raw = json.loads(params[IMAGE_INPUTS_PARAMETER]["string_value"])["raw"]
        spec = ModelSpec.from_json(params[METADATA_SPEC_KEY]["string_value"])
        c, h, w = spec.inputs[0].shape[-3:]
    except (KeyError, TypeError, ValueError, TritonkitError):
        return None
    if raw.get("name") != name or raw.get("layout") != "HWC" or min(c, h, w) < 1:
        return None
    return [h, w, c]

"""Hostile servers and hostile inputs on the client side (issue 12 items 4, 6, 7, 9, 10, 15, 16, 23, 25).

Every attack is performed for real: fake peers are real sockets in threads (a server that trickles
one byte a second, one that answers garbage, one that lies about its metadata: these must be fake,
they are the attackers), FIFOs are real FIFOs, images are real encodings, and the image budgets
are checked against the real served ensemble (``triton_server``: digits, digits_preprocess,
digits_image). Each refusal is one line, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.client.fake_peers import BAD_INFER, lying_grpc_triton, lying_http_triton, socket_peer
from tests.reliability.loadgen import tree_pids

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")
SLACK_S = 7.0  # process start-up, imports and a loaded 2-core machine, on top of --timeout


# -- helpers -----------------------------------------------------------------------------------------
def _predict(*args: str, timeout: float = 90) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the installed ``tritonkit predict``; (result, seconds). The timeout only guards the test."""
    t0 = time.monotonic()
    proc = subprocess.run([TRITONKIT, "predict", *args], capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


# Reaps its child with wait4 and prints the child's peak RSS (KiB) last. A small process in between,
# because a child forked straight from pytest would report pytest's own RSS as its peak.
_PEAK = ("import os, subprocess, sys; c = subprocess.Popen(sys.argv[1:]); _, s, r = os.wait4(c.pid, 0); "
         "print(r.ru_maxrss); sys.exit(os.waitstatus_to_exitcode(s))")


def _predict_peak_rss(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``tritonkit predict``: (result, its own peak RSS in MiB)."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, TRITONKIT, "predict", *args], capture_output=True,
                          text=True, timeout=90)
    *out, peak_kb = proc.stdout.strip().splitlines()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "\n".join(out), proc.stderr), int(peak_kb) / 1024


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a refused command (a traceback fails the test at once)."""
    if "Traceback" in proc.stderr + proc.stdout:
        pytest.fail(f"traceback:\n{proc.stderr}")
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode != 0, proc.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _png(w: int, h: int, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares ``w`` x ``h`` grey pixels and carries almost no data (a bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _encoded(fmt: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, format=fmt)
    return buf.getvalue()


def _stub_pid(server, model: str) -> int:
    """The python stub serving ``model`` (its cmdline names the model's folder)."""
    for pid in tree_pids(server.pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"triton_python_backend_stub" in cmd and f"/{model}/".encode() in cmd:
            return pid
    raise AssertionError(f"no python stub for {model}")


def _rss_mb(pid: int) -> dict[str, float]:
    """Private (``RssAnon``) and shared (``RssShmem``: the stub's pool, where Triton puts inputs) RSS in MiB."""
    return {line.split(":")[0]: int(line.split()[1]) / 1024
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith(("RssAnon:", "RssShmem:"))}


# -- item 4: shared memory through a server that restricts it ----------------------------------------
@pytest.mark.server
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_shared_memory_predict_works_with_admin_header_and_fails_in_one_line_without(
        triton_server, protocol: str) -> None:
    from contract.errors import ClientError
    from toolkit.client.predictions import heldout_samples
    from toolkit.client.predictor import Predictor
    from trainers.recipes import digits_model_spec

    x, _ = heldout_samples(digits_model_spec([str(i) for i in range(10)]), 8)
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    with Predictor("digits", url, protocol) as plain:
        want = plain.predict(x)
    with Predictor("digits", url, protocol, shared_memory="on", admin_headers=triton_server.admin_headers) as pred:
        assert np.array_equal(pred.predict(x), want)
    for headers in (None, {"tritonkit-admin-key": "0" * 32}):  # none, and a guessed key
        with Predictor("digits", url, protocol, shared_memory="on", admin_headers=headers) as pred:
            with pytest.raises(ClientError) as err:
                pred.predict(x)
        msg = str(err.value)
        assert "\n" not in msg and "refused the shared-memory registration" in msg and "admin header" in msg, msg
    print(f"\n{msg}")


# -- items 6, 7, 23: the served image ensemble's budgets and formats -----------------------------------
def _infer_bytes(server, blobs: list[bytes], protocol: str = "http") -> tuple[str, str]:
    """Send encoded images to digits_image; ("200", "") or (status, one-line error)."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    mod = httpclient if protocol == "http" else grpcclient
    client = mod.InferenceServerClient(server.http_url if protocol == "http" else server.grpc_url,
                                       **({"network_timeout": 120.0} if protocol == "http" else {}))
    inp = mod.InferInput("IMAGE_BYTES", [len(blobs), 1], "BYTES")
    inp.set_data_from_numpy(np.array([[b] for b in blobs], dtype=object))
    try:
        out = client.infer("digits_image", [inp]).as_numpy("logits")
        assert out.shape == (len(blobs), 10)
        return "200", ""
    except InferenceServerException as exc:
        text = exc.message() or ""
        assert "Traceback" not in text, text
        assert "\n" not in text.strip(), text
        return str(exc.status()), text
    finally:
        client.close()


def _infer_raw(server, array: np.ndarray) -> tuple[str, str]:
    """Send a raw UINT8 [N, H, W, C] batch to digits_image over gRPC; ("200", "") or (status, error)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("IMAGE", list(array.shape), "UINT8")
    inp.set_data_from_numpy(array)
    try:
        out = client.infer("digits_image", [inp], client_timeout=120).as_numpy("logits")
        assert out.shape == (array.shape[0], 10)
        return "200", ""
    except InferenceServerException as exc:
        text = exc.message() or ""
        assert "Traceback" not in text, text
        return str(exc.status()), text
    finally:
        client.close()


@pytest.mark.server
def test_image_bytes_are_refused_with_400_naming_the_budget_when_declared_pixels_exceed_it(triton_server) -> None:
    big = _png(4096, 4096)  # 16 KiB of PNG, 16.7 Mpixel decoded: the attack's image
    t0 = time.monotonic()
    status, text = _infer_bytes(triton_server, [big] * 32)  # the attack: 32 of them in one request
    refused_s = time.monotonic() - t0
    assert status == "400" and "allowed per request" in text and str(4 * 4096 * 4096) in text, text
    status, text = _infer_bytes(triton_server, [big] * 5)
    assert status == "400" and "allowed per request" in text, text
    status, text = _infer_bytes(triton_server, [_png(4097, 4096)])
    assert status == "400" and "4097x4096" in text and "allowed per image" in text, text
    status, text = _infer_bytes(triton_server, [png_header_only(100000, 100000)])
    assert status == "400" and "allowed per image" in text, text
    status, text = _infer_bytes(triton_server, [png_header_only(100000, 100000)], protocol="grpc")
    assert status == "StatusCode.INVALID_ARGUMENT" and "allowed per image" in text, text
    # At the budget: four full-size images in one request, and a 12 Mpixel phone-sized JPEG, pass.
    t0 = time.monotonic()
    assert _infer_bytes(triton_server, [big] * 4) == ("200", "")
    at_budget_s = time.monotonic() - t0
    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (3024, 4032, 3), np.uint8)).save(photo, "JPEG")
    assert _infer_bytes(triton_server, [photo.getvalue()]) == ("200", "")
    # and a small request right after is answered (nothing queued behind a decode of the attack)
    t0 = time.monotonic()
    assert _infer_bytes(triton_server, [_png(8, 8)]) == ("200", "")
    print(f"\n32 x 4096^2 refused in {refused_s:.2f} s; 4 x 4096^2 decoded in {at_budget_s:.2f} s; "
          f"8x8 next in {time.monotonic() - t0:.3f} s")


@pytest.mark.server
def test_raw_image_is_refused_with_400_before_it_is_copied_when_shape_exceeds_the_budget(triton_server) -> None:
    stub = _stub_pid(triton_server, "digits_preprocess")
    assert _infer_raw(triton_server, np.zeros((1, 8, 8, 1), np.uint8)) == ("200", "")
    rss_before = _rss_mb(stub)
    status, text = _infer_raw(triton_server, np.zeros((1, 6000, 6000, 3), np.uint8))  # the attack: 108 MB
    rss_after = _rss_mb(stub)
    assert status == "StatusCode.INVALID_ARGUMENT" and "6000x6000" in text and "allowed per image" in text, text
    status, text = _infer_raw(triton_server, np.zeros((5, 4096, 4096, 1), np.uint8))
    assert status == "StatusCode.INVALID_ARGUMENT" and "allowed per request" in text, text
    status, text = _infer_raw(triton_server, np.zeros((1, 4097, 4096, 1), np.uint8))
    assert status == "StatusCode.INVALID_ARGUMENT" and "allowed per image" in text, text
    assert _infer_raw(triton_server, np.zeros((1, 4096, 4096, 1), np.uint8)) == ("200", "")  # at the image budget
    before, after = rss_before, rss_after
    print(f"\npreprocess stub on the refused 6000x6000x3 image: private RSS {before['RssAnon']:.0f} -> "
          f"{after['RssAnon']:.0f} MiB, shared pool {before['RssShmem']:.0f} -> {after['RssShmem']:.0f} MiB")
    # Before the fix the stub converted it to float32 (432 MB) and grew by ~640 MB. Now nothing is
    # copied: only Triton's own copy of the request sits in the shared pool.
    grew = rss_after["RssAnon"] - rss_before["RssAnon"]
    assert grew < 32, f"the stub's private memory grew {grew:.0f} MiB on a refused image"


@pytest.mark.server
@pytest.mark.parametrize("fmt", ["BMP", "GIF", "TIFF", "WEBP", "PPM", "ICO"])
def test_image_bytes_are_refused_with_400_naming_png_and_jpeg_when_format_is_another(triton_server, fmt) -> None:
    status, text = _infer_bytes(triton_server, [_encoded(fmt)])
    assert status == "400" and "not a PNG/JPEG image" in text and "only PNG and JPEG" in text, text


@pytest.mark.server
def test_image_bytes_in_png_and_jpeg_are_classified(triton_server) -> None:
    assert _infer_bytes(triton_server, [_encoded("PNG"), _encoded("JPEG")]) == ("200", "")


# -- item 9: --timeout is a total deadline ------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_predict_exits_in_one_line_within_timeout_when_server_trickles_bytes(protocol: str) -> None:
    with socket_peer("trickle") as url:
        proc, seconds = _predict("digits", "--url", url, "--protocol", protocol, "--timeout", "3")
    line = _one_line(proc)
    print(f"\n{seconds:.1f} s: {line}")
    assert "timed out after 3 s" in line and url in line
    assert seconds < 3 + SLACK_S


def test_predict_exits_in_one_line_within_timeout_when_inference_answer_trickles(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    with lying_http_triton("trickle-infer") as url:
        proc, seconds = _predict("digits", str(tmp_path / "x.npy"), "--url", url, "--protocol", "http",
                                 "--timeout", "3")
    line = _one_line(proc)
    assert "an inference request" in line and "timed out after 3 s" in line, line
    assert seconds < 3 + SLACK_S


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_predictor_attempts_are_bounded_when_server_trickles_or_stalls(protocol: str) -> None:
    from contract.errors import ClientError
    from toolkit.client.predictor import Predictor, RetryPolicy

    peer = socket_peer("trickle") if protocol == "http" else lying_grpc_triton("slow-infer")
    with peer as url:
        t0 = time.monotonic()
        with pytest.raises(ClientError, match="timed out after 0.5 s") as err:
            if protocol == "http":
                Predictor("digits", url, protocol, timeout=0.5, retry=RetryPolicy(attempts=2, initial_s=0.01))
            else:
                with Predictor("digits", url, protocol, timeout=0.5, retry=RetryPolicy(attempts=2, initial_s=0.01),
                               deadline=0.8) as pred:
                    pred.predict(np.zeros((1, 1, 8, 8), np.float32))
        seconds = time.monotonic() - t0
    assert "\n" not in str(err.value)
    # http: two whole attempts of 0.5 s; grpc: the 0.8 s deadline leaves one attempt and 0.3 s
    assert seconds < (1.0 if protocol == "grpc" else 1.5) + 2.0, seconds


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_async_predictor_fails_in_one_line_within_deadline_when_server_trickles(protocol: str) -> None:
    import asyncio

    from contract.errors import ClientError
    from toolkit.client.predictor import AsyncPredictor

    async def connect(url: str) -> None:
        await AsyncPredictor.create("digits", url, protocol, timeout=0.5, deadline=1.0)

    with socket_peer("trickle") as url:
        t0 = time.monotonic()
        with pytest.raises(ClientError, match="timed out after 0.5 s") as err:
            asyncio.run(connect(url))
        seconds = time.monotonic() - t0
    assert "\n" not in str(err.value) and seconds < 1.0 + 2.0, seconds


# -- items 10, 15: hostile image files -----------------------------------------------------------------
@pytest.mark.server
def test_predict_refuses_fifo_named_and_skips_one_inside_a_folder_without_blocking(
        triton_server, tmp_path: Path) -> None:
    """A FIFO named on the command line is refused in one line; one inside a folder is skipped with a
    warning naming it (a folder is not lost to one bad entry). Neither is ever opened for reading."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(8, 8))
    os.mkfifo(folder / "b.png")
    os.mkfifo(tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "pipe.npy")
    os.mkfifo(tmp_path / "spec.json")
    url = ["--url", triton_server.grpc_url]
    proc, _ = _predict("digits", str(folder), *url, timeout=60)  # a hang would raise TimeoutExpired
    assert proc.returncode == 0, proc.stderr
    assert f"{folder / 'b.png'} is a FIFO, not a regular file" in proc.stderr and "a.png" in proc.stdout
    assert "skipped 1 unreadable image" in proc.stdout
    cases = {
        "image": ([str(tmp_path / "pipe.png"), *url], tmp_path / "pipe.png"),
        "npy": ([str(tmp_path / "pipe.npy"), *url], tmp_path / "pipe.npy"),
        "spec": ([str(folder / "a.png"), "--spec", str(tmp_path / "spec.json"), *url], tmp_path / "spec.json"),
    }
    for kind, (args, fifo) in cases.items():
        proc, seconds = _predict("digits", *args, timeout=60)  # a hang would raise TimeoutExpired
        line = _one_line(proc)
        assert f"{fifo} is a FIFO, not a regular file" in line, f"{kind}: {line}"
        assert "does not exist" not in line


@pytest.mark.server
def test_predict_refuses_image_in_one_line_with_bounded_memory_when_header_declares_huge_size(
        triton_server, tmp_path: Path) -> None:
    files = {
        "png-bomb-1e10": png_header_only(100000, 100000),
        "png-over-pillow-warning-1e8": png_header_only(10000, 10000),
        "png-just-over-budget": png_header_only(4097, 4096),
        "pgm-60000^2": b"P5\n60000 60000\n255\n" + b"\0" * 64,
    }
    for name, data in files.items():
        path = tmp_path / f"{name}.{'pgm' if name.startswith('pgm') else 'png'}"
        path.write_bytes(data)
        proc, peak_mb = _predict_peak_rss("digits", str(path), "--url", triton_server.grpc_url)
        line = _one_line(proc)
        assert str(path) in line and "allowed per image" in line, f"{name}: {line}"
        assert peak_mb < 1024, f"{name}: the client peaked at {peak_mb:.0f} MiB"


@pytest.mark.server
def test_predict_refuses_npy_in_one_line_when_header_declares_more_than_file_holds(triton_server, tmp_path) -> None:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 1, 8, 8000), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    path = tmp_path / "huge.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64)
    proc, _ = _predict("digits", str(path), "--url", triton_server.grpc_url)
    line = _one_line(proc)
    assert str(path) in line and "declares shape [100000, 1, 8, 8000]" in line and "holds 64" in line, line


# -- items 16, 25: servers that lie or speak something else ---------------------------------------------
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_predict_names_server_and_missing_field_when_metadata_lacks_datatype(protocol: str) -> None:
    fake = lying_http_triton("no-datatype") if protocol == "http" else lying_grpc_triton("no-datatype")
    with fake as url:
        proc, _ = _predict("digits", "--url", url, "--protocol", protocol, "--timeout", "10")
    line = _one_line(proc)
    assert f"{protocol}://{url}" in line and "inputs[0] has no 'datatype'" in line, line
    assert "did not answer as Triton" in line


@pytest.mark.parametrize(("protocol", "peer"), [("http", "garbage"), ("grpc", "garbage"), ("http", "not-json")])
def test_predict_says_server_is_not_triton_in_one_line_when_it_answers_garbage(protocol: str, peer: str) -> None:
    fake = socket_peer("garbage") if peer == "garbage" else lying_http_triton("not-json")
    with fake as url:
        proc, _ = _predict("digits", "--url", url, "--protocol", protocol, "--timeout", "10")
    line = _one_line(proc)
    name = "HTTP" if protocol == "http" else "gRPC"
    assert f"the server at {protocol}://{url} did not answer as Triton's {name} endpoint does" in line, line
    assert "('Expected HTTP/', 8)" not in line and "codec" not in line
    print(f"\n{line}")


@pytest.mark.server
def test_predict_message_gives_a_cli_hint_not_a_python_one_when_spec_is_not_an_image_model(
        triton_server, tmp_path: Path) -> None:
    from trainers.recipes import digits_model_spec

    spec = digits_model_spec([str(i) for i in range(10)]).to_dict()
    spec["inputs"][0]["shape"] = [64]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "a.png").write_bytes(_png(8, 8))
    proc, _ = _predict("digits", str(tmp_path / "a.png"), "--spec", str(tmp_path / "spec.json"),
                       "--url", triton_server.grpc_url)
    line = _one_line(proc)
    assert "Predictor" not in line and ".predict" not in line and "ready model inputs" in line, line


@pytest.mark.parametrize("url", ["127.0.0.1:99999", "::::", "127.0.0.1:0", "host", "a b:1", "127.0.0.1:80/v2"])
def test_predict_refuses_url_in_one_line_when_it_is_not_host_and_port(url: str) -> None:
    # gRPC would otherwise wrap port 99999 silently onto 34463 and talk to whatever listens there.
    line = _one_line(_predict("digits", "--url", url, "--timeout", "3")[0])
    assert "is not host:port" in line and "1..65535" in line, line


def test_predict_says_protocol_is_wrong_when_grpc_is_sent_to_an_http_server() -> None:
    with lying_http_triton("no-datatype") as url:
        line = _one_line(_predict("digits", "--url", url, "--protocol", "grpc", "--timeout", "5")[0])
    assert f"the server at grpc://{url} did not answer as Triton's gRPC endpoint does" in line, line
    assert "is it http?" in line and "no Triton server answers" not in line


@pytest.mark.parametrize("mode", sorted(BAD_INFER))
def test_predict_names_server_in_one_line_when_inference_answer_is_malformed(mode: str, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    with lying_http_triton(mode) as url:
        line = _one_line(_predict("digits", str(tmp_path / "x.npy"), "--url", url, "--protocol", "http",
                                  "--timeout", "10")[0])
    assert f"http://{url}" in line, line
    assert "did not answer as Triton" in line or "returned no 'logits' output" in line, line

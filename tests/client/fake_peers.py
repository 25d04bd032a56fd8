"""Fake peers for the client's hostile-server tests: real sockets in threads that trickle, answer
garbage, or lie about their metadata and answers. They must be fake: they are the attackers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def socket_peer(mode: str) -> Iterator[str]:
    """A TCP server on loopback: ``trickle`` sends an HTTP answer one byte a second; ``garbage``
    answers every connection with bytes that are neither HTTP nor HTTP/2. Yields ``host:port``."""
    stop = threading.Event()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                if mode == "garbage":
                    conn.settimeout(2)
                    conn.recv(65536)
                    conn.sendall(b"\x00\xff\xfe garbage \x80\x81\r\n\r\n" * 8)
                    return
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n" + b"x" * 4096:
                    if stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        srv.close()


GOOD_META = {"name": "digits", "versions": ["1"], "platform": "onnxruntime_onnx",
              "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
              "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]}


BAD_INFER = {  # answers to an inference of one 8x8 input
    "infer:data-short": {"outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 10], "data": [1.0]}]},
    "infer:rows": {"outputs": [{"name": "logits", "datatype": "FP32", "shape": [3, 10], "data": [0.5] * 30}]},
    "infer:rank": {"outputs": [{"name": "logits", "datatype": "FP32", "shape": [10], "data": [0.5] * 10}]},
    "infer:labels": {"outputs": [{"name": "logits", "datatype": "BYTES", "shape": [1, 10], "data": ["x:y"] * 10}]},
    "infer:dtype": {"outputs": [{"name": "logits", "datatype": "NOPE", "shape": [1, 10], "data": [0] * 10}]},
    "infer:none": {"outputs": []},
    "infer:not-json": "[[[",
}


@contextmanager
def lying_http_triton(mode: str) -> Iterator[str]:
    """An HTTP server that answers Triton's v2 paths, but: ``no-datatype`` leaves ``datatype`` out of
    the model metadata; ``not-json`` answers metadata with undecodable bytes; ``trickle-infer``
    answers everything right and then trickles the inference answer one byte a second; the
    ``infer:...`` modes answer inferences with JSON that Triton would never send."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/v2/health/live", "/v2/health/ready", "/v2/models/digits/ready"):
                self._send(200, b"")
            elif path == "/v2/models/digits":
                meta = json.loads(json.dumps(GOOD_META))
                if mode == "no-datatype":
                    del meta["inputs"][0]["datatype"]
                self._send(200, b"\xff\xfe\x00garbage{" if mode == "not-json" else json.dumps(meta).encode())
            elif path == "/v2/models/digits/config":
                self._send(200, json.dumps({"name": "digits", "max_batch_size": 8}).encode())
            else:
                self._send(404, json.dumps({"error": "not found"}).encode())

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if mode.startswith("infer:"):
                self._send(200, json.dumps(BAD_INFER[mode]).encode())
                return
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100000):
                if stop.wait(1.0):
                    return
                try:
                    self.wfile.write(b"{")
                    self.wfile.flush()
                except OSError:
                    return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@contextmanager
def lying_grpc_triton(mode: str) -> Iterator[str]:
    """A gRPC server speaking Triton's service: ``no-datatype`` leaves ``datatype`` out of the model
    metadata; ``slow-infer`` answers metadata right and never finishes an inference in time."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from tritonclient.grpc import model_config_pb2 as mc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pbg

    stop = threading.Event()

    class Lying(pbg.GRPCInferenceServiceServicer):
        def ServerLive(self, request, context):  # noqa: N802 - the service's names
            return pb.ServerLiveResponse(live=True)

        def ModelReady(self, request, context):  # noqa: N802
            return pb.ModelReadyResponse(ready=True)

        def ModelMetadata(self, request, context):  # noqa: N802
            dtype = "" if mode == "no-datatype" else "FP32"
            return pb.ModelMetadataResponse(
                name="digits", versions=["1"], platform="onnxruntime_onnx",
                inputs=[pb.ModelMetadataResponse.TensorMetadata(name="input", datatype=dtype, shape=[-1, 1, 8, 8])],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(name="logits", datatype="FP32", shape=[-1, 10])])

        def ModelConfig(self, request, context):  # noqa: N802
            return pb.ModelConfigResponse(config=mc.ModelConfig(name="digits", max_batch_size=8))

        def ModelInfer(self, request, context):  # noqa: N802
            stop.wait(60)
            context.abort(grpc.StatusCode.UNAVAILABLE, "gone")

    server = grpc.server(ThreadPoolExecutor(4))
    pbg.add_GRPCInferenceServiceServicer_to_server(Lying(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        server.stop(0)

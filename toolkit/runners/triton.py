"""A model served by Triton, through the public :class:`toolkit.client.predictor.Predictor` API."""

from __future__ import annotations

from typing import Any

import numpy as np
from tritonclient.utils import triton_to_np_dtype

from contract.spec import ModelSpec
from toolkit.client.inputs import front_door, raw_pixels
from toolkit.client.predictor import Predictor
from toolkit.runners.base import BaseRunner, Feeds, InputMetadata


def wire_dtype(wire: str) -> np.dtype:
    """numpy dtype of a Triton wire type (``FP32``), by tritonclient's own table."""
    return np.dtype(triton_to_np_dtype(wire))


class TritonRunner(BaseRunner):
    """One served model: any number of rows per ``infer`` (split at its max batch size, sent
    ``concurrency`` at a time), inputs cast to the served dtype.

    The connection is made on activation (ServerError / ClientError when nothing or no such model
    answers); ``spec`` is then the served model's tritonkit spec, if it carries one.
    """

    def __init__(self, url: str, model: str, protocol: str = "grpc", *, timeout: float = 30.0,
                 batch_size: int | None = None, concurrency: int = 4) -> None:
        super().__init__(f"triton:{model}@{url}")
        self.url, self.model, self.protocol = url, model, protocol
        self.timeout, self.batch_size, self.concurrency = timeout, batch_size, concurrency
        self.predictor: Predictor | None = None
        self.spec: ModelSpec | None = None
        self.raw_input: str | None = None  # an image front door's UINT8 input: feeds are then raw values

    def activate_impl(self) -> None:
        self.predictor = Predictor(self.model, url=self.url, protocol=self.protocol, timeout=self.timeout,
                                   batch_size=self.batch_size, concurrency=self.concurrency)
        self.spec = self.predictor.spec
        # An image ensemble preprocesses itself: it takes raw UINT8 pixels, not the normalized tensor.
        self.raw_input = front_door(self.predictor.inputs, self.predictor.max_batch_size).raw
        if self.raw_input:
            self.predictor.select_input(self.raw_input)

    def deactivate_impl(self) -> None:
        if self.predictor is not None:
            self.predictor.close()
        self.predictor = None

    def get_input_metadata_impl(self) -> InputMetadata:
        self.require_active("get_input_metadata()")
        return {t["name"]: (wire_dtype(t["datatype"]), list(t["shape"])) for t in self.predictor.inputs}

    def infer_impl(self, feed_dict: Feeds) -> Feeds:
        if self.raw_input:  # raw (N, C, H, W) values in the model's value range, sent as UINT8 (N, H, W, C)
            raw = np.asarray(feed_dict.get(self.raw_input, next(iter(feed_dict.values()))))
            return {self.predictor.outputs[0]["name"]: self.predictor.predict_many(raw_pixels(raw))}
        first = self.predictor.inputs[0]
        dtype = wire_dtype(first["datatype"])
        arr: Any = feed_dict.get(first["name"], next(iter(feed_dict.values())))
        logits = self.predictor.predict_many(np.asarray(arr).astype(dtype, copy=False))
        return {self.predictor.outputs[0]["name"]: logits}

"""Checkpoint -> ONNX -> precision variants -> TensorRT plan, with file safety and parity."""

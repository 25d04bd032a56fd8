"""Checkpoint -> ONNX / TorchScript -> precision variants -> TensorRT plan, with file safety and parity."""

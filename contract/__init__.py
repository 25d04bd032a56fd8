"""The contract between training (``trainers``) and deployment (``toolkit``).

Both halves import from here and neither imports the other's internals: the errors a user can fix,
the file primitives (atomic writes, hashing, regular-file reads) and the model spec that a
checkpoint, an ONNX file and a served config all carry. Nothing here imports torch or tritonclient.
"""

"""What a user chooses about serving a model, kept free of Triton's protobuf so CLI defaults can read it.

Shapes and dtypes never come from here: they come from the model (its ONNX graph or plan record).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.errors import UsageError

KINDS = ("cpu", "gpu", "auto")  # instance kinds, in the order errors list them
DEFAULT_REPOSITORY = "model_repository"
ONNX_PLATFORM = "onnxruntime_onnx"
PLAN_PLATFORM = "tensorrt_plan"

# The image ensemble's front door (read by clients without loading Triton's protobuf): send exactly one
# of these inputs; the ensemble's config describes them in its IMAGE_INPUTS_PARAMETER (JSON).
ENSEMBLE_INPUT_RAW = "IMAGE"  # UINT8 [N, H, W, C], any size
ENSEMBLE_INPUT_ENCODED = "IMAGE_BYTES"  # BYTES [N, 1], PNG or JPEG
IMAGE_INPUTS_PARAMETER = "tritonkit.image_inputs"


def image_inputs_description(classifier: str) -> dict[str, object]:
    """What an image ensemble takes, as its config records it: predict/evaluate/profile read it to send
    UINT8 images (or encoded bytes) instead of the classifier's float tensor, and to name the cause
    (exactly one of the two inputs) before perf_analyzer hides it in a log."""
    return {
        "raw": {"name": ENSEMBLE_INPUT_RAW, "datatype": "UINT8", "layout": "HWC", "dims": [-1, -1, -1]},
        "encoded": {"name": ENSEMBLE_INPUT_ENCODED, "datatype": "BYTES", "dims": [1], "formats": ["png", "jpeg"]},
        "send": "exactly one of raw or encoded per request",
        "tensor_model": classifier,
    }


@dataclass
class ServingOptions:
    """What the user chooses about serving; shapes and dtypes come from the model, not from here."""

    max_batch_size: int = 32
    dynamic_batching: bool = True
    max_queue_delay_us: int = 100
    preferred_batch_sizes: list[int] = field(default_factory=list)
    max_queue_size: int = 0  # 0 = unbounded
    instances: int = 1
    kind: str = "cpu"  # cpu | gpu | auto
    keep_versions: int = 1
    warmup: bool = True
    label_filename: str | None = "labels.txt"
    response_cache: bool = False
    tensorrt_accelerator: bool = False  # ONNX on GPU: ONNX Runtime's TensorRT execution provider
    accelerator_precision: str = "FP16"
    profiles: list[str] = field(default_factory=list)  # TensorRT optimization profiles GPU instances use

    def validate(self) -> None:
        """Refuse inconsistent serving options before anything is written."""
        if self.max_batch_size < 0:
            raise UsageError(f"--max-batch {self.max_batch_size} is negative; use 0 (no batching) or more")
        if self.kind not in KINDS:
            raise UsageError(f"--kind {self.kind!r} is unknown; use one of {', '.join(KINDS)}")
        if self.instances < 1:
            raise UsageError(f"--instances {self.instances}: use at least 1")
        if self.keep_versions < 1:
            raise UsageError(f"--keep-versions {self.keep_versions}: keep at least 1")
        if self.max_queue_delay_us < 0 or self.max_queue_size < 0:
            raise UsageError("--max-queue-delay-us and --max-queue-size must be >= 0")
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= max(self.max_batch_size, 1)]
        if bad:
            raise UsageError(
                f"preferred batch sizes {bad} are outside [1, max_batch_size={self.max_batch_size}]; "
                "choose sizes within it"
            )
        if self.preferred_batch_sizes and not self.dynamic_batching:
            raise UsageError("--preferred-batch needs dynamic batching; drop --no-dynamic-batching")

"""One base error for everything a user can get wrong.

The CLI turns a :class:`TritonkitError` into a single line on stderr and its ``exit_code``; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class TritonkitError(Exception):
    """A problem the user can fix: says what is wrong, where, and how to fix it."""

    exit_code = 1


class UsageError(TritonkitError):
    """Bad arguments or inconsistent options."""

    exit_code = 2


class MissingDependencyError(TritonkitError):
    """A component (TensorRT, a GPU, perf_analyzer, a system library) is not available here."""

    exit_code = 3


class CheckpointError(TritonkitError):
    """A checkpoint is missing, truncated, unsafe or of another format."""


class ExportError(TritonkitError):
    """ONNX export, conversion or parity failed."""


class RepositoryError(TritonkitError):
    """The model repository cannot be read or written as asked."""


class ServerError(TritonkitError):
    """A Triton server cannot be started, reached or stopped."""


class ClientError(TritonkitError):
    """A request to a Triton server failed."""


class ProfileError(TritonkitError):
    """Profiling or a benchmark report failed."""

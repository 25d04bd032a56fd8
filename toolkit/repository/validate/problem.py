"""One finding of the repository linter, printable as one line."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"
NOTE = "note"  # true and worth knowing, nothing to fix (what Triton will fill in, what rollback restores)


def clean(text: object) -> str:
    """Printable text: control characters and undecodable bytes become escapes.

    Why: model and file names come from a hostile file system; one problem must stay one line
    and must never break the terminal or the JSON encoder.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


@dataclass
class Problem:
    """What is wrong (``message``), where (``model``/``file``, ``field``) and how to fix it."""

    severity: str  # "error" | "warning" | "note"
    model: str
    file: str
    field: str
    message: str
    fix: str

    def __post_init__(self) -> None:
        for name in ("severity", "model", "file", "field", "message", "fix"):
            setattr(self, name, clean(getattr(self, name)))

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def line(self) -> str:
        """``model/file: field: what is wrong; how to fix``."""
        where = "/".join(p for p in (self.model, self.file) if p) or "."
        return f"{where}: {self.field or '-'}: {self.message}; {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """Collects the problems of one model; ``name`` is the model folder's name."""

    name: str
    problems: list[Problem]

    def error(self, file: str, field: str, message: str, fix: str) -> None:
        self.problems.append(Problem(ERROR, self.name, file, field, message, fix))

    def warn(self, file: str, field: str, message: str, fix: str) -> None:
        self.problems.append(Problem(WARNING, self.name, file, field, message, fix))

    def note(self, file: str, field: str, message: str, fix: str = "nothing to do") -> None:
        self.problems.append(Problem(NOTE, self.name, file, field, message, fix))

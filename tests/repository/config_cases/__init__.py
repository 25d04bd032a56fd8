"""Configuration cases written from Triton 2.51's rules: each is a model folder, the verdict Triton
gives it (``refused``/``accepted``) and the words the static validator's message must contain.

One table per family module (``scheduling``, ``models``, ``onnx``); :data:`ALL` gathers them.
The same cases run through the static validator (tests beside each table) and through a real,
throw-away embedded Triton (``test_triton_agreement.py``), which must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# A python model that loads and answers nothing: enough for Triton's core checks to run.
PY_MODEL = (
    "class TritonPythonModel:\n"
    "    def initialize(self, args):\n"
    "        pass\n"
    "\n"
    "    def execute(self, requests):\n"
    "        return []\n"
)


@dataclass(frozen=True)
class Case:
    """One model folder and what Triton 2.51 does with it.

    ``name`` is the model folder's name, unique across all tables (``config`` may omit ``name:``).
    ``files`` maps paths inside the model folder to contents; when empty, ``1/model.py`` is
    :data:`PY_MODEL`. ``extra`` holds other models the case needs in the same repository (ensemble
    steps), each ``name -> (config text, files)``; their names must start with ``name``.
    ``message``: a substring of one static *error* line (refused), or of a *warning/note* line
    (accepted; empty = no requirement). ``triton``: False where the embedded Triton here cannot
    judge (say why in ``why``; e.g. needs a GPU).
    """

    name: str
    family: str
    config: str
    verdict: str  # "refused" | "accepted"
    message: str = ""
    files: dict[str, str | bytes] = field(default_factory=dict)
    extra: dict[str, tuple[str, dict[str, str | bytes]]] = field(default_factory=dict)
    triton: bool = True
    why: str = ""


def write_model(root: Path, name: str, config: str, files: dict[str, str | bytes]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config)
    for rel, content in (files or {"1/model.py": PY_MODEL}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


def build(case: Case, root: Path) -> Path:
    """Write ``case`` (and its extra models) into repository ``root``; return its model folder."""
    for name, (config, files) in case.extra.items():
        assert name.startswith(case.name), f"{case.name}: extra model {name} must start with the case name"
        write_model(root, name, config, files)
    return write_model(root, case.name, case.config, case.files)


def all_cases() -> list[Case]:
    """Every table that exists so far (family modules are optional while they are written)."""
    import importlib

    out: list[Case] = []
    for module in ("scheduling", "models", "onnx"):
        try:
            mod = importlib.import_module(f"tests.repository.config_cases.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tests.repository.config_cases.{module}":
                raise
            continue
        out.extend(mod.CASES)
    names = [c.name for c in out]
    assert len(names) == len(set(names)), "case names must be unique"
    return out

"""Configuration cases written from Triton 2.51's rules: each is a model folder, the verdict Triton
gives it (``refused``/``accepted``) and the words the static validator's message must contain.

One table per family module (``scheduling``, ``models``, ``onnx``); :data:`ALL` gathers them.
The same cases run through the static validator (tests beside each table) and through a real,
throw-away embedded Triton (``test_triton_agreement.py``), which must agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
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
    judge (say why in ``why``; e.g. needs a GPU). ``fixed``: for a refused case, its config.pbtxt after
    doing exactly what the validator's fix text says (same files, same extra models), which Triton must
    load; empty where the fix is not a config edit (write a file, re-export the model) or needs a GPU.
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
    fixed: str = ""


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


def build_fixed(case: Case, root: Path) -> Path:
    """Write ``case.fixed`` as model ``<name>_fixed`` beside the case (its ``name:`` line renamed to match).

    The extra models are shared with the case: written here only when :func:`build` has not written them.
    """
    assert case.fixed, f"{case.name} has no fixed config"
    for name, (config, files) in case.extra.items():
        if not (root / name).exists():
            write_model(root, name, config, files)
    name = f"{case.name}_fixed"
    config = re.sub(r'(?m)^name:\s*"[^"]*"', f'name: "{name}"', case.fixed)
    return write_model(root, name, config, case.files)


Edit = tuple[str, str]


def with_fixes(cases: list[Case], edits: dict[str, Edit | list[Edit]]) -> list[Case]:
    """``cases`` with ``fixed`` filled for each name in ``edits``: its config with each ``(old, new)`` replaced once.

    Written as edits so that each reads as the fix text it applies, and cannot drift from the case's config.
    """
    unknown = set(edits) - {c.name for c in cases}
    assert not unknown, f"edits for unknown cases: {sorted(unknown)}"
    out: list[Case] = []
    for case in cases:
        if case.name not in edits:
            out.append(case)
            continue
        given = edits[case.name]
        pairs: list[Edit] = [given] if isinstance(given, tuple) else given
        text = case.config
        for old, new in pairs:
            assert old in text, f"{case.name}: {old!r} is not in its config"
            text = text.replace(old, new, 1)
        assert case.verdict == "refused" and text != case.config, case.name
        out.append(replace(case, fixed=text))
    return out


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


def assert_static_verdict(case: Case, root: Path) -> None:
    """Build ``case`` into ``root`` and check the static validator gives its verdict, with its words: in an
    error line when refused, in a warning or note when accepted; every line one line."""
    from toolkit.repository.validate import validate_model

    problems = validate_model(build(case, root), repository=root)
    errors = [p.line() for p in problems if p.is_error]
    others = [p.line() for p in problems if not p.is_error]
    assert ("refused" if errors else "accepted") == case.verdict, (errors, others)
    if case.message:
        assert any(case.message in line for line in (errors if case.verdict == "refused" else others)), (
            case.message, errors, others)
    assert all("\n" not in line for line in errors + others)

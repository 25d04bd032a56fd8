"""Triton itself agrees with every configuration case, and so does the static validator.

All cases Triton here can judge go into ONE repository; one throw-away embedded Triton loads each model
(:func:`toolkit.serve.load_check.load_verdicts`, config auto-completion on, Triton's default). Each case
then checks Triton's verdict and the static verdict against the case's own. Each refused case's fixed
variant (``Case.fixed``: its config after doing what the validator's fix text says) goes into the same
repository as ``<name>_fixed``, and Triton must load it: a hint that leads to a refused config fails here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.repository.config_cases import Case, all_cases, build, build_fixed
from toolkit.repository.validate import onnx_rules, validate_model
from toolkit.serve.load_check import Verdict, load_verdicts

pytestmark = pytest.mark.server

CASES = [c for c in all_cases() if c.triton]
FIXED = [c for c in CASES if c.fixed]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Verdict]]:
    root = tmp_path_factory.mktemp("agreement") / "repo"
    root.mkdir()
    for case in CASES:
        build(case, root)
    for case in FIXED:
        build_fixed(case, root)
    t0 = time.monotonic()
    verdicts = load_verdicts(root, timeout_s=180)
    print(f"\nTriton judged {len(verdicts)} models ({len(CASES)} cases, {len(FIXED)} fixed variants) in "
          f"{time.monotonic() - t0:.1f} s")
    return root, verdicts


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_triton_and_the_validator_give_the_case_verdict(case: Case, judged: tuple[Path, dict[str, Verdict]]) -> None:
    root, verdicts = judged
    triton = verdicts[case.name]
    said = "accepted" if triton.loaded else f"refused ({triton.error})"
    assert ("accepted" if triton.loaded else "refused") == case.verdict, f"Triton {said}; the case says {case.verdict}"
    errors = [p.line() for p in validate_model(root / case.name, repository=root) if p.is_error]
    static = "refused" if errors else "accepted"
    assert static == case.verdict, f"the validator {static} ({errors}); Triton {said}"
    if case.family == "onnx" and not triton.loaded:
        # tritonkit's onnxruntime backend refuses in one line naming the model and what the validator names.
        assert "\n" not in triton.error and f"model '{case.name}'" in triton.error, triton.error
        subjects = [onnx_rules.Finding(e.split(": ", 2)[1], "", "").subject() for e in errors]
        assert any(f"'{case.name}', {s}: " in triton.error for s in subjects), (triton.error, errors)


@pytest.mark.parametrize("case", FIXED, ids=[c.name for c in FIXED])
def test_triton_loads_the_fixed_variant(case: Case, judged: tuple[Path, dict[str, Verdict]]) -> None:
    root, verdicts = judged
    name = f"{case.name}_fixed"
    fix = [p.fix for p in validate_model(root / case.name, repository=root) if p.is_error and case.message in p.line()]
    assert verdicts[name].loaded, f"Triton refused the config the fix {fix} gives: {verdicts[name].error}"


def test_every_model_in_the_repository_was_judged(judged: tuple[Path, dict[str, Verdict]]) -> None:
    root, verdicts = judged
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert sorted(verdicts) == folders and len(folders) >= len(CASES) + len(FIXED)
    assert {f"{c.name}_fixed" for c in FIXED} <= set(folders)

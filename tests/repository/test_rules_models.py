"""The static validator gives every model-level case (instance groups, reshape, ensembles, naming)
Triton 2.51's verdict, with the case's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repository.config_cases import Case, build
from tests.repository.config_cases.models import CASES
from toolkit.repository.validate import validate_model

FAMILIES = {"instance_group", "reshape", "ensemble", "naming"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validator_gives_triton_verdict(case: Case, tmp_path: Path) -> None:
    folder = build(case, tmp_path)
    problems = validate_model(folder, repository=tmp_path)
    errors = [p.line() for p in problems if p.is_error]
    others = [p.line() for p in problems if not p.is_error]
    if case.verdict == "refused":
        assert any(case.message in e for e in errors), (case.message, errors)
        assert all("\n" not in e for e in errors)
    else:
        assert not errors, errors
        if case.message:
            assert any(case.message in w for w in others), (case.message, others)


def test_cases_cover_every_family_both_ways() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and all(n.startswith("m_") for n in names)
    refused = [c for c in CASES if c.verdict == "refused"]
    accepted = [c for c in CASES if c.verdict == "accepted"]
    assert len(refused) >= 45 and len(accepted) >= 15
    assert {c.family for c in refused} == FAMILIES and {c.family for c in accepted} == FAMILIES
    assert all(c.message for c in refused) and all(c.why for c in CASES if not c.triton)

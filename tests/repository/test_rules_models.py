"""The static validator gives every model-level case (instance groups, reshape, ensembles, naming)
Triton 2.51's verdict, with the case's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repository.config_cases import Case, assert_static_verdict
from tests.repository.config_cases.models import CASES

FAMILIES = {"instance_group", "reshape", "ensemble", "naming"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validator_gives_triton_verdict(case: Case, tmp_path: Path) -> None:
    assert_static_verdict(case, tmp_path)


def test_cases_cover_every_family_both_ways() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and all(n.startswith("m_") for n in names)
    refused = [c for c in CASES if c.verdict == "refused"]
    accepted = [c for c in CASES if c.verdict == "accepted"]
    assert len(refused) >= 45 and len(accepted) >= 15
    assert {c.family for c in refused} == FAMILIES and {c.family for c in accepted} == FAMILIES
    assert all(c.message for c in refused) and all(c.why for c in CASES if not c.triton)

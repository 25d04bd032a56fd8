"""The static validator gives every scheduling case Triton 2.51's verdict, with the case's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repository.config_cases import Case, assert_static_verdict
from tests.repository.config_cases.scheduling import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validator_gives_triton_verdict(case: Case, tmp_path: Path) -> None:
    assert_static_verdict(case, tmp_path)


def test_cases_cover_every_family_both_ways() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and all(n.startswith("s_") for n in names)
    refused = [c for c in CASES if c.verdict == "refused"]
    accepted = [c for c in CASES if c.verdict == "accepted"]
    assert len(refused) >= 55 and len(accepted) >= 15
    families = {"batch_io", "sequence", "dynamic_batching", "transaction", "response_cache", "version_policy"}
    assert {c.family for c in refused} == families
    assert {c.family for c in accepted} == families

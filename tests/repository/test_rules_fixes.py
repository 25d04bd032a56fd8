"""Each refused case's fix, done as its text says, gives a config the validator accepts.

``Case.fixed`` is the case's config after doing what the validator's fix text says; the same files and
extra models go with it. ``test_triton_agreement.py`` has Triton load every fixed variant too, so a hint
that leads to a config Triton refuses fails there.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.repository.config_cases import Case, all_cases, build, build_fixed
from toolkit.repository.validate import validate_model

FIXED = [c for c in all_cases() if c.fixed]


@pytest.mark.parametrize("case", FIXED, ids=[c.name for c in FIXED])
def test_the_fix_text_done_gives_a_config_without_errors(case: Case, tmp_path: Path) -> None:
    errors = [p for p in validate_model(build(case, tmp_path), repository=tmp_path) if p.is_error]
    named = [p for p in errors if case.message in p.line()]
    assert named and all(p.fix.strip() for p in named), [p.line() for p in errors]
    folder = build_fixed(case, tmp_path)
    after = [p.line() for p in validate_model(folder, repository=tmp_path) if p.is_error]
    assert not after, (f"fix: {named[0].fix}", after)


def test_fixed_variants_cover_every_family() -> None:
    cases = all_cases()
    refused = {c.family for c in cases if c.verdict == "refused"}
    per_family = Counter(c.family for c in FIXED)
    assert set(per_family) == refused and len(FIXED) >= 60, per_family
    assert all(c.verdict == "refused" for c in FIXED)


def test_build_fixed_names_the_model_after_its_folder(tmp_path: Path) -> None:
    case = next(c for c in FIXED if c.name == "m_nm_differs")
    folder = build_fixed(case, tmp_path)
    assert folder.name == "m_nm_differs_fixed"
    assert 'name: "m_nm_differs_fixed"' in (folder / "config.pbtxt").read_text()

"""The native ONNX Runtime backend's rules, as the static validator applies them (with their messages).

The same cases are loaded by tritonkit's Python-based onnxruntime backend in a real embedded Triton in
``test_triton_agreement.py`` (one server for every case table): both run
:mod:`toolkit.repository.validate.onnx_rules`, and the two verdicts must agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repository.config_cases import Case, assert_static_verdict, build
from tests.repository.config_cases.onnx import CASES
from toolkit.repository.validate import onnx_rules as rules
from toolkit.repository.validate import validate_model


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validator_gives_native_verdict(case: Case, tmp_path: Path) -> None:
    assert_static_verdict(case, tmp_path)


def test_cases_cover_both_verdicts() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and all(n.startswith("o_") for n in names)
    assert sum(c.verdict == "refused" for c in CASES) >= 15
    assert sum(c.verdict == "accepted" for c in CASES) >= 10


def test_validator_notes_what_auto_complete_fills_and_that_strict_config_refuses_it(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "o_autocomplete_backend_only")
    build(case, tmp_path)
    problems = validate_model(tmp_path / case.name)
    assert [p.severity for p in problems] == ["note"]
    assert "--strict-config" in problems[0].line() and "inputs x; outputs y" in problems[0].line()


def _t(name: str, *shape: int | str) -> rules.GraphTensor:
    return rules.graph_tensor(name, "TYPE_FP32", shape)


def test_auto_complete_fills_like_the_native_backend() -> None:
    batched = ([_t("x", "N")], [_t("y", "N", 3)])
    cfg, filled = rules.auto_complete({"backend": "onnxruntime"}, *batched)
    assert cfg["max_batch_size"] == 4 and cfg["dynamic_batching"] == {}
    # A rank-1 batched tensor keeps no dims: [1] with an empty reshape, as the native backend writes it.
    assert cfg["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}}]
    assert cfg["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": [3]}]
    assert filled == ["max_batch_size 4", "dynamic_batching", "inputs x", "outputs y"]
    # max_batch_size 1 batches without a dynamic batcher; a sequence batcher is never replaced.
    assert "dynamic_batching" not in rules.auto_complete({"max_batch_size": 1}, *batched)[0]
    assert "dynamic_batching" not in rules.auto_complete({"sequence_batching": {}}, *batched)[0]
    # Inputs and outputs both listed: auto-complete leaves everything alone, max_batch_size too.
    full = {"input": [{"name": "x"}], "output": [{"name": "y"}]}
    assert rules.auto_complete(full, *batched) == (full, [])
    # Not batchable: max_batch_size stays 0 and scalars get dims [1] without a reshape.
    cfg, _ = rules.auto_complete({}, [_t("s")], [_t("y", 2)])
    assert rules.max_batch(cfg) == 0 and "dynamic_batching" not in cfg
    assert cfg["input"] == [{"name": "s", "data_type": "TYPE_FP32", "dims": [1]}]
    with pytest.raises(rules.AutoCompleteRefused, match="cannot batch"):
        rules.auto_complete({"max_batch_size": 2}, [_t("s")], [_t("y", 2)])


def test_types_outside_the_native_backend_map_are_refused() -> None:
    assert rules.type_from_onnx(16) == "TYPE_INVALID"  # bfloat16
    assert rules.type_from_ort("tensor(float16)") == "TYPE_FP16"
    cfg = {"input": [{"name": "x", "data_type": "TYPE_BF16", "dims": [2]}],
           "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [2]}]}
    found = rules.load_findings(cfg, [rules.GraphTensor("x", "TYPE_INVALID", (2,))], [_t("y", 2)])
    assert [f.field for f in found] == ["input[x].data_type"] and "not one the ONNX Runtime" in found[0].message

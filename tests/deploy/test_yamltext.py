"""tritonkit's YAML writer reads back (PyYAML, YAML 1.1 rules) as exactly the data written."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.deploy.yamltext import dump, dump_all

TRICKY = ["true", "False", "yes", "No", "on", "OFF", "y", "n", "null", "~", "", " ", "1", "1.0", "0x1f", "0o17",
          "1e3", "1_000", "12:30", ".inf", "-.inf", ".nan", "=", "<<", "- a", "a: b", "#x", "x #y", "@a", "`a",
          "!tag", "&a", "*a", "%a", "|", ">", "'q'", '"q"', "a\nb", "tab\there", "2024-01-01", "-", "?", ":",
          "${x}", "$(VAR)", "{{ $value }}", "ünïcode", "\u2028", "a/b:c", "nvidia.com/gpu", "/v2/health/ready"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(TRICKY), st.text(max_size=12))
keys = st.one_of(st.sampled_from(TRICKY), st.text(max_size=10))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_any_document_reads_back_unchanged(document: object) -> None:
    assert yaml.safe_load(dump(document)) == document


def test_tricky_strings_read_back_as_strings_and_documents_split() -> None:
    data = {k: k for k in TRICKY}
    assert yaml.safe_load(dump(data)) == data
    assert list(yaml.safe_load_all(dump_all([{"a": 1}, [1, {"b": [True]}]]))) == [{"a": 1}, [1, {"b": [True]}]]

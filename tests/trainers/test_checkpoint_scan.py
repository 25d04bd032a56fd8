"""The checkpoint scan refuses pickles that try to hide their globals from a literal scan."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from contract.errors import CheckpointError
from trainers.checkpoint import load_checkpoint


def _zip_with(tmp_path: Path, entries: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    torch.save({"x": 1}, buf)
    out = tmp_path / "ckpt.pt"
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            short = info.filename.split("/", 1)[1]
            dst.writestr(info.filename, entries.pop(short, src.read(info)))
        prefix = src.namelist()[0].split("/", 1)[0]
        for short, data in entries.items():
            dst.writestr(f"{prefix}/{short}", data)
    return out


def _memo_stack_global(marker: Path) -> bytes:
    """os.system(...) through STACK_GLOBAL whose names come from the memo, with allowed-looking
    literals pushed last so a scan of 'the last two strings' sees collections.OrderedDict."""
    def s(text: str) -> bytes:
        data = text.encode()
        return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data

    return (pickle.PROTO + b"\x04" + s("os") + pickle.MEMOIZE + s("system") + pickle.MEMOIZE
            + s("collections") + s("OrderedDict") + pickle.POP + pickle.POP
            + pickle.BINGET + b"\x00" + pickle.BINGET + b"\x01" + pickle.STACK_GLOBAL
            + s(f"touch {marker}") + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)


def test_memo_fetched_stack_global_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _zip_with(tmp_path, {"data.pkl": _memo_stack_global(marker)})
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_second_pickle_in_the_archive_is_refused(tmp_path: Path) -> None:
    path = _zip_with(tmp_path, {"other.pkl": pickle.dumps({"a": 1})})
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(path)

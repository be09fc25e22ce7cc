from __future__ import annotations

import json
import os
import stat

import pytest

from facelib.io import atomic_path, write_json


def test_write_json_atomic_and_readable(tmp_path):
    p = write_json(tmp_path / "sub" / "m.json", {"a": 1.5, "b": [1, 2]})
    assert json.loads(p.read_text()) == {"a": 1.5, "b": [1, 2]}
    assert os.listdir(p.parent) == ["m.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask


def test_failure_leaves_old_file(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]

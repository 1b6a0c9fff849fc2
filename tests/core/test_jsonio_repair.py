"""A torn last line of a JSON-lines file (a write cut short) is cut before anyone appends again."""
from __future__ import annotations

import json
from pathlib import Path

from core.jsonio import append_jsonl, read_jsonl, repair_jsonl_tail


def test_a_clean_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    append_jsonl(path, {"a": 1})
    before = path.read_bytes()
    assert repair_jsonl_tail(path) == 0
    assert path.read_bytes() == before and not (tmp_path / "j.jsonl.torn").exists()


def test_missing_and_empty_files_need_no_repair(tmp_path: Path) -> None:
    assert repair_jsonl_tail(tmp_path / "absent.jsonl") == 0
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert repair_jsonl_tail(tmp_path / "empty.jsonl") == 0


def test_a_torn_tail_is_cut_kept_aside_and_the_next_append_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "ab") as fh:
        fh.write(b'{"a": 2, "b"')
    assert repair_jsonl_tail(path) == len(b'{"a": 2, "b"')
    append_jsonl(path, {"a": 3})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"a": 3}]
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 3}]
    assert (tmp_path / "j.jsonl.torn").read_bytes() == b'{"a": 2, "b"\n'


def test_a_file_that_is_all_torn_becomes_empty(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"event": "attem')
    assert repair_jsonl_tail(path) == 16
    assert path.read_bytes() == b""

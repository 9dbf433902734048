"""Unit tests of the plugin's attribution and outputs (no device, no shim)."""

from __future__ import annotations

from typing import Any

import pytest

import ttsan
from ttsan import pytest_plugin as plugin


def finding(kind: str, op_index: int | None, victim_id: int = 1, allocated_by: str | None = None) -> dict[str, Any]:
    culprit = None if op_index is None else {"op": f"op{op_index}", "op_index": op_index, "call": 1}
    return {
        "kind": kind,
        "space": "l1",
        "address": 0x16D000,
        "size": 4096,
        "culprit": culprit,
        "victim": {"id": victim_id, "name": f"buffer #{victim_id}", "allocated_by": allocated_by},
        "related": None,
        "count": 1,
    }


def record(nodeid: str, first: int, last: int, flagged: list[str] | None = None) -> Any:
    return plugin._TestRecord(nodeid, first, last, {"call": "passed"}, flagged or [])


def test_a_finding_belongs_to_the_test_whose_op_range_holds_its_op() -> None:
    tests = [record("t.py::a", 0, 3), record("t.py::b", 3, 3), record("t.py::c", 3, 7)]
    found = [finding("cb-clash", 2), finding("overlap", 3), finding("cb-clash", 7)]
    assert plugin.attribute(found, tests) == [["t.py::a"], ["t.py::c"], []]


def test_a_leak_belongs_to_the_test_that_allocated_its_victim() -> None:
    tests = [record("t.py::a", 0, 2), record("t.py::b", 2, 5)]
    leak = finding("leak", None, allocated_by="#4 ttnn::matmul")
    host = finding("leak", None, allocated_by=None)
    assert plugin.attribute([leak, host], tests) == [["t.py::b"], []]


def test_a_repeat_flagged_by_a_later_test_belongs_to_both() -> None:
    f = finding("guard-corruption", 1)
    tests = [record("t.py::a", 0, 2), record("t.py::b", 2, 4, flagged=[plugin._key(f)])]
    assert plugin.attribute([f], tests) == [["t.py::a", "t.py::b"]]


def test_junit_has_a_case_per_test_and_one_for_findings_outside_tests() -> None:
    tests = [record("t.py::a", 0, 2), record("t.py::b", 2, 4)]
    found = [finding("cb-clash", 3), finding("double-free", None)]
    suite = plugin.junit(found, plugin.attribute(found, tests), tests)
    cases = [(c.get("name"), [f.get("type") for f in c]) for c in suite]
    assert cases == [("a", []), ("b", ["cb-clash"]), ("outside-any-test", ["double-free"])]
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")


def test_describe_names_kind_culprit_and_victim() -> None:
    text = plugin.describe(finding("cb-clash", 3))
    assert "cb-clash on l1 at 0x0016d000 (4096 bytes)" in text
    assert "culprit: op #3 op3" in text
    assert "'buffer #1'" in text


def test_the_api_does_nothing_without_the_shim() -> None:
    assert not ttsan.active()
    with ttsan.op("nothing"):
        pass
    assert ttsan.guard(0x1234, "x") is False
    assert ttsan.op_writes(0x1234) is False


def test_buffer_types_by_number_enum_value_or_name() -> None:
    class BufferType:
        name = "L1_SMALL"

    assert ttsan._buffer_type(1) == 1
    assert ttsan._buffer_type("DRAM") == 0

    class Bound:
        value = 1
        name = "L1"

    assert ttsan._buffer_type(BufferType()) == 3
    assert ttsan._buffer_type(Bound()) == 1
    with pytest.raises(ValueError, match="SYSTEM_MEMORY"):
        ttsan._buffer_type("SYSTEM_MEMORY")


class _Config:
    """The two things the supervisor reads of pytest's config."""

    def __init__(self, tmp: Any, report_only: bool) -> None:
        self.invocation_params = type("P", (), {"dir": tmp, "args": ()})()
        self.options = {"ttsan_report_only": report_only}

    def getoption(self, name: str) -> Any:
        return self.options.get(name)


def summarise(
    tmp: Any, report: dict[str, Any] | None, rc: int, child_exit: int | None, report_only: bool = False
) -> int:
    supervisor = plugin.Supervisor(_Config(tmp, report_only))  # type: ignore[arg-type]
    tests = [record("t.py::a", 0, 2), record("t.py::b", 2, 4)]
    return supervisor._summarise(rc, child_exit, report, tests)


def test_a_finding_the_per_test_check_missed_still_fails_the_session(tmp_path: Any, capsys: Any) -> None:
    report = {"status": "findings", "findings": [finding("cb-clash", 3), finding("double-free", None)]}
    assert summarise(tmp_path, report, rc=1, child_exit=0) == 1
    out = capsys.readouterr().out
    assert "ttsan: 2 finding(s) in 1 test(s)" in out
    assert "FOUND AFTER THE RUN t.py::b - ttsan: cb-clash by op3" in out
    assert "OUTSIDE ANY TEST - ttsan: double-free by host" in out
    assert summarise(tmp_path, report, rc=1, child_exit=0, report_only=True) == 0
    assert "REPORTED t.py::b" in capsys.readouterr().out


def test_a_run_ttsan_could_not_check_is_never_clean(tmp_path: Any, capsys: Any) -> None:
    assert summarise(tmp_path, {"status": "error", "errors": ["damaged"], "findings": []}, rc=3, child_exit=0) == 3
    assert "NOT checked" in capsys.readouterr().out
    # No report: `ttsan run` failed (3), or tt-metal was never loaded (the session's own status).
    assert summarise(tmp_path, None, rc=3, child_exit=0) == 3
    assert summarise(tmp_path, None, rc=0, child_exit=0) == 0
    assert "tt-metal was never loaded" in capsys.readouterr().out
    assert summarise(tmp_path, {"status": "clean", "findings": [], "summary": {}}, rc=5, child_exit=5) == 5


def test_the_session_runs_again_under_ttsan_run_with_the_options(tmp_path: Any) -> None:
    config = _Config(tmp_path, report_only=False)
    config.invocation_params.args = ("--ttsan", "-x", "tests")
    config.options.update(
        ttsan_trace="t.ttsan",
        ttsan_html=None,
        ttsan_guard=["*load*"],
        ttsan_run_arg=["--guard-type=l1", "--leaks"],
    )
    cmd = plugin.Supervisor(config).command(tmp_path / "ttsan", tmp_path / "r.json")  # type: ignore[arg-type]
    dash = cmd.index("--")
    assert cmd[:dash] == [
        str(tmp_path / "ttsan"),
        "run",
        "--json",
        str(tmp_path / "r.json"),
        "--trace",
        str((tmp_path / "t.ttsan").resolve()),
        "--guard-stack",
        "*load*",
        "--guard-type=l1",
        "--leaks",
    ]
    assert cmd[dash + 2 :] == ["-m", "pytest", "--ttsan", "-x", "tests"]

"""``pytest --ttsan``: a pytest session under ttsan, each finding attributed to its test.

Why the session is re-run rather than activated in-process: the shim interposes tt-metal's
allocator through ``LD_PRELOAD``, which the dynamic loader reads once, when the process starts.
By the time a pytest plugin runs, the interpreter is up and ``libtt_metal.so`` may already be
loaded (a ``conftest.py`` that imports ttnn), and its calls are bound past the shim. So the
plugin, seeing ``--ttsan`` in a process without the shim, runs the same pytest command again as
``ttsan run [options] -- python -m pytest ARGS`` (the *supervisor*, below) and waits for it; in
that child the shim is present and the plugin *records* instead:

* Each test is a range of op indices: ``ttsan_next_op()`` when the test starts and after each
  phase. Ops of every thread are numbered in one sequence, so the ops begun during a test (the
  ttnn ops it runs, ops it marks with :func:`ttsan.op`) are exactly that range, and a finding
  whose culprit op is in it happened during the test. No op is opened around the test: guards
  are compared at the end of each top-level op, and an enclosing test op would turn every ttnn
  op into a nested one (compared only at the test's end, with the test blamed instead of the
  op) and would end ``--guard-preloaded``'s preload phase at the first test.
* After each phase (setup, call, teardown) the plugin flushes the shim's trace (``ttsan_flush``)
  and analyses the trace so far (``ttsan analyze --format json``); a finding in the test's
  range that was not there before fails that phase's report, so the test fails in pytest's own
  output, ``-x`` stops on it, and ``--junitxml`` records it. With ``--ttsan-report-only`` this
  check is skipped.
* When the child ends, ``ttsan run`` analyses the whole trace (its usual report and exit code)
  and the supervisor attributes every finding of that report to a test by the same ranges,
  prints the ttsan summary with the tests, writes ``--ttsan-json`` / ``--ttsan-junit``, and
  exits non-zero if anything was found (unless ``--ttsan-report-only``). The final analysis is
  the authoritative one: a finding the per-test check could not see yet (a writer more than
  the flush's 2 s behind) is still reported there, with its test, and still fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import _abi, binary

# Set by the supervisor for the child: where the child appends one JSON line per test and one
# for the session. Its presence also marks the child, so the child never re-runs itself.
ENV_STATE = "TTSAN_PYTEST_STATE"
# The ttsan executable the child analyses its trace with (the supervisor's).
ENV_BIN = "TTSAN_PYTEST_BIN"
# Overrides the ttsan executable (a development build instead of the packaged one).
ENV_TTSAN = "TTSAN_BIN"
# Set by `ttsan run` for the shim: the status file, whose `tt-metal <pid> <trace>` line names the
# trace this process writes (`FILE`, or `FILE.<pid>` when another process claimed `FILE` first).
ENV_STATUS = "TTSAN_PRELOAD_STATUS"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ttsan", "ttsan, the device-memory sanitizer for tt-metal")
    group.addoption(
        "--ttsan", action="store_true", help="run the session under ttsan (re-runs pytest under `ttsan run`)"
    )
    group.addoption(
        "--ttsan-guard",
        action="append",
        default=[],
        metavar="GLOB",
        help="guard buffers with an allocation-stack frame matching GLOB (repeatable; `ttsan run --guard-stack`)",
    )
    group.addoption("--ttsan-json", metavar="FILE", help="write ttsan's JSON report, each finding with its tests")
    group.addoption("--ttsan-html", metavar="FILE", help="write ttsan's allocation map (one HTML file)")
    group.addoption(
        "--ttsan-junit",
        metavar="FILE",
        help="write JUnit XML: one test case per test, failed when ttsan found something in it",
    )
    group.addoption("--ttsan-trace", metavar="FILE", help="keep the trace at FILE (default: a temporary file)")
    group.addoption(
        "--ttsan-run-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to `ttsan run` (repeatable; e.g. --ttsan-run-arg=--guard-type=l1)",
    )
    group.addoption(
        "--ttsan-report-only",
        action="store_true",
        help="report findings in the terminal summary without failing tests or the session",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("ttsan"):
        return None
    if _abi.present():
        # Under the shim: this is the child of a supervisor, or the user ran `ttsan run -- pytest
        # --ttsan` themselves (then `ttsan run` reports, and tests still fail per finding).
        config.pluginmanager.register(Recorder(config), "ttsan-recorder")
        return None
    if os.environ.get(ENV_STATE):
        # A child without the shim: LD_PRELOAD was refused. `ttsan run` says so and exits 3.
        return None
    return Supervisor(config).run()


# --- findings -------------------------------------------------------------------------------


def _op_of(finding: dict[str, Any]) -> int | None:
    """The op index a finding happened in: its culprit's, or for a finding without a culprit (a
    leak) the op that allocated its victim (``"#N name"``)."""
    culprit = finding.get("culprit")
    if culprit and isinstance(culprit.get("op_index"), int):
        return int(culprit["op_index"])
    victim = finding.get("victim") or {}
    by = victim.get("allocated_by")
    if isinstance(by, str) and by.startswith("#"):
        head = by[1:].split(" ", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def _key(finding: dict[str, Any]) -> str:
    """What the report merges repeats by: kind, culprit op name, victim and related buffer."""
    culprit = finding.get("culprit") or {}
    victim = (finding.get("victim") or {}).get("id")
    related = (finding.get("related") or {}).get("id")
    return f"{finding.get('kind')}|{culprit.get('op')}|{victim}|{related}"


def describe(finding: dict[str, Any]) -> str:
    """One finding in a few lines, ASan-style."""
    kind = finding.get("kind", "?")
    place = finding.get("space", "?")
    if finding.get("device") is not None:
        place = f"device {finding['device']} {place}"
    if finding.get("bank") is not None:
        place += f" bank {finding['bank']}"
    if finding.get("core"):
        place += " core ({}, {})".format(*finding["core"])
    lines = [f"ttsan: {kind} on {place} at {int(finding.get('address', 0)):#010x} ({finding.get('size', 0)} bytes)"]
    culprit = finding.get("culprit")
    if culprit:
        lines.append(f"  culprit: op #{culprit.get('op_index')} {culprit.get('op')} (call {culprit.get('call')})")
    victim = finding.get("victim")
    if victim:
        name, space, size = victim.get("name"), victim.get("space"), victim.get("size")
        lines.append(f"  victim:  '{name}' (id {victim.get('id')}, {space}, {size} bytes)")
    if finding.get("mechanism"):
        lines.append(f"  mechanism: {finding['mechanism']}")
    if int(finding.get("count", 1)) > 1:
        lines.append(f"  seen {finding['count']} times")
    return "\n".join(lines)


def _analyze(exe: Path, trace: Path) -> dict[str, Any]:
    """``ttsan analyze TRACE --format json`` of the trace so far, in a process without the shim."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TTSAN_TRACE", ENV_STATUS)}
    out = subprocess.run(
        [str(exe), "analyze", str(trace), "--format", "json"], env=env, capture_output=True, text=True, check=False
    )
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(
            f"`ttsan analyze {trace}` exited {out.returncode} without a report: {out.stderr.strip() or e}"
        ) from e
    if not isinstance(report, dict):
        raise TypeError(f"`ttsan analyze {trace}` printed no report object")
    return report


# --- the child: recording -------------------------------------------------------------------


@dataclass
class _Test:
    nodeid: str
    first: int
    flagged: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)


class Recorder:
    """Runs in the process the shim records: op ranges per test and the per-test check."""

    def __init__(self, config: pytest.Config) -> None:
        self.report_only = bool(config.getoption("ttsan_report_only"))
        self.state = os.environ.get(ENV_STATE)
        override = os.environ.get(ENV_BIN) or os.environ.get(ENV_TTSAN)
        self.exe = Path(override) if override else binary()
        self.can_check = _abi.next_op is not None and _abi.flush is not None
        self.test: _Test | None = None
        # Repeats merge into one finding (same kind, op name, victim, related buffer): what each
        # key's count was, so that a test that adds occurrences of a known finding is caught too.
        self.counts: dict[str, int] = {}

    def _write(self, record: dict[str, Any]) -> None:
        if self.state:
            with open(self.state, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _next_op(self) -> int:
        return int(_abi.next_op()) if _abi.next_op is not None else -1

    def _trace(self) -> Path | None:
        """This process's trace, as the shim announced it in the status file; None before the
        first buffer (nothing recorded yet)."""
        status = os.environ.get(ENV_STATUS)
        if not status or not os.path.exists(status):
            return None
        pid = str(os.getpid())
        with open(status, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) == 3 and parts[0] == "tt-metal" and parts[1] == pid:
                    return Path(parts[2])
        return None

    def _new_findings(self, test: _Test, end: int) -> list[dict[str, Any]]:
        """Findings in the trace so far that this test caused: new ones whose op is in its range,
        and known ones seen more often than before."""
        if not self.can_check or _abi.flush is None or _abi.flush() != 0:
            return []
        trace = self._trace()
        if trace is None:
            return []
        report = _analyze(self.exe, trace)
        if report.get("status") == "error":
            raise RuntimeError("; ".join(str(e) for e in report.get("errors", [])) or "the analysis reported an error")
        found = []
        for f in report.get("findings", []):
            key, count = _key(f), int(f.get("count", 1))
            before = self.counts.get(key)
            op = _op_of(f)
            mine = before is None and op is not None and test.first <= op < end
            repeated = before is not None and count > before
            self.counts[key] = count
            if mine or repeated:
                found.append(f)
        return found

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        first = self._next_op()
        self.test = _Test(item.nodeid, first)
        yield
        test, self.test = self.test, None
        self._write(
            {
                "event": "test",
                "nodeid": test.nodeid,
                "first": test.first,
                "last": self._next_op(),
                "outcomes": test.outcomes,
                "flagged": test.flagged,
            }
        )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        test = self.test
        if test is None or test.nodeid != item.nodeid:
            return
        end = self._next_op()
        if not self.report_only and test.first >= 0:
            try:
                findings = self._new_findings(test, end)
            except (OSError, RuntimeError, TypeError) as e:
                # Never a silent pass: a check that could not run fails the phase.
                report.outcome = "failed"
                report.longrepr = f"ttsan: the per-test check could not run: {e}"
                findings = []
            if findings:
                text = "\n\n".join(describe(f) for f in findings)
                if report.passed or report.skipped:
                    report.outcome = "failed"
                    report.longrepr = (
                        f"ttsan found {len(findings)} problem(s) during this test ({report.when}):\n{text}"
                    )
                else:
                    report.sections.append(("ttsan", text))
                test.flagged.extend(_key(f) for f in findings)
        test.outcomes[report.when] = report.outcome

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._write({"event": "session", "exitstatus": int(exitstatus), "pid": os.getpid()})


# --- the supervisor: re-running under `ttsan run` and the summary -----------------------------


@dataclass
class _TestRecord:
    nodeid: str
    first: int
    last: int
    outcomes: dict[str, str]
    flagged: list[str]


def _read_state(path: Path) -> tuple[list[_TestRecord], int | None]:
    tests: list[_TestRecord] = []
    exitstatus = None
    if not path.exists():
        return tests, exitstatus
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if not raw.strip():
                continue
            r = json.loads(raw)
            if r.get("event") == "test":
                tests.append(
                    _TestRecord(r["nodeid"], int(r["first"]), int(r["last"]), dict(r["outcomes"]), list(r["flagged"]))
                )
            elif r.get("event") == "session":
                exitstatus = int(r["exitstatus"])
    return tests, exitstatus


def attribute(findings: list[dict[str, Any]], tests: list[_TestRecord]) -> list[list[str]]:
    """For each finding, the tests it is attributed to: the one whose op range holds the op it
    happened in, and any whose per-test check flagged it (a repeat in a later test)."""
    out = []
    for f in findings:
        op = _op_of(f)
        key = _key(f)
        names = [t.nodeid for t in tests if (op is not None and t.first <= op < t.last) or key in t.flagged]
        out.append(list(dict.fromkeys(names)))
    return out


class Supervisor:
    """Runs the session again under ``ttsan run`` and reports per test."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cwd = Path(config.invocation_params.dir)
        self.report_only = bool(config.getoption("ttsan_report_only"))

    def _path(self, option: str) -> Path | None:
        value = self.config.getoption(option)
        return (self.cwd / value).resolve() if value else None

    def _exe(self) -> Path:
        override = os.environ.get(ENV_TTSAN)
        exe = Path(override) if override else binary()
        if not exe.is_file():
            raise pytest.UsageError(
                f"--ttsan: the ttsan executable {exe} is missing (reinstall the ttsan package, or set {ENV_TTSAN})"
            )
        return exe

    def run(self) -> int:
        exe = self._exe()
        work = Path(tempfile.mkdtemp(prefix="ttsan-pytest-"))
        try:
            return self._run(exe, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def command(self, exe: Path, report_path: Path) -> list[str]:
        """``ttsan run [options] -- python -m pytest ARGS``: this session again, under ttsan."""
        cmd = [str(exe), "run", "--json", str(report_path)]
        trace = self._path("ttsan_trace")
        if trace:
            # Otherwise `ttsan run` keeps the trace in a directory of its own and removes it; the
            # child finds it through the status file either way.
            cmd += ["--trace", str(trace)]
        html = self._path("ttsan_html")
        if html:
            cmd += ["--html", str(html)]
        for glob in self.config.getoption("ttsan_guard") or []:
            cmd += ["--guard-stack", glob]
        cmd += list(self.config.getoption("ttsan_run_arg") or [])
        return [*cmd, "--", sys.executable, "-m", "pytest", *self.config.invocation_params.args]

    def _run(self, exe: Path, work: Path) -> int:
        report_path = work / "report.json"
        state = work / "tests.jsonl"
        env = dict(os.environ, **{ENV_STATE: str(state), ENV_BIN: str(exe)})
        rc = self._wait(subprocess.Popen(self.command(exe, report_path), cwd=self.cwd, env=env))
        tests, child_exit = _read_state(state)
        report = self._load(report_path)
        return self._summarise(rc, child_exit, report, tests)

    @staticmethod
    def _wait(child: subprocess.Popen[bytes]) -> int:
        # Ctrl-C reaches the whole process group: pytest stops, `ttsan run` reports what was
        # recorded, and so must this process, so it waits on.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)

    @staticmethod
    def _load(path: Path) -> dict[str, Any] | None:
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        return report if isinstance(report, dict) else None

    def _summarise(
        self, rc: int, child_exit: int | None, report: dict[str, Any] | None, tests: list[_TestRecord]
    ) -> int:
        write = sys.stdout.write
        width = shutil.get_terminal_size((80, 20)).columns
        if report is None:
            if child_exit is not None and rc == child_exit:
                # `ttsan run` printed why (tt-metal was never loaded): nothing was checked, and
                # the session's own status stands.
                write(_rule("ttsan: nothing checked", width))
                write("ttsan: tt-metal was never loaded by the session: no device memory to check\n")
                return child_exit
            write(_rule("ttsan: not checked", width))
            write(
                f"ttsan: `ttsan run` exited {rc} without a report (its message is above): the session was NOT checked\n"
            )
            return rc if rc != 0 else 3
        findings = list(report.get("findings", []))
        owners = attribute(findings, tests)
        for f, names in zip(findings, owners):
            f["tests"] = names
        self._outputs(report, findings, owners, tests)
        status = report.get("status")
        if status == "error":
            write(_rule("ttsan: error", width))
            for e in report.get("errors", []):
                write(f"ttsan: {e}\n")
            write("ttsan: the session was NOT checked properly\n")
            return 3
        if not findings:
            write(_rule("ttsan: clean", width))
            summary = report.get("summary", {})
            ops, allocations = summary.get("ops", 0), summary.get("allocations", 0)
            write(f"ttsan: no findings in {len(tests)} test(s) ({ops} ops, {allocations} allocations)\n")
            return child_exit if child_exit is not None else rc
        by_test: dict[str, list[dict[str, Any]]] = {}
        outside = []
        for f, names in zip(findings, owners):
            if not names:
                outside.append(f)
            for n in names:
                by_test.setdefault(n, []).append(f)
        write(_rule(f"ttsan: {len(findings)} finding(s) in {len(by_test)} test(s)", width))
        for t in tests:
            if t.nodeid not in by_test:
                continue
            failed_here = any(o == "failed" for o in t.outcomes.values())
            verdict = "REPORTED" if self.report_only else ("FAILED" if failed_here else "FOUND AFTER THE RUN")
            for f in by_test[t.nodeid]:
                culprit = (f.get("culprit") or {}).get("op", "host")
                write(f"{verdict} {t.nodeid} - ttsan: {f.get('kind')} by {culprit}\n")
        for f in outside:
            write(f"OUTSIDE ANY TEST - ttsan: {f.get('kind')} by {(f.get('culprit') or {}).get('op', 'host')}\n")
        if self.report_only:
            write("ttsan: --ttsan-report-only: findings do not fail the session\n")
            return child_exit if child_exit is not None else 0
        if child_exit:
            return child_exit
        # Every test passed in pytest's eyes (a finding the per-test check did not see, or one
        # outside any test): the session still fails.
        return int(pytest.ExitCode.TESTS_FAILED)

    def _outputs(
        self, report: dict[str, Any], findings: list[dict[str, Any]], owners: list[list[str]], tests: list[_TestRecord]
    ) -> None:
        json_path = self._path("ttsan_json")
        if json_path:
            report = dict(report, findings=findings)
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        junit_path = self._path("ttsan_junit")
        if junit_path:
            junit_path.parent.mkdir(parents=True, exist_ok=True)
            ET.ElementTree(junit(findings, owners, tests)).write(junit_path, encoding="utf-8", xml_declaration=True)


def _rule(title: str, width: int) -> str:
    """A pytest-style section line: ``==== title ====``."""
    fill = max(width - len(title) - 2, 4)
    left = fill // 2
    return f"{'=' * left} {title} {'=' * (fill - left)}\n"


def junit(findings: list[dict[str, Any]], owners: list[list[str]], tests: list[_TestRecord]) -> ET.Element:
    """JUnit XML of ttsan's verdict per test: a test case per test, with a failure per finding
    attributed to it; findings outside any test as one more test case."""
    suite = ET.Element("testsuite", name="ttsan")
    failures = 0
    cases: list[tuple[str, list[dict[str, Any]]]] = [
        (t.nodeid, [f for f, o in zip(findings, owners) if t.nodeid in o]) for t in tests
    ]
    outside = [f for f, o in zip(findings, owners) if not o]
    if outside:
        cases.append(("ttsan::outside-any-test", outside))
    for nodeid, found in cases:
        module, _, name = nodeid.rpartition("::")
        case = ET.SubElement(suite, "testcase", classname=module or "ttsan", name=name or nodeid)
        for f in found:
            failures += 1
            fail = ET.SubElement(case, "failure", message=f"ttsan: {f.get('kind')}", type=str(f.get("kind")))
            fail.text = describe(f)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    return suite

//! `ttsan run --ttnn-ops`: the Python module that marks ttnn ops through ttnn's operation hooks,
//! exercised against a stand-in `ttnn` package (the real one needs CPython 3.10/3.12 and a
//! device) that calls the hooks the way ttnn's decorators do.

use std::io::Write;
use std::process::Command;
use ttsan_events::trace::read_all;
use ttsan_events::Event;

const BIN: &str = env!("CARGO_BIN_EXE_ttsan");

const FAKE_TTNN: &str = r#"
import contextlib
PRE, POST = [], []

@contextlib.contextmanager
def register_pre_operation_hook(hook):
    PRE.append(hook); yield; PRE.pop()

@contextlib.contextmanager
def register_post_operation_hook(hook):
    POST.append(hook); yield; POST.pop()

class Op:
    def __init__(self, name):
        self.python_fully_qualified_name = name
    def __call__(self, fail=False):
        for h in PRE:
            assert h(self, (), {}) is None
        if fail:
            raise RuntimeError("op failed")
        for h in POST:
            assert h(self, (), {}, None) is None
"#;

const SCRIPT: &str = r#"
import ttnn, ttsan_ttnn_ops
assert ttsan_ttnn_ops.install()
ttnn.Op("ttnn.from_torch")()          # a host transfer: not an op
ttnn.Op("ttnn.matmul")()
try:
    ttnn.Op("ttnn.add")(fail=True)    # raises before its post hook: closed by the next op
except RuntimeError:
    pass
ttnn.Op("ttnn.softmax")()
ttsan_ttnn_ops.pytest_configure(None) # pytest mode: fixtures are not ops...
ttnn.Op("ttnn.in_fixture")()
ttsan_ttnn_ops.pytest_runtest_call(None)
ttnn.Op("ttnn.in_test")()             # ...test bodies are
ttsan_ttnn_ops.pytest_runtest_teardown(None, None)
ttnn.Op("ttnn.in_teardown")()
class BufferType:
    def __init__(self, name):
        self.name = name
class MemoryConfig:
    buffer_type = BufferType("DRAM")
class Tensor:
    def memory_config(self):
        return MemoryConfig()
    def buffer_address(self):
        return 0x100040
# No buffer is live (no tt-metal here): the shim refuses, and says so.
assert ttsan_ttnn_ops.guard(Tensor(), "weights.sinks") is False
print("SCRIPT DONE")
"#;

#[test]
fn ttnn_ops_are_marked_through_the_operation_hooks() {
    let test = "ttnn_ops_are_marked_through_the_operation_hooks";
    if Command::new("python3").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: CI=true but python3 is missing");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test} because python3 is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pkgs/ttnn")).unwrap();
    std::fs::write(dir.path().join("pkgs/ttnn/__init__.py"), FAKE_TTNN).unwrap();
    std::fs::write(dir.path().join("script.py"), SCRIPT).unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("PYTHONPATH", dir.path().join("pkgs"))
        .env_remove("TTSAN_OPTIONS")
        .args(["run", "--ttnn-ops", "--trace", "t.ttsan", "--", "python3", "script.py"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SCRIPT DONE"), "{stderr}");
    // No tt-metal, no allocation: never a clean report.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("ops were marked but tt-metal was never loaded"), "{stderr}");

    let (events, stats) = read_all(dir.path().join("t.ttsan")).unwrap();
    assert!(!stats.is_damaged(), "{stats:?}");
    let ops: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::OpBegin(o) => Some(format!("{} {}", o.index, o.name)),
            Event::OpEnd { index } => Some(format!("end {index}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        ["0 ttnn.matmul", "end 0", "1 ttnn.add", "end 1", "2 ttnn.softmax", "end 2", "3 ttnn.in_test", "end 3"]
    );
}

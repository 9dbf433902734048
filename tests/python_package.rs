//! The Python package end to end: `pip install <checkout>` into a fresh virtual environment
//! (building with this machine's Rust toolchain), `pytest --ttsan` on python/examples against the
//! real libtt_metal.so in mock mode, then the built wheel installed into a second fresh virtual
//! environment whose PATH holds no cargo or rustc, and the same session again.
//!
//! Needs python3 with venv and pip, network access to the package index (setuptools-rust,
//! pytest), g++ and the ttnn wheel's libraries (scripts/fetch-ttnn). Without them the test skips
//! loudly, and fails instead under CI=true.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tt_metal_sys::RuntimeRoot;

const PACKAGE_TEST: &str = "pip_install_then_pytest_ttsan_and_the_wheel_without_rust";

fn skip(test: &str, why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but {why}");
    }
    // Straight to the stderr handle: the test harness captures eprintln! of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test} because {why}");
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command with an empty environment but `PATH`, `HOME` and the given variables: the venvs'
/// commands must not depend on what the test harness exports (cargo's `LD_LIBRARY_PATH`, ...).
fn clean(program: &Path, path: &OsString, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", path).env("HOME", home).env("PYTHONDONTWRITEBYTECODE", "1");
    if let Ok(ci) = std::env::var("CI") {
        c.env("CI", ci);
    }
    c
}

fn run(c: &mut Command, what: &str) -> Output {
    c.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"))
}

fn must(c: &mut Command, what: &str) -> Output {
    let o = run(c, what);
    assert!(o.status.success(), "{what} failed: {}", text(&o));
    o
}

/// The real interpreter behind `python3` (pyenv's shim needs its own PATH; a venv does not).
fn interpreter() -> Option<PathBuf> {
    let o = Command::new("python3").args(["-c", "import sys, venv, ensurepip; print(sys.executable)"]).output().ok()?;
    o.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// `pytest ARGS python/examples` of the venv at `venv`, from a fresh directory.
fn pytest(venv: &Path, env_path: &OsString, home: &Path, root: &Path, cwd: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(cwd).unwrap();
    let mut c = clean(&venv.join("bin/pytest"), env_path, home);
    c.current_dir(cwd)
        .env("TTSAN_TTNN_ROOT", root)
        .args(["-p", "no:cacheprovider"])
        .args(args)
        .arg(repo().join("python/examples"));
    run(&mut c, &format!("pytest {}", args.join(" ")))
}

const PLANTED: &str = "python/examples/test_examples.py::test_planted_cb_clash";

/// `pytest --ttsan` on the examples: the planted test fails because of ttsan's finding, the
/// others pass, the summary names the test, the JSON and JUnit outputs attribute the finding.
fn check_session(venv: &Path, env_path: &OsString, home: &Path, root: &Path, dir: &Path) {
    let json = dir.join("report.json");
    let junit = dir.join("junit.xml");
    let o = pytest(
        venv,
        env_path,
        home,
        root,
        &dir.join("run"),
        &["--ttsan", "--ttsan-json", json.to_str().unwrap(), "--ttsan-junit", junit.to_str().unwrap()],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(out.contains("1 failed, 4 passed"), "{}", text(&o));
    // Failed by the per-test check, in pytest's own report.
    assert!(out.contains("ttsan found 1 problem(s) during this test (call)"), "{}", text(&o));
    assert!(out.contains("culprit: op #3 example::bad_program"), "{}", text(&o));
    assert!(out.contains("FAILED ") && out.contains("test_examples.py::test_planted_cb_clash"), "{}", text(&o));
    // ttsan's own report of the whole session, then the per-test summary.
    assert!(out.contains("SUMMARY: ttsan: findings: 1 finding(s) (1 cb-clash)"), "{}", text(&o));
    assert!(out.contains("ttsan: 1 finding(s) in 1 test(s)"), "{}", text(&o));
    assert!(out.contains(&format!("FAILED {PLANTED} - ttsan: cb-clash by example::bad_program")), "{}", text(&o));

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["kind"], "cb-clash");
    assert_eq!(findings[0]["culprit"]["op"], "example::bad_program");
    assert_eq!(findings[0]["tests"], serde_json::json!([PLANTED]));

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="5" failures="1""#), "{xml}");
    assert!(xml.contains(r#"name="test_planted_cb_clash"><failure message="ttsan: cb-clash""#), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    match Command::new("xmllint").arg("--version").output() {
        Ok(_) => {
            let xsd = repo().join("tests/schemas/junit-10.xsd");
            must(Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&junit), "xmllint");
        }
        Err(_) => skip(
            PACKAGE_TEST,
            "xmllint is missing: the JUnit output was not validated against tests/schemas/junit-10.xsd",
        ),
    }
}

#[test]
fn pip_install_then_pytest_ttsan_and_the_wheel_without_rust() {
    let root = RuntimeRoot::locate(None);
    if let Err(e) = root.check() {
        return skip(PACKAGE_TEST, &format!("the tt-metal library is unusable: {e} (run scripts/fetch-ttnn)"));
    }
    let root = root.path().to_path_buf();
    let Some(python) = interpreter() else {
        return skip(PACKAGE_TEST, "python3 with venv and ensurepip is not available");
    };
    if Command::new("g++").arg("--version").output().is_err() {
        return skip(PACKAGE_TEST, "g++ is missing (the examples compile their mock-device helper)");
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // The build shares the target directory of this checkout, so a second run rebuilds nothing.
    let target_dir = tmp.parent().unwrap().to_path_buf();
    let work = tmp.join("python-package");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| work.clone());
    let full_path = std::env::var_os("PATH").unwrap_or_default();

    // 1. A fresh venv, pytest from the index (no network: skip), then `pip install <checkout>`.
    let src = work.join("venv-src");
    must(clean(&python, &full_path, &home).args(["-m", "venv"]).arg(&src), "python3 -m venv");
    let src_path =
        std::env::join_paths(std::iter::once(src.join("bin")).chain(std::env::split_paths(&full_path))).unwrap();
    let o = run(clean(&src.join("bin/pip"), &src_path, &home).args(["install", "-q", "pytest"]), "pip install pytest");
    if !o.status.success() {
        return skip(PACKAGE_TEST, &format!("pip cannot install pytest (no package index?): {}", text(&o)));
    }
    let mut install = clean(&src.join("bin/pip"), &src_path, &home);
    install.args(["install", "--no-cache-dir"]).arg(repo()).env("CARGO_TARGET_DIR", &target_dir);
    for k in ["CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"] {
        if let Some(v) = std::env::var_os(k) {
            install.env(k, v);
        }
    }
    must(&mut install, "pip install <checkout>");
    let v = must(clean(&src.join("bin/ttsan"), &src_path, &home).arg("--version"), "ttsan --version");
    assert_eq!(stdout(&v).trim(), "ttsan 0.1.0");

    // The plugin's own unit tests (attribution, JUnit, the API without the shim).
    let o = run(
        clean(&src.join("bin/pytest"), &src_path, &home)
            .current_dir(&work)
            .args(["-p", "no:cacheprovider", "-q"])
            .arg(repo().join("python/tests")),
        "pytest python/tests",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("10 passed"), "{}", text(&o));

    // Without --ttsan every example passes (the API does nothing without the shim).
    let o = pytest(&src, &src_path, &home, &root, &work.join("plain"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("5 passed"), "{}", text(&o));

    check_session(&src, &src_path, &home, &root, &work.join("src-session"));

    // Report-only: the finding is in the summary, no test fails, the session passes; the trace
    // is kept where asked.
    let kept = work.join("kept.ttsan");
    let o = pytest(
        &src,
        &src_path,
        &home,
        &root,
        &work.join("report-only"),
        &["--ttsan", "--ttsan-report-only", "--ttsan-trace", kept.to_str().unwrap()],
    );
    assert!(std::fs::metadata(&kept).map(|m| m.len() > 0).unwrap_or(false), "no trace at {}", kept.display());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("5 passed"), "{}", text(&o));
    assert!(
        stdout(&o).contains(&format!("REPORTED {PLANTED} - ttsan: cb-clash by example::bad_program")),
        "{}",
        text(&o)
    );

    // Without the planted test the session is clean.
    let o = pytest(&src, &src_path, &home, &root, &work.join("clean"), &["--ttsan", "-k", "not planted"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("4 passed, 1 deselected"), "{}", text(&o));
    assert!(stdout(&o).contains("ttsan: no findings in 4 test(s)"), "{}", text(&o));

    // Wrapped by hand (`ttsan run -- pytest --ttsan`): no second run, tests still fail per finding
    // and `ttsan run`'s report is the summary.
    let by_hand = work.join("by-hand");
    std::fs::create_dir_all(&by_hand).unwrap();
    let o = run(
        clean(&src.join("bin/ttsan"), &src_path, &home)
            .current_dir(&by_hand)
            .env("TTSAN_TTNN_ROOT", &root)
            .args(["run", "--"])
            .arg(src.join("bin/pytest"))
            .args(["-p", "no:cacheprovider", "--ttsan", "-k", "planted"])
            .arg(repo().join("python/examples")),
        "ttsan run -- pytest --ttsan",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains("1 failed, 4 deselected"), "{}", text(&o));
    assert!(stdout(&o).contains("ttsan found 1 problem(s) during this test (call)"), "{}", text(&o));
    assert!(stdout(&o).contains("SUMMARY: ttsan: findings: 1 finding(s) (1 cb-clash)"), "{}", text(&o));
    assert!(!stdout(&o).contains("finding(s) in 1 test(s)"), "no supervisor in a hand-wrapped run: {}", text(&o));

    // 2. The wheel: Python-independent, with the executable and the shim inside the package.
    let wheels = work.join("wheels");
    let mut wheel = clean(&src.join("bin/pip"), &src_path, &home);
    wheel
        .args(["wheel", "--no-deps", "--no-cache-dir", "-w"])
        .arg(&wheels)
        .arg(repo())
        .env("CARGO_TARGET_DIR", &target_dir);
    for k in ["CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"] {
        if let Some(v) = std::env::var_os(k) {
            wheel.env(k, v);
        }
    }
    must(&mut wheel, "pip wheel <checkout>");
    let built: Vec<PathBuf> = std::fs::read_dir(&wheels).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(built.len(), 1, "{built:?}");
    let whl = &built[0];
    let name = whl.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("ttsan-0.1.0-py3-none-linux_x86_64"), "{name}");
    let listing = must(
        clean(&src.join("bin/python"), &src_path, &home)
            .args([
                "-c",
                "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print('\\n'.join(z.namelist())); \
             print(next(z.read(n).decode() for n in z.namelist() if n.endswith('entry_points.txt')))",
            ])
            .arg(whl),
        "listing the wheel",
    );
    let listing = stdout(&listing);
    for f in [
        "ttsan/_bin/ttsan",
        "ttsan/_bin/libttsan_preload.so",
        "ttsan/pytest_plugin.py",
        "pytest11",
        "ttsan = ttsan.__main__:main",
    ] {
        assert!(listing.contains(f), "{f} missing from the wheel:\n{listing}");
    }

    // 3. Another fresh venv, nothing of Rust reachable: PATH without cargo/rustc, a HOME without
    //    ~/.cargo or ~/.rustup, no CARGO_HOME / RUSTUP_HOME (clean() sets neither).
    let bare = work.join("venv-wheel");
    let bare_home = work.join("home");
    std::fs::create_dir_all(&bare_home).unwrap();
    let system: Vec<PathBuf> = ["/usr/local/bin", "/usr/bin", "/bin"].iter().map(PathBuf::from).collect();
    for tool in ["cargo", "rustc", "rustup"] {
        assert!(
            !system.iter().any(|d| d.join(tool).exists()),
            "{tool} is in the system PATH: the no-Rust check would prove nothing"
        );
    }
    let bare_path = std::env::join_paths(std::iter::once(bare.join("bin")).chain(system)).unwrap();
    must(clean(&python, &bare_path, &bare_home).args(["-m", "venv"]).arg(&bare), "python3 -m venv (no Rust)");
    let mut install = clean(&bare.join("bin/pip"), &bare_path, &bare_home);
    install.args(["install", "-q", "--no-cache-dir"]).arg(whl).arg("pytest");
    must(&mut install, "pip install <wheel> pytest (no Rust)");
    let v = must(clean(&bare.join("bin/ttsan"), &bare_path, &bare_home).arg("--version"), "ttsan --version (no Rust)");
    assert_eq!(stdout(&v).trim(), "ttsan 0.1.0");
    check_session(&bare, &bare_path, &bare_home, &root, &work.join("wheel-session"));
}

/// What `ttsan run -- python3 SCRIPT` runs: the Python API and the C ABI's `ttsan_next_op` and
/// `ttsan_flush` against the mock device, checking the trace while the program still runs.
const ABI_SCRIPT: &str = r#"
import ctypes, json, os, subprocess, sys
import ttsan
from ttsan import _abi

helper_path, ttsan_bin = sys.argv[1], sys.argv[2]
if not ttsan.active():
    print("SHIM absent", _abi.next_op is None, _abi.flush is None, ttsan.guard(1, "x"))
    sys.exit(0)
helper = ctypes.CDLL(helper_path)  # RTLD_LOCAL, as `import ttnn` loads tt-metal
helper.mm_alloc.restype = ctypes.c_void_p
helper.mm_alloc.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int]
helper.mm_address.restype = ctypes.c_uint64
helper.mm_address.argtypes = [ctypes.c_void_p]
helper.mm_free.argtypes = [ctypes.c_void_p]
helper.mm_place_cb.argtypes = [ctypes.c_uint64, ctypes.c_uint64]
assert helper.mm_open() == 0
before = _abi.next_op()
activation = helper.mm_alloc(256 << 10, 2048, 1)
with ttsan.op("check::first"):
    pass
first = _abi.next_op() - 1
with ttsan.op("check::bad_program"):
    helper.mm_place_cb(helper.mm_address(activation), 4096)
    helper.mm_release_cbs()
end = _abi.next_op()
assert _abi.flush() == 0
trace = None
with open(os.environ["TTSAN_PRELOAD_STATUS"]) as f:
    for line in f:
        tag, pid, rest = (line.rstrip("\n").split(" ", 2) + ["", ""])[:3]
        if tag == "tt-metal" and pid == str(os.getpid()):
            trace = rest
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
out = subprocess.run([ttsan_bin, "analyze", trace, "--format", "json"], env=env, capture_output=True, text=True)
report = json.loads(out.stdout)
print("RANGE", before, first, end)
print("FINDINGS", json.dumps([[f["kind"], f["culprit"]["op_index"]] for f in report["findings"]]))
helper.mm_free(activation)
helper.mm_close()
"#;

#[test]
fn ops_are_numbered_and_the_trace_is_flushed_while_the_program_runs() {
    let test = "ops_are_numbered_and_the_trace_is_flushed_while_the_program_runs";
    let root = RuntimeRoot::locate(None);
    if let Err(e) = root.check() {
        return skip(test, &format!("the tt-metal library is unusable: {e} (run scripts/fetch-ttnn)"));
    }
    let root = root.path().to_path_buf();
    if Command::new("python3").arg("--version").output().is_err() {
        return skip(test, "python3 is missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("libmock_mesh.so");
    let lib = root.join("ttnn/build/lib");
    let cc = Command::new("g++")
        .args(["-std=c++20", "-O1", "-shared", "-fPIC", "-o"])
        .arg(&helper)
        .arg(repo().join("python/examples/mock_mesh.cpp"))
        .arg(format!("-L{}", lib.display()))
        .arg("-ltt_metal")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", root.join("ttnn.libs").display()))
        .output();
    match cc {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("g++ failed: {}", text(&o)),
        Err(e) => return skip(test, &format!("g++ is missing: {e}")),
    }
    let script = dir.path().join("abi.py");
    std::fs::write(&script, ABI_SCRIPT).unwrap();
    let bin = env!("CARGO_BIN_EXE_ttsan");
    let python = |wrapped: bool| {
        let mut c = if wrapped { Command::new(bin) } else { Command::new("python3") };
        if wrapped {
            c.args(["run", "--", "python3"]);
        }
        c.current_dir(dir.path())
            .arg(&script)
            .arg(&helper)
            .arg(bin)
            .env("PYTHONPATH", repo().join("python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("TT_METAL_RUNTIME_ROOT", root.join("ttnn"))
            .env("TT_METAL_SHM_TRACKING_DISABLED", "1")
            .env("OMPI_MCA_btl", "self")
            .env("TT_METAL_CACHE", dir.path().join("cache"))
            .env("TT_METAL_LOGGER_LEVEL", "error")
            .env_remove("TTSAN_OPTIONS")
            .env_remove("LD_PRELOAD");
        run(&mut c, "python3 abi.py")
    };
    // Without the shim the API has nothing to call and says so.
    let o = python(false);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("SHIM absent True True False"), "{}", text(&o));
    // Under it: two ops, numbered 0 and 1 (the allocation between opens none); the clash placed
    // in the second is in the trace, with that op, before the program ends.
    let o = python(true);
    assert_eq!(o.status.code(), Some(1), "the clash is also in ttsan run's final report: {}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("RANGE 0 0 2"), "{}", text(&o));
    assert!(out.contains(r#"FINDINGS [["cb-clash", 1]]"#), "{}", text(&o));
}

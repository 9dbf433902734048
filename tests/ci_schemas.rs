//! The CI artifacts against their published schemas: JUnit XML against the vendored Jenkins
//! `junit-10.xsd` (xmllint), SARIF against the vendored OASIS SARIF 2.1.0 schema (Python's
//! jsonschema, Draft 4). scripts/test installs both tools; without them these tests skip,
//! except under CI=true where a missing validator is a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{stderr, test_path, ttsan, write_trace};
use ttsan_events::Event;
use ttsan_test_support::fixtures;

/// Whether `cmd args` runs; under CI its absence fails the test instead of skipping it.
fn have(cmd: &str, args: &[&str]) -> bool {
    let ok = Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success());
    if !ok {
        let why = format!("`{cmd} {}` does not run here (scripts/test installs it)", args.join(" "));
        support::skip("ci_schemas", &why);
    }
    ok
}

/// Every kind of CI outcome, each as (name, trace events, extra flags).
fn scenarios(dir: &Path) -> Vec<(String, PathBuf, Vec<String>)> {
    let supp = dir.join("s.supp");
    std::fs::write(&supp, "kind=use-after-free reason=\"known: <tt-metal#1> & co\"\nop=ttnn.nothing reason=unused\n")
        .unwrap();
    let mut hook = fixtures::clean();
    hook.insert(1, Event::Mark { text: ttsan_sanitizer::ci::TEST_PANIC_MARK.into() });
    let mut cases: Vec<(String, Vec<Event>, Vec<String>)> =
        fixtures::all().into_iter().map(|(name, events)| (name.to_string(), events, Vec::new())).collect();
    cases.push((
        "suppressed".into(),
        fixtures::use_after_free(),
        vec!["--suppressions".into(), supp.display().to_string()],
    ));
    cases.push(("leaks".into(), fixtures::leak(), vec!["--leaks".into()]));
    cases.push(("internal".into(), hook, Vec::new()));
    cases.push(("no-start".into(), fixtures::clean()[1..].to_vec(), Vec::new()));
    let mut out: Vec<(String, PathBuf, Vec<String>)> = cases
        .into_iter()
        .map(|(name, events, flags)| {
            let path = dir.join(format!("{name}.ttsan"));
            write_trace(&path, &events);
            (name, path, flags)
        })
        .collect();
    let garbage = dir.join("garbage.ttsan");
    std::fs::write(&garbage, b"NOTATRACE-------").unwrap();
    out.push(("unreadable".into(), garbage, Vec::new()));
    out
}

/// Runs `ttsan ci` on every scenario; returns (name, junit path, sarif path).
fn artifacts(dir: &Path) -> Vec<(String, PathBuf, PathBuf)> {
    let baseline = dir.join("base.json");
    let mut out = Vec::new();
    for (name, trace, flags) in scenarios(dir) {
        let junit = dir.join(format!("{name}.xml"));
        let sarif = dir.join(format!("{name}.sarif"));
        let mut cmd = ttsan();
        cmd.arg("ci").arg(&trace).arg("--junit").arg(&junit).arg("--sarif").arg(&sarif).args(&flags);
        if name == "oob-write" {
            cmd.arg("--write-baseline").arg(&baseline);
        }
        let o = cmd.output().unwrap();
        assert!(matches!(o.status.code(), Some(0..=3)), "{name}: {}", stderr(&o));
        out.push((name, junit, sarif));
    }
    // A baselined run, last, once the baseline exists.
    let junit = dir.join("baselined.xml");
    let sarif = dir.join("baselined.sarif");
    let o = ttsan()
        .arg("ci")
        .arg(dir.join("oob-write.ttsan"))
        .arg("--baseline")
        .arg(&baseline)
        .arg("--junit")
        .arg(&junit)
        .arg("--sarif")
        .arg(&sarif)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    out.push(("baselined".into(), junit, sarif));
    out
}

#[test]
fn junit_output_validates_against_junit_10_xsd() {
    if !have("xmllint", &["--version"]) {
        return;
    }
    let dir = support::tempdir();
    let xsd = test_path("schemas/junit-10.xsd");
    for (name, junit, _) in artifacts(dir.path()) {
        let o = Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&junit).output().unwrap();
        assert!(o.status.success(), "{name}: {}\n{}", stderr(&o), std::fs::read_to_string(&junit).unwrap());
    }
    // The schema is not vacuous: a test case without a name fails.
    let broken = dir.path().join("broken.xml");
    let text = std::fs::read_to_string(dir.path().join("use-after-free.xml")).unwrap();
    std::fs::write(&broken, text.replacen(r#"classname="ttsan.run" name="#, r#"classname="ttsan.run" nom="#, 1))
        .unwrap();
    let o = Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&broken).output().unwrap();
    assert!(!o.status.success(), "a testcase without a name must not validate");
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    if !have("python3", &["-c", "import jsonschema"]) {
        return;
    }
    let dir = support::tempdir();
    let schema = test_path("schemas/sarif-2.1.0-rtm.5.json");
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  jsonschema.Draft4Validator.check_schema(schema)\n\
                  v = jsonschema.Draft4Validator(schema)\n\
                  bad = 0\n\
                  for path in sys.argv[2:]:\n\
                  \x20   for e in v.iter_errors(json.load(open(path))):\n\
                  \x20       bad += 1\n\
                  \x20       print(path, list(e.absolute_path), e.message)\n\
                  sys.exit(1 if bad else 0)\n";
    let all = artifacts(dir.path());
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .args(all.iter().map(|(_, _, sarif)| sarif))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    // The validator is not vacuous: a log missing a required property fails.
    let broken = dir.path().join("broken.sarif");
    let mut log: serde_json::Value = serde_json::from_slice(&std::fs::read(&all[0].2).unwrap()).unwrap();
    log["runs"][0]["tool"]["driver"].as_object_mut().unwrap().remove("name");
    std::fs::write(&broken, log.to_string()).unwrap();
    let o = Command::new("python3").arg("-c").arg(script).arg(&schema).arg(&broken).output().unwrap();
    assert!(!o.status.success(), "a driver without a name must not validate");
}

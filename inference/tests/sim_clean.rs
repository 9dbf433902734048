//! Clean runs produce zero findings on every mesh shape in every detection mode.

mod sim_support;

use sim_support::{analyze, describe, mesh, workload, SHAPES};
use ttsan_inference::sim::DetectMode;
use ttsan_shim::events::Event;

#[test]
fn clean_workload_has_no_findings_anywhere() {
    for (rows, cols) in SHAPES {
        let mut baseline = None;
        for mode in DetectMode::ALL {
            let (mut m, rec) = mesh(rows, cols, mode, Vec::new());
            let out = workload(&mut m).unwrap_or_else(|e| panic!("{rows}x{cols} {mode}: {e}"));
            let values = m.to_host(&out).unwrap();
            m.finish().unwrap();
            let events = rec.take();
            // Every mode is the same run: the same values come out.
            match &baseline {
                None => baseline = Some(values),
                Some(b) => assert_eq!(&values, b, "{rows}x{cols} {mode} computed different values"),
            }
            if mode == DetectMode::None {
                assert!(events.is_empty(), "detect none must record nothing, got {} events", events.len());
                continue;
            }
            let writes = events.iter().filter(|e| matches!(e, Event::Write(_))).count();
            let digests = events.iter().filter(|e| matches!(e, Event::GuardDigest(_))).count();
            assert_eq!(writes > 0, mode.writes(), "{mode}: {writes} writes");
            assert_eq!(digests > 0, mode.digests(), "{mode}: {digests} digests");
            let a = analyze(&events);
            assert!(a.errors.is_empty(), "{rows}x{cols} {mode}: {:?}", a.errors);
            assert!(a.warnings.is_empty(), "{rows}x{cols} {mode}: {:?}", a.warnings);
            assert!(a.findings.is_empty(), "{rows}x{cols} {mode}:\n{}", describe(&a.findings));
            assert!(a.summary.ops > 20, "{rows}x{cols}: only {} ops", a.summary.ops);
            if mode.digests() {
                // Every buffer is guarded; a clean run changes none across an op that does not
                // write it. First digests are sent only for buffers an op writes again after
                // registration, and none of those changed: no comparison took place.
                assert!(a.summary.guards >= 5, "{mode}: {} guards", a.summary.guards);
                assert_eq!(a.summary.digests, 0, "{mode}: a guarded buffer changed");
            }
        }
    }
}

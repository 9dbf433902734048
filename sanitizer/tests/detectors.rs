//! Each detector on its hand-built fixture: kind, culprit, victim and relation.

use ttsan_events::Event;
use ttsan_sanitizer::finding::Relation;
use ttsan_sanitizer::{Analysis, AnalysisOptions, Analyzer, FindingKind};
use ttsan_test_support::fixtures;

fn analyze(events: &[Event], options: AnalysisOptions) -> Analysis {
    let mut a = Analyzer::new(options);
    for e in events {
        a.feed(e);
    }
    a.finish(None)
}

fn only(events: &[Event]) -> ttsan_sanitizer::Finding {
    let analysis = analyze(events, AnalysisOptions::default());
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    assert_eq!(analysis.findings.len(), 1, "{:#?}", analysis.findings);
    analysis.findings.into_iter().next().unwrap()
}

#[test]
fn oob_write_names_the_overrun_buffer_and_the_victim() {
    let f = only(&fixtures::oob_write());
    assert_eq!(f.kind, FindingKind::OobWrite);
    assert_eq!(f.culprit.as_ref().unwrap().op, "ttnn.all_gather");
    assert_eq!(f.victim.as_ref().unwrap().name, "layer1.attn.sinks");
    let rel = f.related.as_ref().unwrap();
    assert_eq!((rel.buffer.name.as_str(), rel.relation, rel.distance), ("x.gathered", Relation::PastEnd, 0));
    assert_eq!((f.bank, f.address, f.size), (Some(0), fixtures::DRAM_BASE + 4096, 1024));
}

#[test]
fn use_after_free_names_the_freed_scratch_and_the_new_owner() {
    let f = only(&fixtures::use_after_free());
    assert_eq!(f.kind, FindingKind::UseAfterFree);
    let c = f.culprit.as_ref().unwrap();
    assert_eq!((c.op.as_str(), c.op_index, c.call), ("ttnn.experimental.reduce_scatter_minimal_async", 2, 2));
    assert_eq!(f.victim.as_ref().unwrap().name, "layer1.attn.sinks");
    let rel = f.related.as_ref().unwrap();
    assert_eq!(rel.relation, Relation::StaleAddress);
    assert_eq!(rel.buffer.name, "experts.tp_allreduce.rs_intermediate");
    assert_eq!(rel.buffer.freed_by.as_deref(), Some("#1 ttnn.deallocate"));
    assert!(f.mechanism.contains("stale address"), "{}", f.mechanism);
}

#[test]
fn foreign_write_names_the_undeclared_victim() {
    let f = only(&fixtures::foreign_write());
    assert_eq!(f.kind, FindingKind::ForeignWrite);
    assert_eq!(f.culprit.as_ref().unwrap().op, "ttnn.matmul");
    assert_eq!(f.victim.as_ref().unwrap().name, "layer0.attn.kv_cache");
    assert_eq!((f.bank, f.size), (Some(5), 512));
    // The culprit's own output sits 6 KiB below the damage on that bank.
    let rel = f.related.as_ref().unwrap();
    assert_eq!((rel.buffer.name.as_str(), rel.relation, rel.distance), ("a.out", Relation::PastEnd, 4096 + 256));
}

#[test]
fn wild_write_has_no_victim() {
    let f = only(&fixtures::wild_write());
    assert_eq!(f.kind, FindingKind::WildWrite);
    assert!(f.victim.is_none());
    assert_eq!(f.culprit.as_ref().unwrap().op, "ttnn.embedding");
}

#[test]
fn guard_corruption_blames_the_first_op_after_which_the_digest_changed() {
    let f = only(&fixtures::guard_corruption());
    assert_eq!(f.kind, FindingKind::GuardCorruption);
    let c = f.culprit.as_ref().unwrap();
    assert_eq!((c.op.as_str(), c.op_index), ("ttnn.experimental.reduce_scatter_minimal_async", 2));
    assert_eq!(f.victim.as_ref().unwrap().name, "layer1.attn.sinks");
    assert_eq!(f.pages, vec![3, 15]);
    // Page 3 is on bank 3 in the first row of pages; 15 on bank 3, second row.
    assert_eq!((f.bank, f.address), (Some(3), fixtures::DRAM_BASE + 2048));
    let rel = f.related.as_ref().unwrap();
    assert_eq!(rel.relation, Relation::StaleAddress);
    assert_eq!(rel.buffer.name, "experts.tp_allreduce.rs_intermediate");
}

#[test]
fn overlap_between_live_buffers() {
    let f = only(&fixtures::overlap());
    assert_eq!(f.kind, FindingKind::Overlap);
    assert_eq!(f.victim.as_ref().unwrap().name, "weights.w1");
    assert_eq!(f.related.as_ref().unwrap().buffer.name, "w1.tilized");
    assert_eq!(f.culprit.as_ref().unwrap().op, "ttnn.to_layout");
}

#[test]
fn cb_clash_uses_tt_metal_wording() {
    let f = only(&fixtures::cb_clash());
    assert_eq!(f.kind, FindingKind::CbClash);
    assert_eq!(f.culprit.as_ref().unwrap().op, "ttnn.matmul");
    assert_eq!(f.victim.as_ref().unwrap().name, "layer0.mlp.l1_act");
    assert_eq!(f.core, Some([0, 0]));
    assert!(
        f.mechanism.starts_with(
            "Statically allocated circular buffers in program #0 ttnn.matmul clash with L1 buffers on core range"
        ),
        "{}",
        f.mechanism
    );
}

#[test]
fn double_and_unknown_frees() {
    let f = only(&fixtures::double_free());
    assert_eq!(f.kind, FindingKind::DoubleFree);
    assert_eq!(f.victim.as_ref().unwrap().name, "tmp");
    assert_eq!(f.culprit.as_ref().unwrap().op_index, 1);
    let f = only(&fixtures::unknown_free());
    assert_eq!(f.kind, FindingKind::UnknownFree);
    assert!(f.mechanism.contains("id 42"));
}

#[test]
fn leaks_only_when_asked() {
    assert!(analyze(&fixtures::leak(), AnalysisOptions::default()).findings.is_empty());
    let a = analyze(&fixtures::leak(), AnalysisOptions { leaks: true, ..AnalysisOptions::default() });
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].kind, FindingKind::Leak);
    assert_eq!(a.findings[0].culprit.as_ref().unwrap().op, "ttnn.add");
}

#[test]
fn clean_trace_is_clean() {
    let a = analyze(&fixtures::clean(), AnalysisOptions { leaks: true, ..AnalysisOptions::default() });
    assert!(a.errors.is_empty() && a.warnings.is_empty(), "{:?} {:?}", a.errors, a.warnings);
    assert_eq!(a.findings.len(), 1, "only the weight leaks: {:#?}", a.findings);
    assert_eq!(a.findings[0].victim.as_ref().unwrap().name, "a");
    let a = analyze(&fixtures::clean(), AnalysisOptions::default());
    assert!(a.findings.is_empty());
    assert_eq!(a.summary.digests, 1);
}

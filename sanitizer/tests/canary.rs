//! Canary digests (watched free memory): how the analyzer judges a change, and what it leaves alone.

mod support;

use support::findings_of;
use ttsan_events::{CanaryDigest, Event, Role, Space, Unit};
use ttsan_sanitizer::finding::Relation;
use ttsan_sanitizer::{Finding, FindingKind};
use ttsan_test_support::fixtures::{TraceBuilder, DRAM_BASE};

fn findings(events: Vec<Event>) -> Vec<Finding> {
    findings_of(&events)
}

/// Two pages on bank 0 of chip 0 from `address`, across `op`; `changed` pages differ.
fn canary(address: u64, op: Option<u64>, changed: &[bool], reason: &str) -> Event {
    let before = vec![[0u8; 16]; changed.len()];
    let after = changed.iter().map(|&c| [u8::from(c); 16]).collect();
    Event::CanaryDigest(CanaryDigest {
        device: 0,
        space: Space::Dram,
        unit: Unit::Bank(0),
        address,
        page_size: 2048,
        len: 2048 * changed.len() as u64,
        after_op: op,
        reason: reason.into(),
        buffer: None,
        before,
        after,
    })
}

/// An op's output of one page per bank at DRAM_BASE; its end on bank 0 is DRAM_BASE + 2048.
fn with_output(b: &mut TraceBuilder, name: &str) -> u64 {
    let op = b.op(name, &[], &[], &[]);
    b.alloc(1, "out", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, Some(op));
    op
}

#[test]
fn a_change_right_past_the_ops_output_is_an_oob_write_by_it() {
    let mut b = TraceBuilder::wormhole(1, 1);
    let op = with_output(&mut b, "ttnn.sparse_matmul");
    b.push(canary(DRAM_BASE + 2048, Some(op), &[true, false], "past-end"));
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = &f[0];
    assert_eq!(f.kind, FindingKind::OobWrite);
    assert_eq!(f.culprit.as_ref().map(|c| c.op.as_str()), Some("ttnn.sparse_matmul"));
    assert!(f.victim.is_none(), "free memory has no victim");
    let r = f.related.as_ref().unwrap();
    assert_eq!((r.relation, r.distance, r.buffer.name.as_str()), (Relation::PastEnd, 0, "out"));
    assert_eq!((f.address, f.size, f.bank), (DRAM_BASE + 2048, 2048, Some(0)), "only the changed page");
    assert!(
        f.mechanism.starts_with("op #0 ttnn.sparse_matmul overran the end of its output buffer 'out'"),
        "{}",
        f.mechanism
    );
    assert!(f.mechanism.contains("at least one byte of each changed page"), "{}", f.mechanism);
}

#[test]
fn a_change_in_a_freed_buffers_bytes_is_a_use_after_free_naming_it() {
    let mut b = TraceBuilder::wormhole(1, 1);
    let old = b.op("ttnn.matmul", &[], &[], &[]);
    b.alloc(7, "old.act", Role::Activation, Space::Dram, DRAM_BASE + 0x8000, 12 * 2048, 2048, Some(old));
    b.end(old);
    b.free(7, None);
    // A different op, whose only buffer is far away, changes the freed bytes.
    let op = b.op("ttnn.add", &[], &[], &[]);
    b.alloc(8, "add.out", Role::Activation, Space::Dram, DRAM_BASE + 0x40_0000, 12 * 2048, 2048, Some(op));
    b.push(canary(DRAM_BASE + 0x8000, Some(op), &[true], "quarantine"));
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = &f[0];
    assert_eq!(f.kind, FindingKind::UseAfterFree, "{}", f.mechanism);
    let r = f.related.as_ref().unwrap();
    assert_eq!((r.relation, r.buffer.name.as_str()), (Relation::StaleAddress, "old.act"));
    assert!(r.buffer.freed && r.buffer.allocated_by.as_deref() == Some("#0 ttnn.matmul"), "{r:?}");
    assert!(f.victim.is_none());
    assert_eq!(f.culprit.as_ref().map(|c| c.op.as_str()), Some("ttnn.add"), "the op it changed across");
}

#[test]
fn a_change_far_from_everything_is_a_wild_write_by_the_op() {
    let mut b = TraceBuilder::wormhole(1, 1);
    let op = with_output(&mut b, "ttnn.matmul");
    b.push(canary(DRAM_BASE + (256 << 20), Some(op), &[false, true], "free"));
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, FindingKind::WildWrite);
    assert_eq!(f[0].culprit.as_ref().map(|c| c.op_index), Some(0));
    assert_eq!(f[0].address, DRAM_BASE + (256 << 20) + 2048, "the second page changed");
}

#[test]
fn unchanged_canaries_and_the_ops_own_bytes_are_not_findings() {
    let mut b = TraceBuilder::wormhole(1, 1);
    let op = with_output(&mut b, "ttnn.matmul");
    b.push(canary(DRAM_BASE + 2048, Some(op), &[false, false], "past-end"));
    // A temporary of the op, freed as it ends: the op owned those bytes.
    b.alloc(2, "tmp", Role::Activation, Space::Dram, DRAM_BASE + 0x8000, 12 * 2048, 2048, Some(op));
    b.free(2, Some(op));
    b.push(canary(DRAM_BASE + 0x8000, Some(op), &[true], "quarantine"));
    // A live buffer is the guards' business, not the canary's.
    b.push(canary(DRAM_BASE, Some(op), &[true], "free"));
    b.end(op);
    assert!(findings(b.finish()).is_empty());
}

#[test]
fn in_both_modes_the_canary_confirms_the_write_finding() {
    let mut b = TraceBuilder::wormhole(1, 1);
    let op = with_output(&mut b, "ttnn.sparse_matmul");
    b.write_dram(0, 0, DRAM_BASE, 2048 + 512, Some(op));
    b.push(canary(DRAM_BASE + 2048, Some(op), &[true], "past-end"));
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, FindingKind::OobWrite);
    assert!(f[0].confirmed_by_digest);
    assert_eq!(f[0].size, 512, "the write's exact bytes, not the canary's page");
}

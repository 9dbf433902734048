//! Each attribution relation and its sentence.

mod support;

use support::findings_of;
use ttsan_events::{CoreCoord, Event, Role, Space};
use ttsan_sanitizer::finding::Relation;
use ttsan_sanitizer::{Finding, FindingKind};
use ttsan_test_support::fixtures::{TraceBuilder, DRAM_BASE};

fn findings(events: Vec<Event>) -> Vec<Finding> {
    findings_of(&events)
}

#[test]
fn peer_address_when_the_culprits_buffer_lives_on_another_chip() {
    let mut b = TraceBuilder::wormhole(1, 2);
    b.alloc(1, "layer1.attn.sinks", Role::Weight, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.alloc_on(1, 2, "combine.peer_buffer", DRAM_BASE + 0x10000, 12 * 2048);
    b.alloc_on(0, 3, "combine.local_out", DRAM_BASE + 0x20000, 12 * 2048);
    let op = b.op("ttnn.all_to_all_combine", &[], &[2, 3], &[]);
    // Chip 0 writes at an address that is valid only on chip 1, where nothing lives on chip 0.
    b.write_dram(0, 2, DRAM_BASE + 0x10000, 256, Some(op));
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = &f[0];
    assert_eq!(f.kind, FindingKind::WildWrite);
    let rel = f.related.as_ref().unwrap();
    assert_eq!(
        (rel.relation, rel.peer_device, rel.buffer.name.as_str()),
        (Relation::PeerAddress, Some(1), "combine.peer_buffer")
    );
    assert!(
        f.mechanism
            .contains("lives at these addresses on device 1: op #0 ttnn.all_to_all_combine wrote to the wrong chip"),
        "{}",
        f.mechanism
    );
}

#[test]
fn before_start_for_an_underrun() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "victim", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.alloc(2, "gap.filler", Role::Activation, Space::Dram, DRAM_BASE + 2048, 12 * 1024, 1024, None);
    let op = b.op("ttnn.slice", &[], &[], &[]);
    b.alloc(3, "out", Role::Activation, Space::Dram, DRAM_BASE + 4096, 12 * 2048, 2048, Some(op));
    b.write_dram(0, 1, DRAM_BASE + 1024, 512, Some(op));
    b.end(op);
    let f = findings(b.finish());
    let f = &f[0];
    assert_eq!(f.kind, FindingKind::ForeignWrite);
    let rel = f.related.as_ref().unwrap();
    // The damage [1024, 1536) ends 2560 bytes before out's start at 4096.
    assert_eq!((rel.relation, rel.distance, rel.buffer.name.as_str()), (Relation::BeforeStart, 2560, "out"));
    assert!(f.mechanism.contains("wrote 2560 bytes before the start of its output buffer 'out'"), "{}", f.mechanism);
}

#[test]
fn overlap_relation_when_the_culprits_output_shares_the_victims_bytes() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "weights.sinks", Role::Weight, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.guard(1);
    b.digest(1, 0, None, &[0; 12]);
    let op = b.op("ttnn.concat", &[], &[], &[]);
    // The allocator (or a bug in it) put the output on top of the sinks.
    b.alloc(2, "concat.out", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, Some(op));
    b.end(op);
    let mut changed = [0u8; 12];
    changed[0] = 1;
    b.digest(1, 0, Some(op), &changed);
    let f = findings(b.finish());
    let gc = f.iter().find(|f| f.kind == FindingKind::GuardCorruption).unwrap_or_else(|| panic!("{f:#?}"));
    let rel = gc.related.as_ref().unwrap();
    assert_eq!((rel.relation, rel.buffer.name.as_str()), (Relation::Overlap, "concat.out"));
    assert!(
        gc.mechanism.contains("shares these bytes with 'weights.sinks' (weight): the two allocations overlap"),
        "{}",
        gc.mechanism
    );
    assert!(f.iter().any(|f| f.kind == FindingKind::Overlap));
}

#[test]
fn declared_when_no_buffer_of_the_culprit_is_near() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "layer0.kv", Role::KvCache, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.alloc_sharded(2, "l1.act", &[CoreCoord::new(0, 0)], 0x10_0000, 2048);
    let op = b.op("ttnn.softmax", &[2], &[], &[]);
    b.write_dram(0, 0, DRAM_BASE, 64, Some(op));
    b.end(op);
    let f = findings(b.finish());
    let rel = f[0].related.as_ref().unwrap();
    assert_eq!((rel.relation, rel.buffer.name.as_str()), (Relation::Declared, "l1.act"));
    assert!(f[0].mechanism.contains("where none of its own buffers is (it declares 'l1.act')"), "{}", f[0].mechanism);
}

#[test]
fn repeats_on_many_chips_merge_into_one_finding() {
    let mut b = TraceBuilder::wormhole(1, 8);
    b.alloc(1, "sinks", Role::Weight, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    let op = b.op("ttnn.all_gather", &[], &[], &[]);
    for d in 0..8 {
        b.write_dram(d, 0, DRAM_BASE, 32, Some(op));
    }
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].count, 8);
    assert_eq!(f[0].devices, (0..8).collect::<Vec<_>>());
}

#[test]
fn host_writes_to_live_buffers_are_fine_but_not_to_freed_ones() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "w", Role::Weight, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.write_dram(0, 0, DRAM_BASE, 2048, None);
    b.free(1, None);
    b.write_dram(0, 0, DRAM_BASE, 16, None);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, FindingKind::UseAfterFree);
    assert!(f[0].culprit.is_none());
    assert!(f[0].mechanism.starts_with("the host wrote to the stale address of 'w'"), "{}", f[0].mechanism);
}

#[test]
fn writing_an_input_is_a_foreign_write_in_writes_mode_as_in_digests_mode() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "x", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.alloc(2, "layer1.mlp.w", Role::Weight, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, None);
    let op = b.op("ttnn.matmul", &[1, 2], &[], &[]);
    b.write_dram(0, 0, DRAM_BASE + 2048, 32, Some(op));
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, FindingKind::ForeignWrite);
    assert_eq!(f[0].victim.as_ref().unwrap().name, "layer1.mlp.w");
    assert_eq!(
        f[0].mechanism,
        "op #0 ttnn.matmul wrote into its input 'layer1.mlp.w' (weight), which it declares only as read"
    );
}

#[test]
fn one_cb_clash_per_program_and_buffer_with_the_whole_region() {
    use ttsan_events::CoreRange;
    let mut b = TraceBuilder::wormhole(1, 1);
    let base = ttsan_events::Geometry::wormhole_b0().l1_unreserved_base;
    let all = CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(7, 7));
    b.alloc_sharded(1, "l1.buf", &[CoreCoord::new(2, 3)], base + 672, 4096);
    let op = b.op("ttnn.silu", &[], &[], &[]);
    b.cb(10, op, all, base, 4096);
    b.cb(11, op, all, base + 4096, 4096);
    b.end(op);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].count, 1);
    assert_eq!(f[0].core, Some([2, 3]));
    assert!(f[0].mechanism.ends_with(&format!("core range {{[(x=0,y=0) - (x=7,y=7)]}}. L1 buffer allocated at {} and static circular buffer region ends at {}", base + 672, base + 8192)), "{}", f[0].mechanism);
}

#[test]
fn digest_change_across_an_unrelated_op_is_blamed_on_the_late_async_writer() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "experts.out", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    let rs = b.op("ttnn.experimental.reduce_scatter_minimal_async", &[1], &[], &[]);
    b.alloc(
        2,
        "layer0.experts.tp_allreduce.rs_intermediate",
        Role::CclScratch,
        Space::Dram,
        DRAM_BASE + 2048,
        12 * 2048,
        2048,
        Some(rs),
    );
    b.end(rs);
    let teardown = b.op("ttnn.deallocate", &[2], &[], &[]);
    b.free(2, Some(teardown));
    b.end(teardown);
    b.alloc(3, "layer1.attn.sinks", Role::Weight, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, None);
    b.guard(3);
    b.digest(3, 0, None, &[0; 12]);
    // QKV's own buffers are 1 MiB away: nothing of it explains the damage.
    b.alloc(4, "layer1.attn.wqkv", Role::Weight, Space::Dram, DRAM_BASE + 0x10_0000, 12 * 2048, 2048, None);
    let qkv = b.op("ttnn.linear", &[4], &[], &[]);
    b.alloc(5, "qkv.out", Role::Activation, Space::Dram, DRAM_BASE + 0x20_0000, 12 * 2048, 2048, Some(qkv));
    b.end(qkv);
    let mut changed = [0u8; 12];
    changed[5] = 7;
    b.digest(3, 0, Some(qkv), &changed);
    let f = findings(b.finish());
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = &f[0];
    assert_eq!(f.kind, FindingKind::GuardCorruption);
    let c = f.culprit.as_ref().unwrap();
    assert_eq!((c.op.as_str(), c.op_index), ("ttnn.experimental.reduce_scatter_minimal_async", rs));
    let rel = f.related.as_ref().unwrap();
    assert_eq!(
        (rel.relation, rel.buffer.name.as_str()),
        (Relation::StaleAddress, "layer0.experts.tp_allreduce.rs_intermediate")
    );
    assert!(f.mechanism.contains("changed across op #2 ttnn.linear, which does not write it"), "{}", f.mechanism);
    // Digests place damage to the page: the span of changed pages, "at least" one byte each.
    // Page 5 of the 12 interleaved pages is the first (and only) page on bank 5.
    let page5 = DRAM_BASE + 2048;
    let span = format!("within [{:#x}, {:#x}) on bank 5", page5, page5 + 2048);
    assert!(f.mechanism.contains(&span), "{span}: {}", f.mechanism);
    assert!(f.mechanism.contains("at least one byte of each changed page was written"), "{}", f.mechanism);
    assert!(f.mechanism.contains("and none of its buffers explains it"), "{}", f.mechanism);
    assert!(f.mechanism.ends_with("op #0 ttnn.experimental.reduce_scatter_minimal_async, which used it, wrote there after it was freed (a write that landed late)"), "{}", f.mechanism);
}

#[test]
fn digest_change_next_to_the_ops_own_output_stays_with_that_op() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "old.scratch", Role::CclScratch, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, None);
    b.free(1, None);
    b.alloc(2, "w", Role::Weight, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, None);
    b.guard(2);
    b.digest(2, 0, None, &[0; 12]);
    let op = b.op("ttnn.concat", &[], &[], &[]);
    b.alloc(3, "concat.out", Role::Activation, Space::Dram, DRAM_BASE, 12 * 2048, 2048, Some(op));
    b.end(op);
    let mut changed = [0u8; 12];
    changed[0] = 1;
    b.digest(2, 0, Some(op), &changed);
    let f = findings(b.finish());
    let c = f[0].culprit.as_ref().unwrap();
    assert_eq!(c.op, "ttnn.concat");
    let rel = f[0].related.as_ref().unwrap();
    assert_eq!((rel.relation, rel.distance, rel.buffer.name.as_str()), (Relation::PastEnd, 0, "concat.out"));
}

#[test]
fn an_input_next_to_the_damage_does_not_explain_it() {
    let mut b = TraceBuilder::wormhole(1, 1);
    b.alloc(1, "sinks", Role::Weight, Space::Dram, DRAM_BASE, 12 * 2048, 2048, None);
    b.alloc(2, "wqkv", Role::Weight, Space::Dram, DRAM_BASE + 2048, 12 * 2048, 2048, None);
    let op = b.op("ttnn.linear", &[2], &[], &[]);
    b.alloc(3, "qkv.out", Role::Activation, Space::Dram, DRAM_BASE + 0x10_0000, 12 * 2048, 2048, Some(op));
    b.write_dram(0, 0, DRAM_BASE, 64, Some(op));
    b.end(op);
    let f = findings(b.finish());
    let rel = f[0].related.as_ref().unwrap();
    assert_eq!(rel.buffer.name, "qkv.out", "{:#?}", f[0]);
    assert_eq!(rel.relation, Relation::BeforeStart);
}

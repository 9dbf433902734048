//! Every address the simulator uses is the allocator model's, and circular buffers that
//! reach an L1 buffer fail as tt-metal fails.

mod sim_support;

use sim_support::{analyze, ints, mesh, mesh_arch, op_index, replicated, workload};
use std::collections::HashMap;
use ttsan_inference::alloc::{AllocRequest, Allocator, AllocatorConfig};
use ttsan_inference::sim::ops::{self, Out};
use ttsan_inference::sim::{DType, DetectMode, SimError, TensorSpec};
use ttsan_sanitizer::FindingKind;
use ttsan_shim::events::{Arch, Event, Layout, Role};

/// Replays the trace's allocations and frees through a fresh allocator model and checks
/// that each buffer got exactly the address the model gives.
fn replay(arch: Arch, chips: u32, events: &[Event]) -> usize {
    let mut model = Allocator::new(AllocatorConfig::mock(arch, chips).expect("measured mesh"));
    let mut live = HashMap::new();
    let mut checked = 0;
    for e in events {
        match e {
            Event::BufferAlloc(a) => {
                assert_eq!(a.device, None, "mesh buffers are the same on every chip");
                let req = match &a.layout {
                    Layout::Interleaved => AllocRequest::interleaved(a.space, a.size, a.page_size),
                    Layout::Sharded(s) => AllocRequest::sharded(a.space, a.size, a.page_size, s.units.len() as u32),
                };
                let want = model.allocate(&req).expect("the model accepts what the simulator allocated");
                assert_eq!(a.address, want, "buffer '{}' (#{})", a.name, a.id);
                live.insert(a.id, (a.space, a.address));
                checked += 1;
            }
            Event::BufferFree(f) => {
                let (space, addr) = live.remove(&f.id).expect("freed buffers were allocated");
                model.deallocate(space, addr);
            }
            _ => {}
        }
    }
    checked
}

#[test]
fn every_address_is_the_allocator_models() {
    for (arch, rows, cols) in
        [(Arch::WormholeB0, 1, 1), (Arch::WormholeB0, 1, 8), (Arch::WormholeB0, 4, 8), (Arch::Blackhole, 1, 1)]
    {
        let (mut m, rec) = mesh_arch(arch, rows, cols, DetectMode::Writes, Vec::new());
        let out = workload(&mut m).unwrap();
        m.deallocate(&out).unwrap();
        m.release_op_cache().unwrap();
        m.finish().unwrap();
        let events = rec.take();
        let n = replay(arch, rows * cols, &events);
        assert!(n > 60, "{arch} {rows}x{cols}: only {n} allocations");
    }
}

#[test]
fn circular_buffers_reaching_an_l1_buffer_fail_like_tt_metal() {
    let (mut m, rec) = mesh(1, 8, DetectMode::Writes, Vec::new());
    let g = m.geometry().clone();
    // An L1 tensor that leaves less than one tile per bank above the CB base.
    let banks = g.l1_banks() as usize;
    let pages_per_bank = ((g.l1_size - g.l1_unreserved_base) / 2048) as usize;
    let big = TensorSpec::new(&[1, 1, 32, 32 * banks * pages_per_bank], DType::Bf16).l1();
    let wall = m.allocate(&big, "l1.wall", Role::Activation).unwrap();
    let x = replicated(&mut m, &ints(&[1, 1, 32, 32], 1), "x", Role::Activation).unwrap();
    let err = ops::silu(&mut m, &x, &Out::dram()).unwrap_err();
    let events = rec.snapshot();
    let program = op_index(&events, "ttnn.silu", 1);
    let grid = g.worker_grid;
    // cb_in0 and cb_out: two bf16 tiles each.
    let region_end = g.l1_unreserved_base + 4 * 2048;
    let want = format!(
        "Statically allocated circular buffers in program {program} clash with L1 buffers on core range \
         [(x=0,y=0) - (x={},y={})]. L1 buffer allocated at {} and static circular buffer region ends at {region_end}",
        grid.x - 1,
        grid.y - 1,
        wall.address()
    );
    assert_eq!(err.to_string(), want);
    assert!(matches!(err, SimError::CbClash { .. }));
    // The failed op's output was released with it, and the mesh keeps working.
    m.deallocate(&wall).unwrap();
    let y = ops::silu(&mut m, &x, &Out::dram()).unwrap();
    m.deallocate(&y).unwrap();
    m.finish().unwrap();
    let a = analyze(&rec.take());
    // The sanitizer reports the program's whole CB region once, with the numbers tt-metal gives.
    assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
    let f = &a.findings[0];
    assert_eq!(f.kind, FindingKind::CbClash);
    assert_eq!(f.culprit.as_ref().map(|c| c.op_index), Some(program));
    assert_eq!(f.victim.as_ref().map(|v| v.name.as_str()), Some("l1.wall"));
    let tail =
        format!("L1 buffer allocated at {} and static circular buffer region ends at {region_end}", wall.address());
    assert!(f.mechanism.ends_with(&tail), "{}", f.mechanism);
}

#[test]
fn l1_outputs_also_clash_with_their_own_program() {
    // An L1 output allocated low enough meets the op's own circular buffers.
    let (mut m, _) = mesh(1, 1, DetectMode::Writes, Vec::new());
    let g = m.geometry().clone();
    let banks = g.l1_banks() as usize;
    let pages_per_bank = ((g.l1_size - g.l1_unreserved_base) / 2048) as usize - 1;
    let spec = TensorSpec::new(&[1, 1, 32, 32 * banks * pages_per_bank], DType::Bf16);
    let x = m.allocate(&spec, "x", Role::Activation).unwrap();
    let err = ops::silu(&mut m, &x, &Out::l1()).unwrap_err();
    assert!(err.to_string().starts_with("Statically allocated circular buffers in program 0 clash"), "{err}");
}

//! Plan mode: the same op sequence and allocations as the data path on the same config and mesh
//! (one code path), its L1 peak at full size, and a circular-buffer region that does not fit
//! ending the plan with the simulator's error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::random_weights;
use ttsan_inference::gpt_oss::run::{model_passes, plan, PlanOptions, PlanOutcome};
use ttsan_inference::sim::ccl::Topology;
use ttsan_inference::sim::{DetectMode, Mesh, MeshConfig};
use ttsan_sanitizer::{Analysis, AnalysisOptions, Analyzer, FindingKind};
use ttsan_shim::events::{Arch, Event, Role, Space};
use ttsan_shim::MemoryRecorder;

const RS: &str = "ttnn.experimental.reduce_scatter_minimal_async";
const AG: &str = "ttnn.experimental.all_gather_async";

fn plan_opts(preset: &str, mesh: (u32, u32), seq_len: usize, decode_steps: usize) -> PlanOptions {
    PlanOptions {
        config: GptOssConfig::preset(preset).unwrap(),
        arch: Arch::WormholeB0,
        rows: mesh.0,
        cols: mesh.1,
        seq_len,
        decode_steps,
        command: "plan test".into(),
    }
}

fn planned(o: &PlanOptions) -> (PlanOutcome, Vec<Event>) {
    let rec = Arc::new(MemoryRecorder::new());
    let out = plan(o, rec.clone(), &|_| {}).unwrap();
    (out, rec.take())
}

fn analyse(events: &[Event]) -> Analysis {
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in events {
        analyzer.feed(e);
    }
    analyzer.finish(None)
}

/// A program's circular buffers: (name, address, bytes per core).
type Cbs = Vec<(String, u64, u64)>;

/// The circular buffers of each call of each op, in call order.
fn cbs_by_op(events: &[Event]) -> BTreeMap<String, Vec<Cbs>> {
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut calls: BTreeMap<u64, Cbs> = BTreeMap::new();
    for e in events {
        match e {
            Event::OpBegin(b) => {
                names.insert(b.index, b.name.clone());
                calls.insert(b.index, Vec::new());
            }
            Event::CbAlloc(cb) => {
                let op = cb.op.expect("every circular buffer belongs to a program");
                calls.get_mut(&op).unwrap().push((cb.name.clone(), cb.address, cb.size));
            }
            _ => {}
        }
    }
    let mut by_op: BTreeMap<String, Vec<Cbs>> = BTreeMap::new();
    for (index, cbs) in calls {
        by_op.entry(names[&index].clone()).or_default().push(cbs);
    }
    by_op
}

/// The buffers of `roles` as (name, role, address, size).
fn buffers(events: &[Event], roles: &[Role]) -> BTreeSet<(String, String, u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(b) if roles.contains(&b.role) => {
                Some((b.name.clone(), format!("{:?}", b.role), b.address, b.size))
            }
            _ => None,
        })
        .collect()
}

/// What a plan must reproduce of a data run: every op (name, args, inputs, outputs, scratch,
/// nesting), every allocation and free (name, role, space, address, size, owning op), every
/// circular buffer and op-cache declaration, in order. Writes, digests and marks are left out:
/// a plan writes nothing.
fn placement(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::BufferAlloc(_)
                    | Event::BufferFree(_)
                    | Event::CbAlloc(_)
                    | Event::CbDeallocAll { .. }
                    | Event::OpBegin(_)
                    | Event::OpEnd { .. }
                    | Event::OpDeclare { .. }
            )
        })
        .map(|e| format!("{e:?}"))
        .collect()
}

/// The same passes with real weights on a data mesh: kernels run, values are written.
fn data_passes(config: &GptOssConfig, mesh: (u32, u32), seq_len: usize, steps: usize) -> Vec<Event> {
    let rec = Arc::new(MemoryRecorder::new());
    let mesh_config = MeshConfig::new(Arch::WormholeB0, mesh.0, mesh.1).detect(DetectMode::Writes);
    let mut m = Mesh::new(mesh_config, rec.clone()).unwrap();
    let mut ccl = ttsan_inference::gpt_oss::ccl::manager(&mut m, Topology::Ring, 1).unwrap();
    let weights = random_weights(config, 7);
    model_passes(&mut m, &mut ccl, &weights, seq_len, steps, &|_| {}).unwrap();
    m.finish().unwrap();
    rec.take()
}

/// Plan mode and data mode run one code path: on the tiny config, on 1x8 (low-latency experts)
/// and 4x8 (throughput experts over the rows), a prefill that is not whole tiles and two decode
/// steps, the plan's whole op sequence and every allocation (size, role, address) are the data
/// run's, record for record.
#[test]
fn plan_and_data_mode_place_the_same_ops_and_buffers() {
    let config = GptOssConfig::preset("tiny-tt").unwrap();
    for mesh in [(1, 8), (4, 8)] {
        let mut o = plan_opts("tiny-tt", mesh, 40, 2);
        o.config = config.clone();
        let (out, plan_events) = planned(&o);
        assert_eq!((out.out_of_memory.as_deref(), out.program_error.as_deref()), (None, None));
        let data_events = data_passes(&config, mesh, 40, 2);
        let (plan, data) = (placement(&plan_events), placement(&data_events));
        assert!(plan.len() > 1000, "{mesh:?}: {} records", plan.len());
        if let Some(i) = plan.iter().zip(&data).position(|(p, d)| p != d) {
            panic!("{mesh:?}: record {i} differs:\n plan: {}\n data: {}", plan[i], data[i]);
        }
        assert_eq!(plan.len(), data.len(), "{mesh:?}: the plan and the data run hold as many records");
        let ops: BTreeSet<&str> = plan_events
            .iter()
            .filter_map(|e| match e {
                Event::OpBegin(b) => Some(b.name.as_str()),
                _ => None,
            })
            .collect();
        for op in ["ttnn.experimental.nlp_create_qkv_heads", "ttnn.fill_cache", RS, AG] {
            assert!(ops.contains(op), "{mesh:?}: {op} in {ops:?}");
        }
        let throughput = ["ttnn.all_to_all_dispatch", "ttnn.all_to_all_combine"];
        assert_eq!(throughput.iter().all(|op| ops.contains(op)), mesh.0 > 1, "{mesh:?}: {ops:?}");
        let analysis = analyse(&plan_events);
        assert!(analysis.errors.is_empty() && analysis.findings.is_empty(), "{analysis:?}");
    }
}

/// gpt-oss-120b at full size on 4x8 (prefill 4096, 2 decode steps): the programs of the
/// matmuls, the SDPA and every collective place circular buffers, the CCL manager's semaphores
/// sit at the top of L1, and the L1 peak says how far each side reaches and what is left.
#[test]
fn full_size_plan_has_circular_buffers_semaphores_and_an_l1_peak() {
    let (out, events) = planned(&plan_opts("gpt-oss-120b", (4, 8), 4096, 2));
    assert_eq!((out.out_of_memory.as_deref(), out.program_error.as_deref()), (None, None));
    let cbs = cbs_by_op(&events);
    for op in [
        "ttnn.matmul",
        "ttnn.linear",
        "ttnn.transformer.scaled_dot_product_attention",
        "ttnn.transformer.scaled_dot_product_attention_decode",
        RS,
        AG,
        "ttnn.all_reduce",
        "ttnn.all_to_all_dispatch",
        "ttnn.all_to_all_combine",
        "ttnn.all_gather",
    ] {
        let calls = cbs.get(op).unwrap_or_else(|| panic!("{op} is not in the plan"));
        assert!(calls.iter().all(|c| !c.is_empty()), "every {op} program places circular buffers");
    }
    // One page of 4096 uint32 token ids, twice, is the largest request.
    let largest = cbs.values().flatten().flatten().map(|c| c.2).max().unwrap();
    assert_eq!(largest, 2 * 4096 * 4);
    let sems = buffers(&events, &[Role::Semaphore]);
    assert!(sems.iter().any(|s| s.0 == "ccl.rs0.sem0"), "{sems:?}");

    let l1 = &out.l1;
    assert!(l1.capacity > 1_000_000, "{l1:?}");
    assert_eq!(l1.op, "ttnn.embedding", "the token ids' row-major page is the widest: {l1:?}");
    assert!(l1.circular_buffers > largest && l1.circular_buffers < l1.capacity, "{l1:?}");
    // The semaphores (the manager's 12 and the op caches', 32 bytes each) and the decode
    // path's L1 activations (its norms and the decode attention's outputs, one tile of rows).
    let l1_activations =
        events.iter().any(|e| matches!(e, Event::BufferAlloc(b) if b.space == Space::L1 && b.role == Role::Activation));
    assert!(l1_activations, "decode keeps activations in L1");
    assert!(l1.buffers > 12 * 32 && l1.buffers < l1.capacity / 10, "{l1:?}");
    assert!(l1.headroom <= l1.capacity - l1.circular_buffers - 12 * 32, "{l1:?}");
    let analysis = analyse(&events);
    assert!(analysis.errors.is_empty() && analysis.findings.is_empty(), "{analysis:?}");
}

/// A prompt whose token ids need more L1 than a core has: the embedding's circular buffers
/// reach past the CCL semaphores at the top of L1 (a clash, which the analyzer reports as
/// tt-metal words it, culprit the embedding, victim a semaphore), or past the end of L1; either
/// way the plan stops with the simulator's error, not a panic, and the trace stays readable.
#[test]
fn circular_buffers_that_do_not_fit_end_the_plan_with_the_devices_error() {
    // The embedding's other circular buffers and the L1 between the unreserved base (where its
    // first circular buffer sits) and the CCL manager's semaphores, from a small plan of the
    // same config and mesh.
    let (small, events) = planned(&plan_opts("tiny-tt", (1, 8), 32, 0));
    let embedding = cbs_by_op(&events)["ttnn.embedding"][0].clone();
    let others: u64 = embedding[1..].iter().map(|c| c.2).sum();
    let lowest = buffers(&events, &[Role::Semaphore]).iter().filter(|b| b.0.starts_with("ccl.")).map(|b| b.2).min();
    let below_semaphores = lowest.unwrap() - embedding[0].1;
    // The smallest whole-tile prompt whose ids (two pages of 4-byte ids) reach the semaphores.
    let tokens = ((below_semaphores - others) / 8 + 1).div_ceil(32) * 32;
    assert!(8 * tokens + others <= small.l1.capacity, "a clash, not beyond L1");
    let (out, events) = planned(&plan_opts("tiny-tt", (1, 8), tokens as usize, 0));
    let msg = out.program_error.expect("the embedding's circular buffers clash");
    assert!(msg.starts_with("Statically allocated circular buffers in program"), "{msg}");
    assert!(msg.contains("clash with L1 buffers"), "{msg}");
    assert_eq!(out.out_of_memory, None);
    let analysis = analyse(&events);
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    let clash = analysis.findings.iter().find(|f| f.kind == FindingKind::CbClash).expect("a cb-clash finding");
    assert_eq!(clash.culprit.as_ref().map(|c| c.op.as_str()), Some("ttnn.embedding"));
    let victim = clash.victim.as_ref().map(|v| v.name.as_str()).unwrap_or_default();
    assert!(victim.starts_with("ccl."), "{victim}");

    // Twice the tokens: past the end of L1 altogether.
    let (out, _) = planned(&plan_opts("tiny-tt", (1, 8), 2 * tokens as usize, 0));
    let msg = out.program_error.expect("beyond L1");
    assert!(msg.contains("beyond max L1 size"), "{msg}");
}

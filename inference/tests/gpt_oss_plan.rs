//! Plan mode's L1: the circular buffers of every program and the CCL semaphores, compared with
//! the data path on the same config and mesh, its L1 peak, and a circular-buffer region that does
//! not fit ending the plan with the simulator's error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::run::{plan, run, Mode, Module, PlanOptions, PlanOutcome, RunOptions};
use ttsan_sanitizer::{Analysis, AnalysisOptions, Analyzer, FindingKind};
use ttsan_shim::events::{Arch, Event, Role};
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

fn data_run(o: &RunOptions) -> Vec<Event> {
    let rec = Arc::new(MemoryRecorder::new());
    run(o, rec.clone(), &|_| {}).unwrap();
    rec.take()
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

/// The tiny config's prefill on 1x8 as a plan and as the data path (whole model, TP reduced by
/// `ttnn.all_reduce` as the plan's low-latency experts do): the first call of each op that both
/// run with the same inputs places the same circular buffers (names, addresses, sizes), the
/// CCL manager's semaphores have the same names and addresses, and the op-cache scratch of the
/// collectives (intermediates, internal semaphores) is the same set of buffers.
#[test]
fn plan_places_the_data_paths_circular_buffers_and_semaphores_on_1x8() {
    let (out, plan_events) = planned(&plan_opts("tiny-tt", (1, 8), 32, 0));
    assert_eq!((out.out_of_memory.as_deref(), out.program_error.as_deref()), (None, None));
    let data_events = data_run(&RunOptions {
        mode: Some(Mode::Prefill),
        seq_len: 32,
        modules: Some(vec![Module::Model]),
        fix_all_reduce: true,
        ..RunOptions::default()
    });
    let (plan_cbs, data_cbs) = (cbs_by_op(&plan_events), cbs_by_op(&data_events));
    // The ops whose first call reads the same tensors in both: the token ids and the row-major
    // embedding table (pages that are not tiles), the fused QKV linear with its bias, the SDPA
    // with sinks, the norms, the router's top-k and softmax, and the collectives.
    for op in [
        "ttnn.embedding",
        "ttnn.rms_norm",
        "ttnn.linear",
        "ttnn.transformer.scaled_dot_product_attention",
        RS,
        AG,
        "ttnn.topk",
        "ttnn.softmax",
        "ttnn.all_reduce",
    ] {
        let p = plan_cbs.get(op).unwrap_or_else(|| panic!("{op} is not in the plan"));
        let d = data_cbs.get(op).unwrap_or_else(|| panic!("{op} is not in the data run"));
        assert!(!p[0].is_empty(), "{op} has a program with circular buffers");
        assert_eq!(p[0], d[0], "{op}: the plan's circular buffers are the data path's");
    }
    // Row-major pages: the ids' 32 uint32 and a 512-wide bf16 table row, two pages each.
    let embedding = &plan_cbs["ttnn.embedding"][0];
    assert_eq!(embedding.iter().map(|c| c.2).collect::<Vec<_>>(), [2 * 32 * 4, 2 * 512 * 2, 2 * 2048]);
    assert_eq!(plan_cbs[RS][0].iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["cb_in0", "cb_inter", "cb_out"]);

    let sems = |events: &[Event]| -> BTreeSet<_> {
        buffers(events, &[Role::Semaphore]).into_iter().filter(|b| b.0.starts_with("ccl.")).collect()
    };
    let plan_sems = sems(&plan_events);
    assert_eq!(plan_sems.len(), 12, "2 x 3 reduce-scatter, 2 x 2 all-gather, 2 barriers: {plan_sems:?}");
    assert_eq!(plan_sems, sems(&data_events), "the CCL manager's semaphores: names, addresses, sizes");

    // The collectives' own scratch: addresses follow each run's DRAM history, names and sizes
    // do not.
    let scratch = |events: &[Event]| -> BTreeSet<(String, String, u64)> {
        buffers(events, &[Role::CclScratch, Role::Semaphore])
            .into_iter()
            .filter(|b| !b.0.starts_with("ccl."))
            .map(|(name, role, _, size)| (name, role, size))
            .collect()
    };
    let plan_scratch = scratch(&plan_events);
    assert!(plan_scratch.iter().any(|b| b.0 == "layer1.attn.tp_allreduce.rs_intermediate"), "{plan_scratch:?}");
    assert!(plan_scratch.iter().any(|b| b.0 == "ttnn.all_reduce.semaphore"), "{plan_scratch:?}");
    assert_eq!(plan_scratch, scratch(&data_events));

    let analysis = analyse(&plan_events);
    assert!(analysis.errors.is_empty() && analysis.findings.is_empty(), "{analysis:?}");
    assert_eq!(analysis.summary.circular_buffers, plan_cbs.values().flatten().map(Vec::len).sum::<usize>() as u64);
}

/// On 4x8 the plan's MLP is the throughput experts: a prefill of 128 tokens gives each row 32,
/// as the data path's decoder prefill on 4x8 does, and the sequence-parallel split, the
/// dispatch, the combine, the TP all-reduce and the gather back over the rows place the same
/// circular buffers and op-cache semaphores as the simulator's ops in that run.
#[test]
fn plan_throughput_collectives_match_the_data_path_on_4x8() {
    let (out, plan_events) = planned(&plan_opts("tiny-tt", (4, 8), 128, 0));
    assert_eq!((out.out_of_memory.as_deref(), out.program_error.as_deref()), (None, None));
    let data_events = data_run(&RunOptions {
        rows: 4,
        mode: Some(Mode::Prefill),
        seq_len: 128,
        modules: Some(vec![Module::Decoder]),
        ..RunOptions::default()
    });
    let (plan_cbs, data_cbs) = (cbs_by_op(&plan_events), cbs_by_op(&data_events));
    for op in [
        "ttnn.mesh_partition",
        "ttnn.all_to_all_dispatch",
        "ttnn.all_to_all_combine",
        "ttnn.all_reduce",
        "ttnn.all_gather",
        RS,
        AG,
    ] {
        let p = plan_cbs.get(op).unwrap_or_else(|| panic!("{op} is not in the plan"));
        let d = data_cbs.get(op).unwrap_or_else(|| panic!("{op} is not in the data run"));
        assert!(!p[0].is_empty(), "{op} has a program with circular buffers");
        assert_eq!(p[0], d[0], "{op}: the plan's circular buffers are the data path's");
    }
    // 32 tokens of 512 bf16 per row-major page, and 4 uint32 expert ids.
    let dispatch = &plan_cbs["ttnn.all_to_all_dispatch"][0];
    assert_eq!(dispatch.iter().map(|c| c.2).collect::<Vec<_>>(), [2 * 512 * 2, 2 * 4 * 4]);
    let op_sems = |events: &[Event]| -> BTreeSet<(String, u64)> {
        buffers(events, &[Role::Semaphore])
            .into_iter()
            .filter(|b| !b.0.starts_with("ccl."))
            .map(|(name, _, _, size)| (name, size))
            .collect()
    };
    let plan_sems = op_sems(&plan_events);
    for name in ["ttnn.all_to_all_dispatch.init_semaphore", "ttnn.all_to_all_combine.semaphore"] {
        assert!(plan_sems.iter().any(|s| s.0 == name), "{name}: {plan_sems:?}");
    }
    assert_eq!(plan_sems, op_sems(&data_events));
    let analysis = analyse(&plan_events);
    assert!(analysis.errors.is_empty() && analysis.findings.is_empty(), "{analysis:?}");
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
    // Twenty 4-byte semaphores, each aligned to 32 bytes: the manager's 12, the op caches' 8.
    assert!(l1.buffers >= 12 * 32 && l1.buffers < 4096, "{l1:?}");
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

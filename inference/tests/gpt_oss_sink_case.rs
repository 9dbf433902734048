//! The module-test sequence of the attention-sink corruption case (experts, then attention,
//! then attention again on the same mesh) on the simulated 1x8 mesh with the GPT-OSS device
//! path, the experts' TP all-reduce done as reduce_scatter_minimal_async + all_gather_async.
//! With the reduce-scatter keeping a stale scratch address (a `stale` fault), ttsan reports the
//! stale write by name even though, on this allocation history, it lands in free memory and
//! no module PCC can see it: the bug is caught before it has a symptom.

use std::sync::Arc;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::device::{prefill_attention, prefill_experts, DeviceAttention, DeviceExperts, TpReduce};
use ttsan_inference::gpt_oss::pcc::pcc;
use ttsan_inference::gpt_oss::reference::{self, LayerCache};
use ttsan_inference::gpt_oss::rng::SplitMix64;
use ttsan_inference::gpt_oss::rope::Rope;
use ttsan_inference::gpt_oss::{random_weights, ModelWeights};
use ttsan_inference::sim::ccl::{CclManager, Topology};
use ttsan_inference::sim::{parse_faults, DType, DetectMode, Distribution, HostTensor, Mesh, MeshConfig, TensorSpec};
use ttsan_sanitizer::{AnalysisOptions, Analyzer, Finding, FindingKind};
use ttsan_shim::events::{Arch, CoreCoord, CoreRange, Role};
use ttsan_shim::MemoryRecorder;

const RS: &str = "ttnn.experimental.reduce_scatter_minimal_async";
const TOKENS: usize = 32;

fn model() -> ModelWeights {
    let mut config = GptOssConfig::tiny_tt();
    config.sliding_window = Some(24);
    config.hidden_size = 256;
    random_weights(&config, 21)
}

struct Outcome {
    /// Attention PCC of the first and the second attention run.
    pcc: [f64; 2],
    findings: Vec<Finding>,
}

/// The module-test sequence on one mesh: the experts test, then the attention test twice.
fn run(w: &ModelWeights, faults: &str, reduce: TpReduce) -> Outcome {
    let c = &w.config;
    let rec = Arc::new(MemoryRecorder::new());
    let mut config = MeshConfig::new(Arch::WormholeB0, 1, 8).detect(DetectMode::Writes).command("sink case");
    for f in parse_faults(faults).unwrap() {
        config = config.fault(f);
    }
    let mut mesh = Mesh::new(config, rec.clone()).unwrap();
    let grid = mesh.compute_grid();
    let cores = CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(grid.end.x.min(7), grid.end.y.min(7)));
    let mut ccl = CclManager::new(&mut mesh, cores, Topology::Ring, 1).unwrap();
    let x = SplitMix64::new(7).normal_vec(TOKENS * c.hidden_size, 0.0, 1.0);
    let host = HostTensor::new(vec![1, 1, TOKENS, c.hidden_size], x.clone()).unwrap();
    let spec = TensorSpec::new(&host.shape, DType::Bf16);

    // Experts test.
    let xt = mesh.from_host(&host, &spec, &Distribution::Replicate, "x", Role::Activation).unwrap();
    let routing = reference::route(&w.layers[0].router, &x, c.hidden_size, c.num_experts_per_tok);
    let ex = DeviceExperts::upload(&mut mesh, c, &w.layers[0].experts, 0).unwrap();
    let rt = ex.upload_routing(&mut mesh, &routing.dense(), TOKENS).unwrap();
    let out = prefill_experts(&mut mesh, &mut ccl, &ex, &xt, &rt, reduce).unwrap();
    for t in [&out, &rt, &xt] {
        mesh.deallocate(t).unwrap();
    }
    ex.deallocate(&mut mesh).unwrap();

    // Attention test, twice on the same weights (later test cases reuse the mesh).
    let rope = Rope::new(c);
    let mut cache = LayerCache::new(c.kv_width());
    let golden = reference::attention(c, 0, &w.layers[0].attn, &rope, &x, &mut cache).unwrap();
    let att = DeviceAttention::upload(&mut mesh, c, &w.layers[0].attn, 0).unwrap();
    let (cos, sin) = att.rope_tables(&mut mesh, &rope, 0, TOKENS).unwrap();
    let mut pccs = [0.0; 2];
    for p in &mut pccs {
        let xt = mesh.from_host(&host, &spec, &Distribution::Replicate, "x", Role::Activation).unwrap();
        let out = prefill_attention(&mut mesh, &mut ccl, &att, &xt, &cos, &sin).unwrap();
        *p = pcc(&golden.out, &mesh.to_host(&out).unwrap()[0].data).unwrap();
        mesh.deallocate(&out).unwrap();
        mesh.deallocate(&xt).unwrap();
    }
    mesh.finish().unwrap();
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in rec.take() {
        analyzer.feed(&e);
    }
    Outcome { pcc: pccs, findings: analyzer.finish(None).findings }
}

#[test]
#[ignore = "superseded by gpt_oss_run.rs: intermediates are now cached per call site, so attention no longer reuses the experts' stale scratch this test relied on"]
fn stale_reduce_scatter_scratch_is_reported_before_any_pcc_symptom() {
    let w = model();
    let bad = run(&w, &format!("stale:op={RS}"), TpReduce::ReduceScatterAllGather);
    assert!(bad.pcc.iter().all(|&p| p > 0.999), "module PCC does not see it: {:?}", bad.pcc);
    let uaf: Vec<&Finding> = bad.findings.iter().filter(|f| f.kind == FindingKind::UseAfterFree).collect();
    assert_eq!(uaf.len(), 1, "{:?}", bad.findings);
    let culprit = uaf[0].culprit.as_ref().map(|c| c.op.as_str());
    assert_eq!(culprit, Some(RS), "the reduce-scatter is named");
    // The stale address belongs to freed memory: the scratch itself, or (as on this history)
    // the all-gather output that reused its place before being freed in turn.
    let related = uaf[0].related.as_ref().expect("the freed buffer the write lands in");
    assert!(related.buffer.freed, "{:?}", related.buffer);
    let scratch = "layer0.experts.tp_allreduce.rs_intermediate";
    assert!(
        [scratch, "layer0.experts.tp_allreduce.ag"].contains(&related.buffer.name.as_str()),
        "{:?}",
        related.buffer
    );

    // The same sequence without the fault is clean and just as accurate.
    let good = run(&w, "", TpReduce::ReduceScatterAllGather);
    assert!(good.findings.is_empty(), "{:?}", good.findings);
    assert_eq!(good.pcc, bad.pcc);
}

//! `ttsan run gpt-oss` as a library: module tests on the simulated mesh, the named faults and
//! the order effect of the sink-corruption case, analysed by the sanitizer.

use std::sync::Arc;
use ttsan_inference::gpt_oss::run::{run, Mode, Module, RunOptions, RunOutcome};
use ttsan_inference::sim::{Canaries, DetectMode};
use ttsan_sanitizer::finding::Relation;
use ttsan_sanitizer::{AnalysisOptions, Analyzer, Finding, FindingKind};
use ttsan_shim::events::{Event, Role};
use ttsan_shim::MemoryRecorder;

const RS: &str = "ttnn.experimental.reduce_scatter_minimal_async";

fn opts(mesh: (u32, u32), layer: usize, modules: &[Module]) -> RunOptions {
    RunOptions {
        rows: mesh.0,
        cols: mesh.1,
        mode: Some(Mode::Prefill),
        seq_len: 32,
        layers: vec![layer],
        modules: Some(modules.to_vec()),
        ..RunOptions::default()
    }
}

fn go(o: &RunOptions) -> (RunOutcome, Vec<Finding>) {
    let (outcome, findings, _) = go_traced(o);
    (outcome, findings)
}

/// [`go`] that also hands back the run's events.
fn go_traced(o: &RunOptions) -> (RunOutcome, Vec<Finding>, Vec<Event>) {
    let rec = Arc::new(MemoryRecorder::new());
    let outcome = run(o, rec.clone(), &|_| {}).unwrap();
    let events = rec.take();
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in &events {
        analyzer.feed(e);
    }
    let analysis = analyzer.finish(None);
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    (outcome, analysis.findings, events)
}

fn pcc(o: &RunOutcome, m: Module) -> f64 {
    o.modules.iter().find(|r| r.module == m).map(|r| r.pcc).unwrap()
}

fn culprit(f: &Finding) -> Option<&str> {
    f.culprit.as_ref().map(|c| c.op.as_str())
}

fn victim(f: &Finding) -> Option<&str> {
    f.victim.as_ref().map(|v| v.name.as_str())
}

/// One line per finding: kind, culprit, victim, count and mechanism.
fn brief(findings: &[Finding]) -> String {
    let line = |f: &Finding| format!("{} by {:?} on {:?} x{}: {}", f.kind, culprit(f), victim(f), f.count, f.mechanism);
    findings.iter().map(line).collect::<Vec<_>>().join("\n")
}

#[test]
fn experts_first_corrupts_the_sinks_attention_first_stays_latent() {
    let mut o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    o.inject = vec!["ccl-stale-scratch".into()];
    let (bad, findings) = go(&o);
    assert!(pcc(&bad, Module::Attention) < 0.95, "{:?}", bad.modules);
    assert!(pcc(&bad, Module::Experts) >= 0.99, "{:?}", bad.modules);
    let uaf: Vec<&Finding> = findings.iter().filter(|f| f.kind == FindingKind::UseAfterFree).collect();
    assert!(!uaf.is_empty(), "{findings:?}");
    assert_eq!(culprit(uaf[0]), Some(RS));
    assert_eq!(victim(uaf[0]), Some("layer1.attn.sinks"), "the sinks took the freed intermediate's address");
    let related = uaf[0].related.as_ref().unwrap();
    assert_eq!(related.buffer.name, "layer1.experts.tp_allreduce.rs_intermediate");
    assert!(related.buffer.freed);

    o.modules = Some(vec![Module::Attention, Module::Experts]);
    let (good, findings) = go(&o);
    assert!(pcc(&good, Module::Attention) >= 0.95, "{:?}", good.modules);
    // The deferred writes still land after the free: a use-after-free into free memory.
    let uaf: Vec<&Finding> = findings.iter().filter(|f| f.kind == FindingKind::UseAfterFree).collect();
    assert_eq!(uaf.len(), 1, "{findings:?}");
    assert_eq!(culprit(uaf[0]), Some(RS));
    assert_eq!(victim(uaf[0]), None);
    assert_eq!(uaf[0].related.as_ref().unwrap().buffer.name, "layer1.experts.tp_allreduce.rs_intermediate");
}

/// Digest mode sees the sinks change across attention's first op, which owns nothing near them;
/// the attribution blames the async op whose freed scratch's stale address covers the damage.
#[test]
fn digests_blame_the_reduce_scatter_for_the_sinks() {
    let mut o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    o.inject = vec!["ccl-stale-scratch".into()];
    o.detect = DetectMode::Digests;
    let (_, findings) = go(&o);
    let sinks = findings
        .iter()
        .find(|f| f.kind == FindingKind::GuardCorruption && victim(f) == Some("layer1.attn.sinks"))
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(culprit(sinks), Some(RS), "{sinks:?}");
    // Every finding of the run (the sinks, the weights after them, free bytes of the old
    // intermediate) blames the reduce-scatter.
    assert!(findings.iter().all(|f| culprit(f) == Some(RS)), "{}", brief(&findings));
    // Both modes: the late write is one use-after-free naming the sinks, which the digests of
    // every buffer it crossed confirm instead of adding findings of their own.
    o.detect = DetectMode::Both;
    let (_, findings) = go(&o);
    assert_eq!(findings.len(), 1, "{}", brief(&findings));
    assert_eq!((findings[0].kind, culprit(&findings[0])), (FindingKind::UseAfterFree, Some(RS)));
    assert_eq!(victim(&findings[0]), Some("layer1.attn.sinks"));
    assert!(findings[0].confirmed_by_digest);
}

#[test]
fn fix_all_reduce_and_fault_free_runs_are_clean() {
    let mut o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    o.fix_all_reduce = true;
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
    assert!(out.modules.iter().all(|m| m.pcc >= 0.99), "{:?}", out.modules);
    o.fix_all_reduce = false;
    o.detect = DetectMode::Both;
    let (_, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn modules_match_the_reference_on_1x8_sliding_and_full_layers() {
    for layer in [0, 1] {
        let all = [Module::Attention, Module::Router, Module::Experts, Module::Decoder];
        let mut o = opts((1, 8), layer, &all);
        o.detect = DetectMode::Both;
        let (out, findings) = go(&o);
        assert!(findings.is_empty(), "layer {layer}: {findings:?}");
        for m in &out.modules {
            assert!(m.pcc >= 0.99, "layer {layer}: {m}");
        }
    }
    let (out, findings) = go(&opts((1, 8), 0, &[Module::Model]));
    assert!(findings.is_empty(), "{findings:?}");
    assert!(pcc(&out, Module::Model) >= 0.99, "{:?}", out.modules);
    let (shape, values) = out.logits.unwrap();
    assert_eq!(shape[0] * shape[1], values.len());
}

#[test]
fn attention_and_router_match_on_4x8_and_are_clean() {
    for layer in [0, 1] {
        let (out, findings) = go(&opts((4, 8), layer, &[Module::Attention, Module::Router]));
        assert!(findings.is_empty(), "{findings:?}");
        assert!(out.modules.iter().all(|m| m.pcc >= 0.99), "{:?}", out.modules);
    }
}

/// A named fault in writes, digests and both modes: each reports exactly one finding (repeats
/// merged) with the same culprit op and the same victim; `digest_kind` is what digests mode
/// calls it (guard corruption of a live buffer, or the canary's out-of-bounds write into free
/// memory). With weights-only guards and no canaries (digest mode as it was) the fault is invisible.
fn one_story(o: &RunOptions, fault: &str, op: &str, hit: Option<&str>, digest_kind: FindingKind) {
    let mut o = o.clone();
    o.inject = vec![fault.into()];
    for detect in [DetectMode::Writes, DetectMode::Digests, DetectMode::Both] {
        o.detect = detect;
        let (_, findings) = go(&o);
        let ctx = format!("{fault} {detect}");
        assert_eq!(findings.len(), 1, "{ctx}:\n{}", brief(&findings));
        let f = &findings[0];
        let kind = if detect == DetectMode::Digests { digest_kind } else { FindingKind::OobWrite };
        assert_eq!(f.kind, kind, "{ctx}: {}", f.mechanism);
        assert_eq!(culprit(f), Some(op), "{ctx}: {}", f.mechanism);
        assert_eq!(victim(f), hit, "{ctx}: {}", f.mechanism);
        assert_eq!(f.confirmed_by_digest, detect == DetectMode::Both, "{ctx}: the digest confirms the write");
        if detect == DetectMode::Digests && hit.is_none() {
            let r = f.related.as_ref().unwrap_or_else(|| panic!("{ctx}: the overrun buffer"));
            assert_eq!((r.relation, r.distance), (Relation::PastEnd, 0), "{ctx}: {}", f.mechanism);
            assert!(f.mechanism.contains("overran the end of its output buffer"), "{ctx}: {}", f.mechanism);
            assert!(f.mechanism.contains("at least one byte"), "{ctx}: {}", f.mechanism);
        }
    }
    o.detect = DetectMode::Digests;
    o.guard_roles = Some(vec![Role::Weight]);
    o.canaries = Some(Canaries::NONE);
    let (_, findings) = go(&o);
    assert!(findings.is_empty(), "{fault}: weights-only digests cannot see it: {findings:#?}");
}

/// Overruns of the named faults on 1x8: right culprit; the victim is what the allocator placed
/// after the output: free DRAM for the sparse matmul (digests: the past-end canary), the live
/// `experts.partial` activation for the all-gather (digests: its activation guard).
#[test]
fn overrun_faults_name_their_op() {
    let o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    one_story(&o, "sparse-matmul-oob", "ttnn.sparse_matmul", None, FindingKind::OobWrite);
    let ag = "ttnn.experimental.all_gather_async";
    one_story(&o, "ccl-pad-overrun", ag, Some("experts.partial"), FindingKind::GuardCorruption);
}

/// Decode on 1x8: the prompt fills the KV cache, two decode steps follow, every module
/// matches the reference continuing its cache, and the run is clean in both detection modes.
#[test]
fn decode_modules_match_the_reference_on_1x8_and_are_clean() {
    let mut o = opts((1, 8), 1, &Module::ALL);
    o.mode = Some(Mode::Decode);
    o.detect = DetectMode::Both;
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(out.modules.len(), Module::ALL.len(), "{:?}", out.modules);
    for m in &out.modules {
        assert_eq!(m.mode, Mode::Decode, "{m}");
        assert!(m.pcc >= 0.99, "{m}");
    }
    let (shape, values) = out.logits.unwrap();
    assert_eq!(shape, vec![32 + 2, 1024], "prompt rows, then one row per decode step");
    assert_eq!(values.len(), shape[0] * shape[1]);
}

/// Without --mode: each module runs its prefill, then its decode steps; the whole model's
/// decode continues the cache its own prefill filled.
#[test]
fn default_run_is_prefill_then_decode() {
    let mut o = opts((1, 8), 0, &[Module::Attention, Module::Model]);
    o.mode = None;
    o.decode_steps = 3;
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
    let phases: Vec<(Module, Mode)> = out.modules.iter().map(|m| (m.module, m.mode)).collect();
    assert_eq!(
        phases,
        [
            (Module::Attention, Mode::Prefill),
            (Module::Attention, Mode::Decode),
            (Module::Model, Mode::Prefill),
            (Module::Model, Mode::Decode)
        ]
    );
    assert!(out.modules.iter().all(|m| m.pcc >= 0.99), "{:?}", out.modules);
    assert_eq!(out.logits.unwrap().0[0], 32 + 3);
    o.decode_steps = 0;
    let err = run(&o, Arc::new(MemoryRecorder::new()), &|_| {}).unwrap_err();
    assert!(err.is_usage() && err.to_string().contains("--decode-steps"), "{err}");
}

/// Decode on 4x8 splits the experts over the rows (EP 4) and runs the whole model.
#[test]
fn decode_experts_and_model_on_4x8_are_clean() {
    let mut o = opts((4, 8), 0, &[Module::Experts, Module::Model]);
    o.mode = Some(Mode::Decode);
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
    assert!(out.modules.iter().all(|m| m.pcc >= 0.99), "{:?}", out.modules);
}

/// cb-clash: a persistent L1-sharded buffer fills L1 down to one page above the unreserved
/// base; the next program's static circular buffers reach it. The run stops with tt-metal's
/// message, and the trace names the program (culprit) and the buffer (victim), in writes and
/// in digests mode alike (circular buffers are placement events, not writes).
#[test]
fn cb_clash_names_the_program_and_the_l1_buffer() {
    for detect in [DetectMode::Writes, DetectMode::Digests] {
        let mut o = opts((1, 8), 0, &[Module::Attention]);
        o.inject = vec!["cb-clash".into()];
        o.detect = detect;
        let (out, findings) = go(&o);
        let msg = out.program_error.clone().unwrap_or_default();
        assert!(msg.starts_with("Statically allocated circular buffers in program"), "{detect:?}: {msg}");
        assert!(msg.contains("clash with L1 buffers"), "{msg}");
        assert!(out.modules.is_empty(), "the first program already fails: {:?}", out.modules);
        let clash: Vec<&Finding> = findings.iter().filter(|f| f.kind == FindingKind::CbClash).collect();
        assert_eq!(clash.len(), 1, "{detect:?}: {findings:?}");
        assert_eq!(victim(clash[0]), Some("decode.l1_persistent_output"), "{detect:?}: {:?}", clash[0]);
        assert_eq!(culprit(clash[0]), Some("ttnn.linear"), "{detect:?}: {:?}", clash[0]);
    }
}

/// semaphore-reuse: the first all-gather also signals the reduce-scatter's semaphore word. In
/// writes mode a foreign write names the all-gather and `ccl.rs0.sem0`; digest mode guards
/// semaphores too (every role by default) and reports a guard corruption of the same word by
/// the same op; with weights-only guards (`--guard-role weight`) it sees nothing.
#[test]
fn semaphore_reuse_names_the_all_gather_and_the_semaphore() {
    let mut o = opts((1, 8), 0, &[Module::Attention]);
    o.inject = vec!["semaphore-reuse".into()];
    for (detect, kind) in [
        (DetectMode::Writes, FindingKind::ForeignWrite),
        (DetectMode::Digests, FindingKind::GuardCorruption),
        (DetectMode::Both, FindingKind::ForeignWrite),
    ] {
        o.detect = detect;
        let (_, findings) = go(&o);
        assert_eq!(findings.len(), 1, "{detect}:\n{}", brief(&findings));
        assert_eq!(findings[0].kind, kind, "{detect}: {findings:?}");
        assert_eq!(culprit(&findings[0]), Some("ttnn.experimental.all_gather_async"), "{detect}");
        assert_eq!(victim(&findings[0]), Some("ccl.rs0.sem0"), "{detect}");
        assert_eq!(findings[0].confirmed_by_digest, detect == DetectMode::Both, "{detect}");
    }
    o.detect = DetectMode::Digests;
    o.guard_roles = Some(vec![Role::Weight]);
    let (_, findings) = go(&o);
    assert!(findings.is_empty(), "weights-only guards do not cover semaphores: {findings:?}");
}

/// The experts module on 4x8 runs the throughput experts (32 users per row): clean in every
/// mode, and the throughput named faults name their op and victim in every mode: the untilize
/// overruns into the live dispatch metadata (an activation guard sees it), the combine's
/// overrun lands past its output in free DRAM on every chip (the past-end canary sees it).
#[test]
fn throughput_experts_on_4x8_and_their_faults() {
    for detect in [DetectMode::Writes, DetectMode::Both] {
        let mut o = opts((4, 8), 0, &[Module::Experts]);
        o.detect = detect;
        let (out, findings) = go(&o);
        assert!(findings.is_empty(), "{detect}: {findings:?}");
        assert!(pcc(&out, Module::Experts) >= 0.99, "{:?}", out.modules);
    }
    let o = opts((4, 8), 0, &[Module::Experts]);
    let meta = Some("layer0.experts.dispatch.metadata");
    one_story(&o, "untilize-undersized", "ttnn.to_layout", meta, FindingKind::GuardCorruption);
    one_story(&o, "a2a-combine-peer", "ttnn.all_to_all_combine", None, FindingKind::OobWrite);
}

#[test]
fn faults_that_never_run_are_usage_errors() {
    let prefill = Some(Mode::Prefill);
    for (fault, modules, mesh, mode) in [
        ("ccl-stale-scratch", vec![Module::Attention], (1, 8), prefill),
        ("sparse-matmul-oob", vec![Module::Router], (1, 8), prefill),
        ("untilize-undersized", vec![Module::Experts], (1, 8), prefill),
        ("a2a-combine-peer", vec![Module::Attention], (4, 8), prefill),
        ("semaphore-reuse", vec![Module::Router], (4, 8), prefill),
        ("no-such-fault", vec![Module::Attention], (1, 8), prefill),
        // Decode experts reduce with ttnn.all_reduce: no reduce-scatter scratch to go stale.
        ("ccl-stale-scratch", vec![Module::Experts, Module::Decoder], (1, 8), Some(Mode::Decode)),
        // Several rows prefill with the throughput experts: no low-latency experts, no RS+AG.
        ("ccl-stale-scratch", vec![Module::Decoder, Module::Model], (4, 8), prefill),
        ("ccl-stale-scratch", vec![Module::Model], (4, 8), None),
        ("sparse-matmul-oob", vec![Module::Experts, Module::Decoder, Module::Model], (4, 8), prefill),
        // The model's decode on one row prefills with the low-latency experts.
        ("a2a-combine-peer", vec![Module::Model], (1, 8), None),
    ] {
        let mut o = opts(mesh, 0, &modules);
        o.mode = mode;
        o.inject = vec![fault.into()];
        let err = run(&o, Arc::new(MemoryRecorder::new()), &|_| {}).unwrap_err();
        assert!(err.is_usage(), "{fault}: {err}");
        assert!(err.to_string().contains(fault), "{fault}: {err}");
    }
}

/// Prefill on 4x8 as tt-metal runs it: attention the same on every row, then the sequence
/// split over the rows through the router and the throughput experts, all_reduce over the
/// columns, and the rows' tokens gathered back. 128 tokens give each row 32. The decoder
/// layer (sliding and full) and the whole model's logits match the reference, clean in writes
/// and digests modes.
#[test]
fn decoder_and_model_prefill_on_4x8_match_and_are_clean() {
    for layer in [0, 1] {
        let mut o = opts((4, 8), layer, &[Module::Decoder]);
        o.seq_len = 128;
        o.detect = DetectMode::Both;
        let (out, findings) = go(&o);
        assert!(findings.is_empty(), "layer {layer}: {findings:?}");
        eprintln!("4x8 decoder prefill, layer {layer}: {:?}", out.modules);
        assert!(pcc(&out, Module::Decoder) >= 0.99, "layer {layer}: {:?}", out.modules);
    }
    let mut o = opts((4, 8), 0, &[Module::Model]);
    o.seq_len = 128;
    o.detect = DetectMode::Both;
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
    eprintln!("4x8 model prefill: {:?}", out.modules);
    assert!(pcc(&out, Module::Model) >= 0.99, "{:?}", out.modules);
    let (shape, values) = out.logits.unwrap();
    assert_eq!(shape, vec![128, 1024]);
    assert_eq!(values.len(), 128 * 1024);
}

/// 160 tokens are not whole tiles on each of 4 rows: the sequence is padded to 256 (64 per
/// row; the third row holds 32 real tokens, the fourth none) and the padding sliced off after
/// the gather. The decoder and the model still match the reference.
#[test]
fn prefill_on_4x8_pads_a_sequence_of_partial_rows() {
    let mut o = opts((4, 8), 1, &[Module::Decoder, Module::Model]);
    o.seq_len = 160;
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
    eprintln!("4x8 prefill of 160 tokens: {:?}", out.modules);
    assert!(out.modules.iter().all(|m| m.pcc >= 0.99), "{:?}", out.modules);
    assert_eq!(out.logits.unwrap().0, vec![160, 1024]);
}

/// 640 tokens give each row 160: two chunks per row (128, then the 32 `ttnn.split` leaves),
/// each a dispatch and a combine, concatenated before the gather.
#[test]
fn prefill_on_4x8_runs_several_chunks_per_row() {
    let mut o = opts((4, 8), 0, &[Module::Decoder]);
    o.seq_len = 640;
    let (out, findings, events) = go_traced(&o);
    assert!(findings.is_empty(), "{findings:?}");
    eprintln!("4x8 decoder prefill of 640 tokens: {:?}", out.modules);
    assert!(pcc(&out, Module::Decoder) >= 0.99, "{:?}", out.modules);
    let ops = |name: &str| events.iter().filter(|e| matches!(e, Event::OpBegin(b) if b.name == name)).count();
    assert_eq!(ops("ttnn.all_to_all_dispatch"), 2);
    assert_eq!(ops("ttnn.all_to_all_combine"), 2);
    assert_eq!(ops("ttnn.mesh_partition"), 1);
    assert_eq!(ops("ttnn.all_gather"), 1);
}

/// Without --mode on 4x8 every module runs its prefill, then its decode; the whole model
/// prefills with the throughput experts, then decodes (one user, low-latency experts with EP
/// over the rows) from the cache it filled.
#[test]
fn every_module_prefill_then_decode_on_4x8() {
    let mut o = opts((4, 8), 0, &Module::ALL);
    o.mode = None;
    o.seq_len = 128;
    o.decode_steps = 2;
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "{findings:?}");
    let phases: Vec<(Module, Mode)> = out.modules.iter().map(|m| (m.module, m.mode)).collect();
    let expected: Vec<(Module, Mode)> =
        Module::ALL.iter().flat_map(|&m| [(m, Mode::Prefill), (m, Mode::Decode)]).collect();
    assert_eq!(phases, expected);
    eprintln!("4x8 prefill then decode: {:?}", out.modules);
    assert!(out.modules.iter().all(|m| m.pcc >= 0.99), "{:?}", out.modules);
    assert_eq!(out.logits.unwrap().0, vec![128 + 2, 1024]);
}

/// The throughput named faults now also run in the decoder's prefill on 4x8 and are caught
/// there: the untilize of the expert outputs (found by its output's name among the decoder's
/// other to_layout calls) overruns into free DRAM; the combine's output, allocated below the
/// untilized outputs it reads, overruns into them.
#[test]
fn throughput_faults_are_caught_in_the_4x8_decoder_prefill() {
    for (fault, op, hit) in [
        ("untilize-undersized", "ttnn.to_layout", None),
        ("a2a-combine-peer", "ttnn.all_to_all_combine", Some("layer0.experts.out_rm")),
    ] {
        let mut o = opts((4, 8), 0, &[Module::Decoder]);
        o.seq_len = 128;
        o.inject = vec![fault.into()];
        let (out, findings) = go(&o);
        assert_eq!(findings.len(), 1, "{fault}: {findings:?}");
        assert_eq!(findings[0].kind, FindingKind::OobWrite, "{fault}");
        assert_eq!(culprit(&findings[0]), Some(op), "{fault}");
        assert_eq!(victim(&findings[0]), hit, "{fault}");
        assert_eq!(out.modules.len(), 1, "{fault}");
    }
}

/// Plan mode: gpt-oss-120b at full size on 4x8, prefill 4096 then 2 decode steps through all
/// 36 layers, allocation and op events only; the analyzer reads the trace and finds nothing.
/// On 4x8 the experts are the throughput placement (4 whole experts per chip) and the MLP
/// dispatches and combines over the rows. On 1x8 every chip would hold all 128 experts: the
/// plan stops at the allocator's refusal.
#[test]
fn plan_120b_on_4x8_is_clean_and_1x8_runs_out_of_memory() {
    use ttsan_inference::gpt_oss::config::GptOssConfig;
    use ttsan_inference::gpt_oss::run::{plan, PlanOptions};
    let config = GptOssConfig::preset("gpt-oss-120b").unwrap();
    let mut o = PlanOptions {
        config,
        arch: ttsan_shim::events::Arch::WormholeB0,
        rows: 4,
        cols: 8,
        seq_len: 4096,
        decode_steps: 2,
        command: "plan test".into(),
    };
    let rec = Arc::new(MemoryRecorder::new());
    let out = plan(&o, rec.clone(), &|_| {}).unwrap();
    assert_eq!(out.out_of_memory, None);
    assert!(out.ops > 36 * 3 * 30, "{out:?}");
    let events = rec.take();
    let names: std::collections::HashSet<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(b) => Some(b.name.clone()),
            Event::OpBegin(o) => Some(o.name.clone()),
            _ => None,
        })
        .collect();
    for expected in [
        "model.layers.35.mlp.experts.w1_w3",
        "ttnn.mesh_partition",
        "ttnn.all_to_all_dispatch",
        "experts.out_rm",
        "ttnn.all_to_all_combine",
        "experts.sp_gather",
    ] {
        assert!(names.contains(expected), "{expected} is not in the plan");
    }
    assert!(!names.contains("model.layers.0.mlp.experts.gate_up_proj"), "one experts placement only");
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in events {
        analyzer.feed(&e);
    }
    let analysis = analyzer.finish(None);
    assert!(analysis.errors.is_empty() && analysis.findings.is_empty(), "{analysis:?}");

    o.rows = 1;
    let out = plan(&o, Arc::new(MemoryRecorder::new()), &|_| {}).unwrap();
    let msg = out.out_of_memory.unwrap();
    eprintln!("1x8 plan: {msg}");
    assert!(msg.contains("mlp.experts"), "the experts are what does not fit: {msg}");
}

/// The acceptance matrix, parametrized as tt-metal's module tests are: mesh 1x8 and 4x8,
/// prefill and decode, layer 0 (sliding) and layer 1 (full), every module (attention, router,
/// experts, decoder and the whole model's logits) at PCC >= 0.99 against the reference, and
/// clean with both detection mechanisms on.
#[test]
fn every_module_matches_on_both_meshes_modes_and_layer_kinds() {
    for mesh in [(1, 8), (4, 8)] {
        for layer in [0, 1] {
            for mode in [Mode::Prefill, Mode::Decode] {
                let mut o = opts(mesh, layer, &Module::ALL);
                o.mode = Some(mode);
                o.detect = DetectMode::Both;
                let cell = format!("{}x{} layer {layer} {mode}", mesh.0, mesh.1);
                let (out, findings) = go(&o);
                assert!(findings.is_empty(), "{cell}:\n{}", brief(&findings));
                let ran: Vec<Module> = out.modules.iter().map(|m| m.module).collect();
                assert_eq!(ran, Module::ALL, "{cell}");
                for m in &out.modules {
                    assert_eq!(m.mode, mode, "{cell}: {m}");
                    assert!(m.pcc >= 0.99, "{cell}: {m}");
                }
            }
        }
    }
}

//! `ttsan run gpt-oss` as a library: module tests on the simulated mesh, the named faults and
//! the order effect of the sink-corruption case, analysed by the sanitizer.

use std::sync::Arc;
use ttsan_inference::gpt_oss::run::{run, Case, Mode, Module, RunOptions, RunOutcome};
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

/// The real lifecycle: the whole decoder layer is uploaded before any component's first op,
/// in the order of tt/layer.py (norms, router, experts, attention) and
/// tt/attention/weights.py (the sinks last).
#[test]
fn the_decoder_layer_is_built_before_any_component_in_the_real_order() {
    let o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    let (_, _, events) = go_traced(&o);
    let first_op = events.iter().position(|e| matches!(e, Event::OpBegin(_))).unwrap();
    let weights: Vec<&str> = events[..first_op]
        .iter()
        .filter_map(|e| match e {
            Event::BufferAlloc(a) if a.role == Role::Weight => Some(a.name.as_str()),
            _ => None,
        })
        .collect();
    let at = |name: &str| weights.iter().position(|w| *w == name).unwrap_or_else(|| panic!("{name}: {weights:?}"));
    let order = [
        "model.layers.1.input_layernorm.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "model.layers.1.mlp.router.weight",
        "layer1.attn.wqkv",
        "layer1.attn.wqkv_bias",
        "layer1.attn.o_proj",
        "layer1.attn.o_proj_bias",
        "layer1.attn.sinks",
    ];
    let positions: Vec<usize> = order.iter().map(|n| at(n)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{order:?} at {positions:?} in {weights:?}");
    assert!(weights.iter().any(|w| w.starts_with("layer1.experts.")), "the experts before any op: {weights:?}");
    let last_expert = weights.iter().rposition(|w| w.starts_with("layer1.experts.")).unwrap();
    assert!(last_expert < at("layer1.attn.wqkv"), "the MLP before the attention: {weights:?}");
}

/// `ccl-stale-scratch` (every peer's writes into the experts' reduce-scatter intermediate land
/// two ops late): with the experts first they land in the attention test's input, uploaded
/// into the freed space, and attention fails; with attention first they land in free memory.
/// The sinks, uploaded with the layer before any component, are not hit.
#[test]
fn always_late_skew_corrupts_the_attention_input_with_the_experts_first() {
    let mut o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    o.inject = vec!["ccl-stale-scratch".into()];
    let (bad, findings) = go(&o);
    assert!(pcc(&bad, Module::Attention) < 0.95, "{:?}", bad.modules);
    assert!(pcc(&bad, Module::Experts) >= 0.99, "{:?}", bad.modules);
    let uaf: Vec<&Finding> = findings.iter().filter(|f| f.kind == FindingKind::UseAfterFree).collect();
    assert!(!uaf.is_empty(), "{findings:?}");
    assert_eq!(culprit(uaf[0]), Some(RS));
    assert_eq!(victim(uaf[0]), Some("layer1.attn.input"), "{}", brief(&findings));
    let related = uaf[0].related.as_ref().unwrap();
    assert_eq!(related.buffer.name, "layer1.experts.tp_allreduce.rs_intermediate", "the receiver's intermediate");
    assert!(related.buffer.freed);
    assert!(findings.iter().all(|f| victim(f) != Some("layer1.attn.sinks")), "{}", brief(&findings));

    o.modules = Some(vec![Module::Attention, Module::Experts]);
    let (good, findings) = go(&o);
    assert!(pcc(&good, Module::Attention) >= 0.95, "{:?}", good.modules);
    let uaf: Vec<&Finding> = findings.iter().filter(|f| f.kind == FindingKind::UseAfterFree).collect();
    assert!(!uaf.is_empty(), "{findings:?}");
    assert!(uaf.iter().all(|f| culprit(f) == Some(RS) && victim(f).is_none()), "{}", brief(&findings));
}

/// Cross-chip skew from a seed: each late write is a record of the reduce-scatter on the
/// sending peer, so writes and digests name the op, the peer (the culprit's chip) and the
/// receiver (the finding's chip). Seed 4 corrupts the attention input, seed 2 is on time.
#[test]
fn peer_skew_names_the_op_the_peer_and_the_receiver_in_both_modes() {
    let mut o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    o.inject = vec!["ccl-peer-skew".into()];
    o.skew_seed = 4;
    for (detect, kind) in
        [(DetectMode::Writes, FindingKind::UseAfterFree), (DetectMode::Digests, FindingKind::GuardCorruption)]
    {
        o.detect = detect;
        let (out, findings) = go(&o);
        assert!(pcc(&out, Module::Attention) < 0.95, "{detect}: {:?}", out.modules);
        let f = findings.iter().find(|f| f.kind == kind).unwrap_or_else(|| panic!("{detect}: {}", brief(&findings)));
        let c = f.culprit.as_ref().unwrap();
        assert_eq!(c.op, RS, "{detect}");
        assert_eq!(c.call, 1, "{detect}: the late tail of the first call");
        assert_eq!((c.chips.as_slice(), f.device), (&[4u32][..], Some(5)), "{detect}: peer 4 wrote into chip 5");
        assert_eq!(victim(f), Some("layer1.attn.input"), "{detect}");
    }
    o.skew_seed = 2;
    o.detect = DetectMode::Both;
    let (out, findings) = go(&o);
    assert!(findings.is_empty(), "seed 2 lands on time: {}", brief(&findings));
    assert!(pcc(&out, Module::Attention) >= 0.95, "{:?}", out.modules);
}

/// A stale runtime argument: the reduce-scatter's cached program keeps the intermediate
/// address of its cache miss (the experts' call); the attention's call, a cache hit, writes
/// the freed space, where the attention input now is. Both modes name the reduce-scatter.
#[test]
fn stale_runtime_arg_is_caught_on_the_cache_hit_in_both_modes() {
    let mut o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    o.inject = vec!["ccl-stale-runtime-arg".into()];
    for (detect, kind) in
        [(DetectMode::Writes, FindingKind::UseAfterFree), (DetectMode::Digests, FindingKind::GuardCorruption)]
    {
        o.detect = detect;
        let (_, findings) = go(&o);
        let f = findings.iter().find(|f| f.kind == kind).unwrap_or_else(|| panic!("{detect}: {}", brief(&findings)));
        let c = f.culprit.as_ref().unwrap();
        assert_eq!((c.op.as_str(), c.call), (RS, 2), "{detect}: the cache hit");
        assert_eq!(victim(f), Some("layer1.attn.input"), "{detect}");
    }
}

/// The cross-test sequence: two cases on one mesh and program cache, each building and
/// freeing its layer; results are labelled by case.
#[test]
fn cases_run_in_sequence_on_one_mesh() {
    let mut o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    o.cases = [32, 64].map(|tokens| Case { mode: Mode::Prefill, tokens }).to_vec();
    let (out, findings, events) = go_traced(&o);
    assert!(findings.is_empty(), "{findings:?}");
    let labels: Vec<Option<&str>> = out.modules.iter().map(|m| m.case.as_deref()).collect();
    assert_eq!(labels, [Some("prefill:32"), Some("prefill:32"), Some("prefill:64"), Some("prefill:64")]);
    assert!(out.modules.iter().all(|m| m.pcc >= 0.99), "{:?}", out.modules);
    let sinks = events.iter().filter(|e| matches!(e, Event::BufferAlloc(a) if a.name == "layer1.attn.sinks")).count();
    assert_eq!(sinks, 2, "each case builds its own layer");
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

/// Overruns of the named faults on 1x8 (mechanism c, a write past the end of a padded
/// output): right culprit; the victim is what the allocator placed after the output: free
/// DRAM for the sparse matmul (digests: the past-end canary), the live reduce-scatter output
/// for the all-gather (digests: its activation guard).
#[test]
fn overrun_faults_name_their_op() {
    let o = opts((1, 8), 1, &[Module::Experts, Module::Attention]);
    one_story(&o, "sparse-matmul-oob", "ttnn.sparse_matmul", None, FindingKind::OobWrite);
    let ag = "ttnn.experimental.all_gather_async";
    // At 32 tokens the reduce-scatter output has pages on two banks only; the overrun lands
    // in its address range on a bank where it has no page, which no digest covers. At 256
    // tokens it has a page there.
    let o = RunOptions { seq_len: 256, ..o };
    one_story(&o, "ccl-pad-overrun", ag, Some("layer1.experts.tp_allreduce.rs"), FindingKind::GuardCorruption);
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
        "layer35.experts.out_rm",
        "ttnn.all_to_all_combine",
        "layer35.experts.sp_gather",
    ] {
        assert!(names.contains(expected), "{expected} is not in the plan");
    }
    assert!(!names.contains("layer0.experts.gate_proj"), "one experts placement only");
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
    assert!(msg.contains(".experts."), "the experts are what does not fit: {msg}");
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

//! The f32 reference against the independent naive HF formulation, module by module and end to
//! end, plus checks that the random tiny model really exercises clamp, sinks and window.

use ttsan_inference::common::pcc::{max_abs_diff, pcc};
use ttsan_inference::common::rng::SplitMix64;
use ttsan_inference::gpt_oss::config::GptOssConfig;
mod gpt_oss_naive;
use gpt_oss_naive as naive;
use ttsan_inference::gpt_oss::reference::{self, LayerCache, Reference, Routing};
use ttsan_inference::gpt_oss::rope::Rope;
use ttsan_inference::gpt_oss::{random_weights, ModelWeights};

const SEED: u64 = 0x5eed;

fn tiny() -> ModelWeights {
    random_weights(&GptOssConfig::tiny(), SEED)
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.below(vocab as u64) as u32).collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Random normed-looking rows.
fn rows(t: usize, h: usize, seed: u64) -> Vec<f32> {
    SplitMix64::new(seed).normal_vec(t * h, 0.0, 1.0)
}

/// Asserts PCC > 0.9999 and a max abs error below `rel` times the golden's largest magnitude.
fn assert_close(what: &str, golden: &[f32], got: &[f32], rel: f32) {
    let p = pcc(golden, got).unwrap();
    let scale = golden.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = max_abs_diff(golden, got).unwrap();
    assert!(p > 0.9999, "{what}: pcc {p}");
    assert!(err <= rel * scale, "{what}: max abs err {err} vs scale {scale}");
}

#[test]
fn prefill_matches_naive_hf() {
    let w = tiny();
    let ids = tokens(32, w.config.vocab_size, 1);
    let (logits, cache) = Reference::new(&w).prefill(&ids).unwrap();
    let golden = to_f32(&naive::forward(&w, &ids).unwrap());
    assert_eq!(logits.len(), 32 * w.config.vocab_size);
    assert_eq!(cache.len(), 32);
    assert_close("prefill logits", &golden, &logits, 1e-3);
}

#[test]
fn decode_with_cache_matches_full_recompute() {
    let w = tiny();
    let model = Reference::new(&w);
    let ids = tokens(34, w.config.vocab_size, 2);
    let (_, mut cache) = model.prefill(&ids[..32]).unwrap();
    let v = w.config.vocab_size;
    let golden = to_f32(&naive::forward(&w, &ids).unwrap());
    for step in 32..34 {
        let logits = model.decode(ids[step], &mut cache).unwrap();
        assert_close(&format!("decode step {step}"), &golden[step * v..(step + 1) * v], &logits, 1e-3);
    }
    assert_eq!(cache.len(), 34);
}

#[test]
fn chunked_prefill_equals_one_shot_prefill() {
    let w = tiny();
    let model = Reference::new(&w);
    let ids = tokens(20, w.config.vocab_size, 3);
    let (one_shot, _) = model.prefill(&ids).unwrap();
    let mut cache = model.new_cache();
    let mut chunked = model.forward(&ids[..7], &mut cache).unwrap();
    chunked.extend(model.forward(&ids[7..], &mut cache).unwrap());
    assert_close("chunked prefill", &one_shot, &chunked, 1e-5);
}

#[test]
fn attention_module_matches_naive_on_both_layer_kinds() {
    let w = tiny();
    let c = &w.config;
    let s = 24;
    let x = rows(s, c.hidden_size, 4);
    let (cos, sin) = naive::yarn_cos_sin(c, s);
    for layer in 0..2 {
        let mut cache = LayerCache::new(c.kv_width());
        let got = reference::attention(c, layer, &w.layers[layer].attn, &Rope::new(c), &x, &mut cache).unwrap();
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let golden = to_f32(&naive::attention(c, layer, &w.layers[layer].attn, &x64, &cos, &sin));
        assert_close(&format!("attention layer {layer}"), &golden, &got.out, 1e-4);
    }
}

#[test]
fn router_module_matches_naive_scores() {
    let w = tiny();
    let c = &w.config;
    let x = rows(16, c.hidden_size, 5);
    let routing = reference::route(&w.layers[0].router, &x, c.hidden_size, c.num_experts_per_tok);
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let golden = to_f32(&naive::router_scores(c, &w.layers[0].router, &x64));
    assert_close("router scores", &golden, &routing.dense(), 1e-4);
    for t in 0..16 {
        let weights = &routing.weights[t * c.num_experts_per_tok..(t + 1) * c.num_experts_per_tok];
        let idx = &routing.indices[t * c.num_experts_per_tok..(t + 1) * c.num_experts_per_tok];
        assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-5, "softmax over the top-k sums to 1");
        let logits = &routing.logits[t * c.num_local_experts..(t + 1) * c.num_local_experts];
        assert!(idx.windows(2).all(|p| logits[p[0]] >= logits[p[1]]), "indices sorted by descending logit");
        let kth = logits[idx[c.num_experts_per_tok - 1]];
        let above = logits.iter().filter(|&&l| l > kth).count();
        assert!(above < c.num_experts_per_tok, "no unselected expert beats the k-th");
    }
}

#[test]
fn experts_module_matches_dense_experts_on_random_routing() {
    let w = tiny();
    let c = &w.config;
    let t = 12;
    let x = rows(t, c.hidden_size, 6);
    // As tt-metal's experts test: random distinct experts per token, weights normalised to 1.
    let mut rng = SplitMix64::new(7);
    let mut indices = Vec::new();
    let mut weights = Vec::new();
    for _ in 0..t {
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < c.num_experts_per_tok {
            let e = rng.below(c.num_local_experts as u64) as usize;
            if !chosen.contains(&e) {
                chosen.push(e);
            }
        }
        let raw: Vec<f32> = (0..chosen.len()).map(|_| rng.next_open01() as f32).collect();
        let sum: f32 = raw.iter().sum();
        indices.extend(chosen);
        weights.extend(raw.iter().map(|r| r / sum));
    }
    let routing = Routing::given(c.num_local_experts, c.num_experts_per_tok, indices, weights).unwrap();
    let got = reference::experts(c, &w.layers[1].experts, &x, &routing).unwrap();
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let dense: Vec<f64> = routing.dense().iter().map(|&v| f64::from(v)).collect();
    let golden = to_f32(&naive::experts_dense(c, &w.layers[1].experts, &x64, &dense));
    assert_close("experts", &golden, &got, 1e-4);
}

#[test]
fn decoder_layer_matches_naive() {
    let w = tiny();
    let c = &w.config;
    let s = 16;
    let x = rows(s, c.hidden_size, 8);
    for layer in 0..2 {
        let mut got = x.clone();
        let mut cache = LayerCache::new(c.kv_width());
        reference::decoder_layer(c, layer, &w.layers[layer], &Rope::new(c), &mut got, &mut cache).unwrap();
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let golden = to_f32(&naive::decoder_layer(c, layer, &w.layers[layer], &x64));
        assert_close(&format!("decoder layer {layer}"), &golden, &got, 1e-4);
    }
}

#[test]
fn random_tiny_model_exercises_clamp_sinks_and_window() {
    let w = tiny();
    let c = &w.config;
    let model = Reference::new(&w);
    let ids = tokens(32, c.vocab_size, 9);
    let x = model.embed(&ids).unwrap();
    let normed = reference::rms_norm(&x, &w.layers[0].input_norm.data, c.rms_norm_eps as f32);
    // Gate/up pre-activations of the selected experts must cross the +-7 clamp, and not always.
    let routing = reference::route(&w.layers[0].router, &normed, c.hidden_size, c.num_experts_per_tok);
    let (mut gate_over, mut up_over, mut inside) = (0, 0, 0);
    for t in 0..ids.len() {
        for &e in &routing.indices[t * c.num_experts_per_tok..(t + 1) * c.num_experts_per_tok] {
            let row = &normed[t * c.hidden_size..(t + 1) * c.hidden_size];
            let gu = &w.layers[0].experts.gate_up_proj.data;
            let bias = &w.layers[0].experts.gate_up_bias.data;
            let width = 2 * c.intermediate_size;
            for col in 0..width {
                let v: f32 =
                    (0..c.hidden_size).map(|i| row[i] * gu[(e * c.hidden_size + i) * width + col]).sum::<f32>()
                        + bias[e * width + col];
                match (col % 2, v.abs() > 7.0) {
                    (0, true) if v > 7.0 => gate_over += 1,
                    (1, true) => up_over += 1,
                    _ => inside += 1,
                }
            }
        }
    }
    assert!(gate_over > 0 && up_over > 0 && inside > 0, "gate>7 {gate_over}, |up|>7 {up_over}, inside {inside}");
    // The sink column must take real probability mass in both layers.
    for layer in 0..2 {
        let mut cache = LayerCache::new(c.kv_width());
        let out = reference::attention(c, layer, &w.layers[layer].attn, model.rope(), &normed, &mut cache).unwrap();
        let mean = out.sink_mass.iter().sum::<f32>() / out.sink_mass.len() as f32;
        assert!(mean > 0.01 && mean < 0.99, "layer {layer} mean sink mass {mean}");
    }
    assert!(ids.len() > c.sliding_window.unwrap_or(usize::MAX), "queries exceed the window");
}

#[test]
fn sliding_layer_ignores_keys_outside_the_window_and_full_layer_does_not() {
    let w = tiny();
    let c = &w.config;
    let window = c.sliding_window.unwrap();
    let s = window + 6;
    let x = rows(s, c.hidden_size, 10);
    let mut changed = x.clone();
    for v in &mut changed[..c.hidden_size] {
        *v += 3.0;
    }
    let run = |layer: usize, input: &[f32]| {
        let mut cache = LayerCache::new(c.kv_width());
        reference::attention(c, layer, &w.layers[layer].attn, &Rope::new(c), input, &mut cache).unwrap().out
    };
    let last = (s - 1) * c.hidden_size..s * c.hidden_size;
    let (a, b) = (run(0, &x), run(0, &changed));
    assert_eq!(&a[last.clone()], &b[last.clone()], "sliding layer 0: token 0 is outside the last query's window");
    let (a, b) = (run(1, &x), run(1, &changed));
    assert_ne!(&a[last.clone()], &b[last], "full layer 1 sees token 0");
}

#[test]
fn decode_and_prefill_reject_bad_input() {
    let w = tiny();
    let model = Reference::new(&w);
    assert!(model.prefill(&[]).is_err());
    assert!(model.prefill(&[w.config.vocab_size as u32]).is_err());
    let other = random_weights(&GptOssConfig::tiny_tt(), 1);
    let mut foreign = Reference::new(&other).new_cache();
    assert!(model.decode(1, &mut foreign).is_err());
}

#[test]
fn tiny_prefill_32_decode_2_runs() {
    let w = tiny();
    let model = Reference::new(&w);
    let ids = tokens(32, w.config.vocab_size, 11);
    let (logits, mut cache) = model.prefill(&ids).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
    for t in [3, 4] {
        let l = model.decode(t, &mut cache).unwrap();
        assert!(l.iter().all(|v| v.is_finite()));
    }
}

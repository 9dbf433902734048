//! HF checkpoint directories: round trips, MXFP4 dequantization as HF does it, deterministic
//! init, and typed errors for every kind of bad checkpoint.

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::Path;
use ttsan_inference::gpt_oss::config::GptOssConfig;
use ttsan_inference::gpt_oss::mxfp4::{self, Mxfp4Error, FP4_VALUES};
use ttsan_inference::gpt_oss::weights::{LayerParam, Param};
use ttsan_inference::gpt_oss::{
    load_checkpoint, random_weights, write_checkpoint, GptOssError, ModelWeights, StoreDtype, WriteOptions,
};

fn f32_options() -> WriteOptions {
    WriteOptions { dtype: StoreDtype::F32, mxfp4_experts: false }
}

/// Rewrites `dir/model.safetensors` keeping every tensor except those `edit` replaces or drops.
fn rewrite(dir: &Path, edit: impl Fn(&str, Dtype, &[usize], &[u8]) -> Option<(String, Dtype, Vec<usize>, Vec<u8>)>) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept = Vec::new();
    for (name, view) in st.tensors() {
        if let Some(entry) = edit(&name, view.dtype(), view.shape(), view.data()) {
            kept.push(entry);
        }
    }
    let views: Vec<_> =
        kept.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn keep(name: &str, d: Dtype, s: &[usize], b: &[u8]) -> Option<(String, Dtype, Vec<usize>, Vec<u8>)> {
    Some((name.to_owned(), d, s.to_vec(), b.to_vec()))
}

#[test]
fn f32_round_trip_is_exact() {
    let w = random_weights(&GptOssConfig::tiny(), 1);
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &w, f32_options()).unwrap();
    assert_eq!(load_checkpoint(dir.path()).unwrap(), w);
}

#[test]
fn bf16_round_trip_rounds_each_value_to_bf16() {
    let w = random_weights(&GptOssConfig::tiny(), 2);
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &w, WriteOptions::default()).unwrap();
    let loaded = load_checkpoint(dir.path()).unwrap();
    let (a, b) = (&w.layers[1].attn.q_proj.data, &loaded.layers[1].attn.q_proj.data);
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() <= x.abs() / 128.0));
    assert!(b.iter().all(|y| y.to_bits() & 0xFFFF == 0), "bf16 values have empty low mantissa bits");
    assert!(a != b);
}

#[test]
fn init_is_deterministic_per_seed() {
    let c = GptOssConfig::tiny();
    assert_eq!(random_weights(&c, 7), random_weights(&c, 7));
    assert_ne!(random_weights(&c, 7), random_weights(&c, 8));
    let w = random_weights(&c, 7);
    let sinks = &w.layers[0].attn.sinks.data;
    let std = (sinks.iter().map(|v| v * v).sum::<f32>() / sinks.len() as f32).sqrt();
    assert!(std > 0.4 && std < 2.0, "sinks drawn from N(0, 1): rms {std}");
}

#[test]
fn mxfp4_dequantizes_like_convert_moe_packed_tensors() {
    // One expert, 2 output rows, one group of 16 bytes; byte b of row r holds codes lo = b % 16,
    // hi = (b + r) % 16; row scales 127 (x1) and 129 (x4).
    let blocks: Vec<u8> = (0..2u8).flat_map(|r| (0..16u8).map(move |b| (b % 16) | (((b + r) % 16) << 4))).collect();
    let scales = vec![127u8, 129];
    let t = mxfp4::dequantize(&blocks, &[1, 2, 1, 16], &scales, &[1, 2, 1]).unwrap();
    assert_eq!(t.shape, vec![1, 32, 2], "[E, R, G, B] -> [E, G*B*2, R] after HF's transpose(1, 2)");
    for r in 0..2usize {
        let pow = [1.0, 4.0][r];
        for b in 0..16usize {
            let lo = FP4_VALUES[b % 16] * pow;
            let hi = FP4_VALUES[(b + r) % 16] * pow;
            assert_eq!(t.data[(2 * b) * 2 + r], lo, "even column = low nibble");
            assert_eq!(t.data[(2 * b + 1) * 2 + r], hi, "odd column = high nibble");
        }
    }
    assert_eq!(
        mxfp4::dequantize(&blocks, &[1, 2, 1, 16], &scales, &[1, 2, 2]),
        Err(Mxfp4Error::ScalesShape { blocks: vec![1, 2, 1, 16], scales: vec![1, 2, 2] })
    );
}

#[test]
fn mxfp4_checkpoint_loads_the_quantized_experts() {
    let w = random_weights(&GptOssConfig::tiny(), 3);
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &w, WriteOptions { dtype: StoreDtype::F32, mxfp4_experts: true }).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["quantization_config"]["quant_method"], "mxfp4");
    let loaded = load_checkpoint(dir.path()).unwrap();
    let (orig, q) = (&w.layers[0].experts.gate_up_proj, &loaded.layers[0].experts.gate_up_proj);
    assert_eq!(q.shape, orig.shape);
    // Rounding to the nearest code is off by at most half a step; steps are at most 2 units of
    // the group scale 2^ceil(log2(max / 6)) < max / 3, so the error is below max / 3.
    let rows = orig.shape[2];
    for (i, (&a, &b)) in orig.data.iter().zip(&q.data).enumerate() {
        let (e, c, r) = (i / (orig.shape[1] * rows), i / rows % orig.shape[1], i % rows);
        let group = (0..32).map(|k| orig.data[(e * orig.shape[1] + c / 32 * 32 + k) * rows + r].abs());
        let max = group.fold(0f32, f32::max);
        assert!((a - b).abs() <= max / 3.0 + 1e-6, "value {a} quantized to {b}, group max {max}");
    }
    // Everything else is untouched.
    assert_eq!(loaded.layers[0].attn, w.layers[0].attn);
    assert_eq!(loaded.layers[0].experts.down_bias, w.layers[0].experts.down_bias);
    assert_ne!(loaded.layers[0].experts.down_proj, w.layers[0].experts.down_proj);
}

#[test]
fn missing_tensor_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &random_weights(&GptOssConfig::tiny(), 4), f32_options()).unwrap();
    rewrite(dir.path(), |n, d, s, b| if n == "model.layers.1.self_attn.sinks" { None } else { keep(n, d, s, b) });
    match load_checkpoint(dir.path()) {
        Err(GptOssError::MissingTensor { name }) => assert_eq!(name, "model.layers.1.self_attn.sinks"),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn wrong_shape_and_bad_dtype_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), &random_weights(&GptOssConfig::tiny(), 5), f32_options()).unwrap();
    let target = Param::Layer(0, LayerParam::RouterWeight).name();
    rewrite(dir.path(), |n, d, s, b| {
        if n == target {
            Some((n.to_owned(), d, vec![s[1], s[0]], b.to_vec()))
        } else {
            keep(n, d, s, b)
        }
    });
    match load_checkpoint(dir.path()) {
        Err(GptOssError::WrongShape { name, expected, found }) => {
            assert_eq!(name, target);
            assert_eq!(expected, vec![32, 64]);
            assert_eq!(found, vec![64, 32]);
        }
        other => panic!("expected WrongShape, got {other:?}"),
    }
    // Back to the right shape, but as I32 (same byte count as F32).
    rewrite(dir.path(), |n, d, s, b| {
        if n == target {
            Some((n.to_owned(), Dtype::I32, vec![32, 64], b.to_vec()))
        } else {
            keep(n, d, s, b)
        }
    });
    assert!(matches!(load_checkpoint(dir.path()), Err(GptOssError::BadDtype { .. })));
}

#[test]
fn mxfp4_scales_missing_or_misshapen_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let w = random_weights(&GptOssConfig::tiny(), 6);
    write_checkpoint(dir.path(), &w, WriteOptions { dtype: StoreDtype::Bf16, mxfp4_experts: true }).unwrap();
    let scales = "model.layers.0.mlp.experts.down_proj_scales";
    rewrite(dir.path(), |n, d, s, b| {
        if n == scales {
            Some((n.to_owned(), d, vec![s[0], s[1] * s[2]], b.to_vec()))
        } else {
            keep(n, d, s, b)
        }
    });
    assert!(matches!(load_checkpoint(dir.path()), Err(GptOssError::Mxfp4 { .. })));
    rewrite(dir.path(), |n, d, s, b| if n == scales { None } else { keep(n, d, s, b) });
    match load_checkpoint(dir.path()) {
        Err(GptOssError::MissingTensor { name }) => assert_eq!(name, scales),
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn sharded_checkpoints_load_and_duplicates_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let w = random_weights(&GptOssConfig::tiny(), 9);
    write_checkpoint(dir.path(), &w, f32_options()).unwrap();
    // Move lm_head into a second shard as HF's multi-file checkpoints do.
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let head = st.tensor("lm_head.weight").unwrap();
    let shard = safetensors::serialize([("lm_head.weight", head.clone())], None).unwrap();
    std::fs::write(dir.path().join("model-00002-of-00002.safetensors"), shard).unwrap();
    assert!(matches!(load_checkpoint(dir.path()), Err(GptOssError::DuplicateTensor { .. })));
    rewrite(dir.path(), |n, d, s, b| if n == "lm_head.weight" { None } else { keep(n, d, s, b) });
    let loaded: ModelWeights = load_checkpoint(dir.path()).unwrap();
    assert_eq!(loaded, w);
}

#[test]
fn bad_directories_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(load_checkpoint(dir.path()), Err(GptOssError::Io { .. })));
    std::fs::write(dir.path().join("config.json"), GptOssConfig::tiny().to_json()).unwrap();
    assert!(matches!(load_checkpoint(dir.path()), Err(GptOssError::NoSafetensors { .. })));
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    assert!(matches!(load_checkpoint(dir.path()), Err(GptOssError::Safetensors { .. })));
}

/// HF's `convert_moe_packed_tensors`, transcribed to numpy, dequantizes our MXFP4 checkpoint to
/// exactly what our loader returns (skipped, with a note, without python3 + numpy + safetensors).
#[test]
fn loader_matches_hf_convert_moe_packed_tensors_in_numpy() {
    use std::process::Command;
    let probe = Command::new("python3").args(["-c", "import numpy, safetensors"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("note: python3 with numpy and safetensors not available; HF dequant cross-check skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = random_weights(&GptOssConfig::tiny(), 12);
    write_checkpoint(dir.path(), &w, WriteOptions { dtype: StoreDtype::Bf16, mxfp4_experts: true }).unwrap();
    let script = r#"
import math, sys, numpy as np
from safetensors import safe_open
FP4_VALUES = [+0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
def convert_moe_packed_tensors(blocks, scales):
    scales = scales.astype(np.int32) - 127
    assert blocks.shape[:-1] == scales.shape
    lut = np.array(FP4_VALUES, dtype=np.float32)
    *prefix_shape, G, B = blocks.shape
    rows_total = math.prod(prefix_shape) * G
    blocks = blocks.reshape(rows_total, B)
    scales = scales.reshape(rows_total, 1)
    out = np.empty((rows_total, B * 2), dtype=np.float32)
    out[:, 0::2] = lut[blocks & 0x0F]
    out[:, 1::2] = lut[blocks >> 4]
    out = np.ldexp(out, scales)
    out = out.reshape(*prefix_shape, G, B * 2).reshape(*prefix_shape, G * B * 2)
    return np.ascontiguousarray(np.swapaxes(out, 1, 2))
name = sys.argv[2]
with safe_open(sys.argv[1], framework="np") as f:  # bf16 tensors cannot be read by numpy, u8 can
    blocks, scales = f.get_tensor(name + "_blocks"), f.get_tensor(name + "_scales")
np.save(sys.argv[3], convert_moe_packed_tensors(blocks, scales))
"#;
    let loaded = load_checkpoint(dir.path()).unwrap();
    for (param, got) in [
        (LayerParam::GateUp, &loaded.layers[1].experts.gate_up_proj),
        (LayerParam::Down, &loaded.layers[1].experts.down_proj),
    ] {
        let out = dir.path().join("hf.npy");
        let name = Param::Layer(1, param).name();
        let status = Command::new("python3")
            .args(["-c", script])
            .arg(dir.path().join("model.safetensors"))
            .arg(&name)
            .arg(&out)
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let (shape, data) = ttsan_inference::common::npy::read_f32(&out).unwrap();
        assert_eq!(shape, got.shape, "{name}");
        assert_eq!(data, got.data, "{name}");
    }
}

//! Configs: the released shapes, HF `config.json` parsing, tiny-config divisibility, YaRN
//! numbers from the reference doc, and typed rejection of bad configs.

use std::path::Path;
use ttsan_inference::gpt_oss::config::{GptOssConfig, LayerType};
use ttsan_inference::gpt_oss::rope::Rope;
use ttsan_inference::gpt_oss::GptOssError;

/// gpt-oss-20b's released `config.json` (quantization block shortened), as HF writes it.
const RELEASED_20B: &str = r#"{
  "architectures": ["GptOssForCausalLM"],
  "attention_bias": true,
  "attention_dropout": 0.0,
  "eos_token_id": 200002,
  "experts_per_token": 4,
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 2880,
  "initial_context_length": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 2880,
  "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention"],
  "max_position_embeddings": 131072,
  "model_type": "gpt_oss",
  "num_attention_heads": 64,
  "num_experts_per_tok": 4,
  "num_hidden_layers": 24,
  "num_key_value_heads": 8,
  "num_local_experts": 32,
  "output_router_logits": false,
  "pad_token_id": 199999,
  "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn"], "quant_method": "mxfp4"},
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
    "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
  "rope_theta": 150000,
  "router_aux_loss_coef": 0.9,
  "sliding_window": 128,
  "swiglu_limit": 7.0,
  "tie_word_embeddings": false,
  "transformers_version": "4.55.0.dev0",
  "use_cache": true,
  "vocab_size": 201088
}"#;

fn parse(text: &str) -> Result<GptOssConfig, GptOssError> {
    GptOssConfig::from_json_str(text, Path::new("test.json"))
}

#[test]
fn released_20b_config_parses_to_the_preset() {
    let parsed = parse(RELEASED_20B).unwrap();
    let mut preset = GptOssConfig::preset("gpt-oss-20b").unwrap();
    preset.quantization_config = parsed.quantization_config.clone();
    assert_eq!(parsed, preset);
}

#[test]
fn released_shapes_are_exact() {
    for (name, layers, experts) in [("gpt-oss-20b", 24, 32), ("gpt-oss-120b", 36, 128)] {
        let c = GptOssConfig::preset(name).unwrap();
        assert_eq!(c.num_hidden_layers, layers);
        assert_eq!(c.num_local_experts, experts);
        assert_eq!((c.hidden_size, c.intermediate_size, c.head_dim), (2880, 2880, 64));
        assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.num_experts_per_tok), (64, 8, 4));
        assert_eq!((c.q_width(), c.kv_width()), (4096, 512));
        assert_eq!((c.vocab_size, c.max_position_embeddings, c.sliding_window), (201088, 131072, Some(128)));
        assert_eq!(c.rope_theta(), Some(150000.0));
        assert_eq!((c.swiglu_limit, c.swiglu_alpha, c.rms_norm_eps), (7.0, 1.702, 1e-5));
        assert_eq!(c.attention_scale(), 0.125);
        assert_eq!(c.window(0), Some(128));
        assert_eq!(c.window(1), None);
    }
}

#[test]
fn tiny_configs_keep_every_feature_and_divide_over_8_and_32_chips() {
    for name in ["tiny", "tiny-tt"] {
        let c = GptOssConfig::preset(name).unwrap();
        assert!(c.layer_types.contains(&LayerType::Sliding) && c.layer_types.contains(&LayerType::Full));
        assert!(c.group_size() > 1, "{name}: GQA");
        assert!(c.num_experts_per_tok > 1, "{name}: top-k > 1");
        assert_ne!(c.q_width(), c.hidden_size, "{name}: q width differs from hidden");
        assert_ne!(c.intermediate_size, c.hidden_size, "{name}: intermediate differs from hidden");
        assert_eq!(c.rope_scaling.rope_type, "yarn");
        assert!(c.attention_bias && !c.tie_word_embeddings);
        for chips in [8, 32] {
            assert_eq!(c.num_local_experts % chips, 0, "{name}: experts over {chips}");
        }
        // Attention and the low-latency experts are tensor-parallel over the 8 mesh columns.
        assert_eq!(c.num_attention_heads % 8, 0, "{name}: heads over 8");
        assert_eq!(c.num_key_value_heads % 8, 0, "{name}: kv heads over 8");
        assert_eq!(c.intermediate_size % 8, 0, "{name}: intermediate over 8");
        let factor = c.rope_scaling.factor.unwrap();
        let original = c.rope_scaling.original_max_position_embeddings.unwrap();
        assert_eq!(c.max_position_embeddings as f64 / original as f64, factor);
    }
    let tt = GptOssConfig::tiny_tt();
    for width in [tt.hidden_size, tt.intermediate_size, tt.q_width(), tt.vocab_size] {
        assert_eq!(width / 8 % 32, 0, "tiny-tt per-chip width {width}/8 is tile aligned");
    }
    assert_eq!(tt.head_dim % 32, 0);
}

#[test]
fn presets_round_trip_through_hf_json() {
    for name in ["gpt-oss-20b", "gpt-oss-120b", "tiny", "tiny-tt"] {
        let c = GptOssConfig::preset(name).unwrap();
        let json = c.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["num_local_experts"], c.num_local_experts);
        assert_eq!(value["rope_scaling"]["rope_type"], "yarn");
        assert_eq!(value["layer_types"][0], "sliding_attention");
        assert_eq!(parse(&json).unwrap(), c);
    }
}

#[test]
fn missing_layer_types_get_hf_defaults_and_rope_parameters_alias_works() {
    let mut value: serde_json::Value = serde_json::from_str(RELEASED_20B).unwrap();
    let obj = value.as_object_mut().unwrap();
    obj.remove("layer_types");
    let mut rope = obj.remove("rope_scaling").unwrap();
    let theta = obj.remove("rope_theta").unwrap();
    rope["rope_theta"] = theta;
    obj.insert("rope_parameters".to_owned(), rope);
    let c = parse(&value.to_string()).unwrap();
    assert_eq!(c.layer_types.len(), 24);
    assert!(c.layer_types.iter().enumerate().all(|(i, t)| (*t == LayerType::Sliding) == (i % 2 == 0)));
    assert_eq!(c.rope_theta(), Some(150000.0));
}

#[test]
fn yarn_matches_the_reference_doc_numbers() {
    let c = GptOssConfig::preset("gpt-oss-20b").unwrap();
    let rope = Rope::new(&c);
    assert!((rope.attention_factor - 1.346_573_6).abs() < 1e-5, "{}", rope.attention_factor);
    // Correction range low ~8.093, high ~17.398: indices <= 8 keep the original frequency,
    // indices >= 18 are divided by the factor 32, 9..=17 blend.
    for (i, &f) in rope.inv_freq.iter().enumerate() {
        let original = 150000f64.powf(-(2.0 * i as f64) / 64.0) as f32;
        let rel = |a: f32, b: f32| ((a - b) / b).abs();
        if i <= 8 {
            assert!(rel(f, original) < 1e-5, "index {i}");
        } else if i >= 18 {
            assert!(rel(f, original / 32.0) < 1e-5, "index {i}");
        } else {
            assert!(f < original && f > original / 32.0, "index {i} blends");
        }
    }
}

#[test]
fn bad_configs_are_typed_errors() {
    let mut value: serde_json::Value = serde_json::from_str(RELEASED_20B).unwrap();
    value["num_key_value_heads"] = 7.into();
    assert!(matches!(parse(&value.to_string()), Err(GptOssError::InvalidConfig { field: "num_key_value_heads", .. })));
    let mut value: serde_json::Value = serde_json::from_str(RELEASED_20B).unwrap();
    value["num_experts_per_tok"] = 64.into();
    value.as_object_mut().unwrap().remove("experts_per_token");
    assert!(matches!(parse(&value.to_string()), Err(GptOssError::InvalidConfig { field: "num_experts_per_tok", .. })));
    let mut value: serde_json::Value = serde_json::from_str(RELEASED_20B).unwrap();
    value["rope_scaling"]["rope_type"] = "longrope".into();
    assert!(matches!(parse(&value.to_string()), Err(GptOssError::InvalidConfig { .. })));
    let mut value: serde_json::Value = serde_json::from_str(RELEASED_20B).unwrap();
    value.as_object_mut().unwrap().remove("hidden_size");
    assert!(matches!(parse(&value.to_string()), Err(GptOssError::ConfigJson { .. })));
    assert!(matches!(parse("not json"), Err(GptOssError::ConfigJson { .. })));
    assert!(matches!(GptOssConfig::preset("gpt-oss-7b"), Err(GptOssError::UnknownPreset(_))));
}

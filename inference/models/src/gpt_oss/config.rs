//! GPT-OSS model configs: HF `config.json` parsing and the built-in presets.
//!
//! Field names are exactly the ones Hugging Face writes, so a released `config.json` parses as
//! is and [`GptOssConfig::to_json`] writes one HF can read back.

use super::error::{GptOssError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Names accepted by [`GptOssConfig::preset`].
pub const PRESET_NAMES: [&str; 4] = ["gpt-oss-20b", "gpt-oss-120b", "tiny", "tiny-tt"];

/// The attention kind of one decoder layer (`layer_types` entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerType {
    /// Causal attention limited to the last `sliding_window` keys (query included).
    #[serde(rename = "sliding_attention")]
    Sliding,
    /// Plain causal attention.
    #[serde(rename = "full_attention")]
    Full,
}

/// HF `rope_scaling` (older configs) or `rope_parameters` (newer ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `"yarn"` for GPT-OSS; `"default"` means plain RoPE.
    pub rope_type: String,
    /// Context extension factor.
    #[serde(default = "one", skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// YaRN fast boundary (rotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_fast: Option<f64>,
    /// YaRN slow boundary (rotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_slow: Option<f64>,
    /// Context length the model was pre-trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
    /// Whether the correction range is floored/ceiled (HF default true; GPT-OSS sets false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Explicit cos/sin multiplier; derived from `factor` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_factor: Option<f64>,
    /// DeepSeek-style mscale (used only together with `mscale_all_dim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mscale: Option<f64>,
    /// DeepSeek-style mscale_all_dim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mscale_all_dim: Option<f64>,
    /// Newer HF configs move `rope_theta` in here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
}

fn one() -> Option<f64> {
    Some(1.0)
}

fn default_alpha() -> f64 {
    1.702
}

fn default_limit() -> f64 {
    7.0
}

fn default_eps() -> f64 {
    1e-5
}

fn default_true() -> bool {
    true
}

fn default_model_type() -> String {
    "gpt_oss".to_owned()
}

/// A GPT-OSS `config.json`, with HF's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptOssConfig {
    /// HF architecture list (`["GptOssForCausalLM"]`).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Always `"gpt_oss"`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Residual stream width.
    pub hidden_size: usize,
    /// Per-expert intermediate width.
    pub intermediate_size: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA).
    pub num_key_value_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// Experts per layer.
    pub num_local_experts: usize,
    /// Experts selected per token.
    #[serde(default)]
    pub num_experts_per_tok: usize,
    /// The released configs' duplicate of `num_experts_per_tok`, used when that one is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts_per_token: Option<usize>,
    /// Keys visible to a sliding layer's query, itself included.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Attention kind per layer; HF's default (even sliding, odd full) is filled in when absent.
    #[serde(default)]
    pub layer_types: Vec<LayerType>,
    /// RoPE base; newer configs keep it inside `rope_parameters` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// YaRN parameters (HF's default, yarn x32 over 4096, when the config has none).
    #[serde(default = "hf_default_rope")]
    pub rope_scaling: RopeScaling,
    /// Newer HF configs' name for `rope_scaling`; moved there when `rope_scaling` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeScaling>,
    /// Longest supported context.
    pub max_position_embeddings: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Clamp of the expert SwiGLU.
    #[serde(default = "default_limit")]
    pub swiglu_limit: f64,
    /// Sigmoid gain of the expert SwiGLU (hard-coded 1.702 in older HF code).
    #[serde(default = "default_alpha")]
    pub swiglu_alpha: f64,
    /// Whether q/k/v/o carry biases (always true for GPT-OSS).
    #[serde(default = "default_true")]
    pub attention_bias: bool,
    /// Whether lm_head shares the embedding (false for GPT-OSS).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Padding token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// End-of-sequence token(s), kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<serde_json::Value>,
    /// Init std HF uses; informational here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer_range: Option<f64>,
    /// Informational (`"silu"`); the experts' activation is the clamped SwiGLU regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Training-only coefficient, kept so configs round-trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_aux_loss_coef: Option<f64>,
    /// Present in MXFP4 checkpoints; the loader detects MXFP4 tensors by name, not by this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_config: Option<serde_json::Value>,
}

impl GptOssConfig {
    /// Parses a `config.json` text, fills HF defaults and validates it.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self> {
        let json_error = |source| GptOssError::ConfigJson { path: origin.to_path_buf(), source };
        let value: serde_json::Value = serde_json::from_str(text).map_err(json_error)?;
        let has_rope_scaling = value.get("rope_scaling").is_some_and(|v| !v.is_null());
        let mut config: GptOssConfig = serde_json::from_value(value).map_err(json_error)?;
        if !has_rope_scaling {
            if let Some(parameters) = config.rope_parameters.take() {
                config.rope_scaling = parameters;
            }
        }
        if config.num_experts_per_tok == 0 {
            config.num_experts_per_tok = config.experts_per_token.unwrap_or(0);
        }
        if config.layer_types.is_empty() {
            // HF: "sliding_attention" if (i + 1) % 2 else "full_attention".
            config.layer_types = (0..config.num_hidden_layers)
                .map(|i| if (i + 1) % 2 == 1 { LayerType::Sliding } else { LayerType::Full })
                .collect();
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses `path` (a `config.json`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| GptOssError::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Serializes as a pretty-printed HF `config.json`.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail; fall back to an empty object anyway.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// A built-in config by name (see [`PRESET_NAMES`]).
    pub fn preset(name: &str) -> Result<Self> {
        let config = match name {
            "gpt-oss-20b" | "20b" => Self::released(24, 32),
            "gpt-oss-120b" | "120b" => Self::released(36, 128),
            "tiny" => Self::tiny(),
            "tiny-tt" => Self::tiny_tt(),
            other => return Err(GptOssError::UnknownPreset(other.to_owned())),
        };
        config.validate()?;
        Ok(config)
    }

    fn released(layers: usize, experts: usize) -> Self {
        GptOssConfig {
            architectures: vec!["GptOssForCausalLM".to_owned()],
            model_type: default_model_type(),
            num_hidden_layers: layers,
            hidden_size: 2880,
            intermediate_size: 2880,
            num_attention_heads: 64,
            num_key_value_heads: 8,
            head_dim: 64,
            num_local_experts: experts,
            num_experts_per_tok: 4,
            experts_per_token: Some(4),
            sliding_window: Some(128),
            layer_types: alternating(layers),
            rope_theta: Some(150000.0),
            rope_scaling: yarn(32.0, 4096),
            rope_parameters: None,
            max_position_embeddings: 131072,
            vocab_size: 201088,
            rms_norm_eps: 1e-5,
            swiglu_limit: 7.0,
            swiglu_alpha: 1.702,
            attention_bias: true,
            tie_word_embeddings: false,
            pad_token_id: Some(199999),
            eos_token_id: Some(serde_json::Value::from(200002)),
            initializer_range: Some(0.02),
            hidden_act: Some("silu".to_owned()),
            router_aux_loss_coef: Some(0.9),
            quantization_config: None,
        }
    }

    /// The smallest config with every structural feature, sized for fast CPU golden tests and
    /// still divisible over 8 chips (heads, kv heads, intermediate) and 32 chips (experts).
    ///
    /// Window 8 is below the test sequence lengths so sliding layers really slide; q width 256
    /// and intermediate 128 differ from hidden 64 so transposition bugs change shapes.
    pub fn tiny() -> Self {
        GptOssConfig {
            num_hidden_layers: 2,
            hidden_size: 64,
            intermediate_size: 128,
            num_attention_heads: 16,
            num_key_value_heads: 8,
            head_dim: 16,
            num_local_experts: 32,
            num_experts_per_tok: 4,
            sliding_window: Some(8),
            layer_types: alternating(2),
            // max / original == factor so HF versions that derive the factor from that ratio agree.
            rope_scaling: yarn(4.0, 32),
            max_position_embeddings: 128,
            vocab_size: 256,
            pad_token_id: Some(0),
            eos_token_id: Some(serde_json::Value::from(1)),
            router_aux_loss_coef: Some(0.001),
            ..Self::released(2, 32)
        }
    }

    /// The tile-aligned tiny config for the simulated mesh (reference doc section 1.2 "TT-tiny"):
    /// every per-chip width is a multiple of 32 on 1x8 and 4x8, experts split over 32 chips.
    pub fn tiny_tt() -> Self {
        GptOssConfig {
            num_hidden_layers: 2,
            hidden_size: 512,
            intermediate_size: 256,
            num_attention_heads: 16,
            num_key_value_heads: 8,
            head_dim: 64,
            num_local_experts: 32,
            num_experts_per_tok: 4,
            sliding_window: Some(128),
            layer_types: alternating(2),
            rope_scaling: yarn(32.0, 128),
            max_position_embeddings: 4096,
            vocab_size: 1024,
            pad_token_id: Some(0),
            eos_token_id: Some(serde_json::Value::from(1)),
            router_aux_loss_coef: Some(0.001),
            ..Self::released(2, 32)
        }
    }

    /// Checks the invariants the reference and the loaders rely on.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(GptOssError::InvalidConfig { field, reason });
        let positive = [
            ("num_hidden_layers", self.num_hidden_layers),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("num_local_experts", self.num_local_experts),
            ("num_experts_per_tok", self.num_experts_per_tok),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, value) in positive {
            if value == 0 {
                return bad(field, "must be positive".to_owned());
            }
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            );
        }
        if self.head_dim % 2 != 0 {
            return bad("head_dim", format!("{} is odd; the half-split RoPE needs it even", self.head_dim));
        }
        if self.num_experts_per_tok > self.num_local_experts {
            return bad(
                "num_experts_per_tok",
                format!("{} exceeds num_local_experts {}", self.num_experts_per_tok, self.num_local_experts),
            );
        }
        if self.experts_per_token.is_some_and(|k| k != self.num_experts_per_tok) {
            return bad(
                "experts_per_token",
                format!("{:?} disagrees with num_experts_per_tok {}", self.experts_per_token, self.num_experts_per_tok),
            );
        }
        if self.layer_types.len() != self.num_hidden_layers {
            return bad(
                "layer_types",
                format!("{} entries for {} layers", self.layer_types.len(), self.num_hidden_layers),
            );
        }
        if self.layer_types.contains(&LayerType::Sliding) && !matches!(self.sliding_window, Some(w) if w > 0) {
            return bad("sliding_window", "sliding layers need a positive window".to_owned());
        }
        if !self.attention_bias {
            return bad("attention_bias", "GPT-OSS attention always has biases".to_owned());
        }
        if self.tie_word_embeddings {
            return bad("tie_word_embeddings", "GPT-OSS keeps lm_head separate".to_owned());
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return bad("rms_norm_eps", format!("{} is not a finite non-negative number", self.rms_norm_eps));
        }
        if !(self.swiglu_limit.is_finite() && self.swiglu_limit > 0.0) {
            return bad("swiglu_limit", format!("{} is not a finite positive number", self.swiglu_limit));
        }
        if !self.swiglu_alpha.is_finite() {
            return bad("swiglu_alpha", "not finite".to_owned());
        }
        match self.rope_theta() {
            Some(theta) if theta.is_finite() && theta > 1.0 => {}
            other => return bad("rope_theta", format!("{other:?} is missing or not a base > 1")),
        }
        let rope = &self.rope_scaling;
        match rope.rope_type.as_str() {
            "yarn" => {
                if !matches!(rope.factor, Some(f) if f.is_finite() && f >= 1.0) {
                    return bad("rope_scaling.factor", format!("{:?} is not a number >= 1", rope.factor));
                }
            }
            "default" => {}
            other => return bad("rope_scaling.rope_type", format!("{other:?} (supported: yarn, default)")),
        }
        Ok(())
    }

    /// The RoPE base, wherever the config keeps it.
    pub fn rope_theta(&self) -> Option<f64> {
        self.rope_theta.or(self.rope_scaling.rope_theta)
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads.max(1)
    }

    /// Width of the concatenated query heads (`num_attention_heads * head_dim`).
    pub fn q_width(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the concatenated key (or value) heads.
    pub fn kv_width(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// The window of `layer`, or `None` for a full-attention layer.
    pub fn window(&self, layer: usize) -> Option<usize> {
        match self.layer_types.get(layer) {
            Some(LayerType::Sliding) => self.sliding_window,
            _ => None,
        }
    }

    /// The same model with `layers` decoder layers, alternating sliding and full attention
    /// from a sliding layer 0 as the released models do: for scale runs and deeper tiny models.
    pub fn with_layers(&self, layers: usize) -> Result<Self> {
        let config = GptOssConfig { num_hidden_layers: layers, layer_types: alternating(layers), ..self.clone() };
        config.validate()?;
        Ok(config)
    }

    /// Softmax temperature of the attention scores (`head_dim ** -0.5`).
    pub fn attention_scale(&self) -> f32 {
        (self.head_dim as f64).powf(-0.5) as f32
    }
}

fn alternating(layers: usize) -> Vec<LayerType> {
    (0..layers).map(|i| if i % 2 == 0 { LayerType::Sliding } else { LayerType::Full }).collect()
}

fn hf_default_rope() -> RopeScaling {
    yarn(32.0, 4096)
}

fn yarn(factor: f64, original_max: usize) -> RopeScaling {
    RopeScaling {
        rope_type: "yarn".to_owned(),
        factor: Some(factor),
        beta_fast: Some(32.0),
        beta_slow: Some(1.0),
        original_max_position_embeddings: Some(original_max),
        truncate: Some(false),
        attention_factor: None,
        mscale: None,
        mscale_all_dim: None,
        rope_theta: None,
    }
}

//! Writing [`ModelWeights`] as an HF checkpoint directory (`config.json` + `model.safetensors`).

use super::dtype::{bf16_bytes, f32_bytes};
use crate::gpt_oss::error::{GptOssError, Result};
use crate::gpt_oss::mxfp4;
use crate::gpt_oss::weights::{LayerParam, ModelWeights, Param};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::Path;

/// Float dtype of the written tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreDtype {
    /// bfloat16, as released checkpoints store their unquantized tensors.
    #[default]
    Bf16,
    /// f32, lossless.
    F32,
}

/// How to write a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// dtype of every float tensor.
    pub dtype: StoreDtype,
    /// Store expert `gate_up_proj` / `down_proj` as MXFP4 `_blocks` + `_scales`, as the released
    /// checkpoints do (lossy: the loaded weights are the quantized values).
    pub mxfp4_experts: bool,
}

struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Writes `dir/config.json` and `dir/model.safetensors`, creating `dir` if needed.
pub fn write_checkpoint(dir: &Path, weights: &ModelWeights, options: WriteOptions) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| GptOssError::io(dir, e))?;
    let mut config = weights.config.clone();
    config.quantization_config = options.mxfp4_experts.then(|| {
        serde_json::json!({
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
        })
    });
    let mut entries = Vec::new();
    for param in Param::all(&weights.config) {
        let name = param.name();
        let tensor = weights.get(param).ok_or_else(|| GptOssError::MissingTensor { name: name.clone() })?;
        let quantize =
            options.mxfp4_experts && matches!(param, Param::Layer(_, p) if LayerParam::is_mxfp4_candidate(p));
        if quantize {
            let q = mxfp4::quantize(tensor).map_err(|source| GptOssError::Mxfp4 { name: name.clone(), source })?;
            entries.push(Entry {
                name: format!("{name}_blocks"),
                dtype: Dtype::U8,
                shape: q.blocks_shape,
                bytes: q.blocks,
            });
            entries.push(Entry {
                name: format!("{name}_scales"),
                dtype: Dtype::U8,
                shape: q.scales_shape,
                bytes: q.scales,
            });
            continue;
        }
        let (dtype, bytes) = match options.dtype {
            StoreDtype::Bf16 => (Dtype::BF16, bf16_bytes(&tensor.data)),
            StoreDtype::F32 => (Dtype::F32, f32_bytes(&tensor.data)),
        };
        entries.push(Entry { name, dtype, shape: tensor.shape.clone(), bytes });
    }
    let path = dir.join("model.safetensors");
    let views = entries
        .iter()
        .map(|e| {
            TensorView::new(e.dtype, e.shape.clone(), &e.bytes)
                .map(|v| (e.name.clone(), v))
                .map_err(|source| GptOssError::Safetensors { path: path.clone(), source })
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|source| GptOssError::Safetensors { path: path.clone(), source })?;
    std::fs::write(&path, bytes).map_err(|e| GptOssError::io(&path, e))?;
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_json()).map_err(|e| GptOssError::io(&config_path, e))?;
    Ok(())
}

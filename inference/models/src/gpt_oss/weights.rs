//! The model's parameters in HF layout, and the table of HF tensor names and shapes that both
//! the loader and the writer follow.

use super::config::GptOssConfig;
use super::tensor::Tensor;

/// Self-attention parameters of one layer (HF `nn.Linear` layout: weight `[out, in]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionWeights {
    /// `q_proj.weight` `[nh*d, H]`.
    pub q_proj: Tensor,
    /// `q_proj.bias` `[nh*d]`.
    pub q_bias: Tensor,
    /// `k_proj.weight` `[nkv*d, H]`.
    pub k_proj: Tensor,
    /// `k_proj.bias` `[nkv*d]`.
    pub k_bias: Tensor,
    /// `v_proj.weight` `[nkv*d, H]`.
    pub v_proj: Tensor,
    /// `v_proj.bias` `[nkv*d]`.
    pub v_bias: Tensor,
    /// `o_proj.weight` `[H, nh*d]`.
    pub o_proj: Tensor,
    /// `o_proj.bias` `[H]`.
    pub o_bias: Tensor,
    /// `sinks` `[nh]`: one extra softmax logit per head.
    pub sinks: Tensor,
}

/// Router parameters of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterWeights {
    /// `router.weight` `[E, H]`.
    pub weight: Tensor,
    /// `router.bias` `[E]`.
    pub bias: Tensor,
}

/// Expert parameters of one layer, stacked over experts and stored input-major (`x @ W`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpertWeights {
    /// `gate_up_proj` `[E, H, 2I]`, gate in even columns and up in odd columns.
    pub gate_up_proj: Tensor,
    /// `gate_up_proj_bias` `[E, 2I]`, interleaved like the weight.
    pub gate_up_bias: Tensor,
    /// `down_proj` `[E, I, H]`.
    pub down_proj: Tensor,
    /// `down_proj_bias` `[E, H]`.
    pub down_bias: Tensor,
}

/// One decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// `input_layernorm.weight` `[H]`.
    pub input_norm: Tensor,
    /// Self-attention.
    pub attn: AttentionWeights,
    /// `post_attention_layernorm.weight` `[H]`.
    pub post_norm: Tensor,
    /// Router.
    pub router: RouterWeights,
    /// Experts.
    pub experts: ExpertWeights,
}

/// The whole model: config plus every parameter, dequantized to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWeights {
    /// The config the shapes follow.
    pub config: GptOssConfig,
    /// `model.embed_tokens.weight` `[V, H]`.
    pub embed: Tensor,
    /// Decoder layers in order.
    pub layers: Vec<LayerWeights>,
    /// `model.norm.weight` `[H]`.
    pub norm: Tensor,
    /// `lm_head.weight` `[V, H]`.
    pub lm_head: Tensor,
}

/// Which parameter of the model an HF tensor name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Token embedding.
    Embed,
    /// Final norm.
    Norm,
    /// Output projection.
    LmHead,
    /// A per-layer parameter.
    Layer(usize, LayerParam),
}

/// The per-layer parameters, in HF's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerParam {
    /// `input_layernorm.weight`.
    InputNorm,
    /// `self_attn.q_proj.weight`.
    QProj,
    /// `self_attn.q_proj.bias`.
    QBias,
    /// `self_attn.k_proj.weight`.
    KProj,
    /// `self_attn.k_proj.bias`.
    KBias,
    /// `self_attn.v_proj.weight`.
    VProj,
    /// `self_attn.v_proj.bias`.
    VBias,
    /// `self_attn.o_proj.weight`.
    OProj,
    /// `self_attn.o_proj.bias`.
    OBias,
    /// `self_attn.sinks`.
    Sinks,
    /// `post_attention_layernorm.weight`.
    PostNorm,
    /// `mlp.router.weight`.
    RouterWeight,
    /// `mlp.router.bias`.
    RouterBias,
    /// `mlp.experts.gate_up_proj` (MXFP4 checkpoints: `_blocks` + `_scales`).
    GateUp,
    /// `mlp.experts.gate_up_proj_bias`.
    GateUpBias,
    /// `mlp.experts.down_proj` (MXFP4 checkpoints: `_blocks` + `_scales`).
    Down,
    /// `mlp.experts.down_proj_bias`.
    DownBias,
}

impl LayerParam {
    /// Every per-layer parameter.
    pub const ALL: [LayerParam; 17] = [
        LayerParam::InputNorm,
        LayerParam::QProj,
        LayerParam::QBias,
        LayerParam::KProj,
        LayerParam::KBias,
        LayerParam::VProj,
        LayerParam::VBias,
        LayerParam::OProj,
        LayerParam::OBias,
        LayerParam::Sinks,
        LayerParam::PostNorm,
        LayerParam::RouterWeight,
        LayerParam::RouterBias,
        LayerParam::GateUp,
        LayerParam::GateUpBias,
        LayerParam::Down,
        LayerParam::DownBias,
    ];

    fn suffix(self) -> &'static str {
        match self {
            LayerParam::InputNorm => "input_layernorm.weight",
            LayerParam::QProj => "self_attn.q_proj.weight",
            LayerParam::QBias => "self_attn.q_proj.bias",
            LayerParam::KProj => "self_attn.k_proj.weight",
            LayerParam::KBias => "self_attn.k_proj.bias",
            LayerParam::VProj => "self_attn.v_proj.weight",
            LayerParam::VBias => "self_attn.v_proj.bias",
            LayerParam::OProj => "self_attn.o_proj.weight",
            LayerParam::OBias => "self_attn.o_proj.bias",
            LayerParam::Sinks => "self_attn.sinks",
            LayerParam::PostNorm => "post_attention_layernorm.weight",
            LayerParam::RouterWeight => "mlp.router.weight",
            LayerParam::RouterBias => "mlp.router.bias",
            LayerParam::GateUp => "mlp.experts.gate_up_proj",
            LayerParam::GateUpBias => "mlp.experts.gate_up_proj_bias",
            LayerParam::Down => "mlp.experts.down_proj",
            LayerParam::DownBias => "mlp.experts.down_proj_bias",
        }
    }

    /// Whether released checkpoints store this parameter as MXFP4 blocks and scales.
    pub fn is_mxfp4_candidate(self) -> bool {
        matches!(self, LayerParam::GateUp | LayerParam::Down)
    }
}

impl Param {
    /// Every parameter of a model with `config`, in HF's order.
    pub fn all(config: &GptOssConfig) -> Vec<Param> {
        let mut all = vec![Param::Embed];
        for layer in 0..config.num_hidden_layers {
            all.extend(LayerParam::ALL.iter().map(|&p| Param::Layer(layer, p)));
        }
        all.push(Param::Norm);
        all.push(Param::LmHead);
        all
    }

    /// The HF tensor name.
    pub fn name(self) -> String {
        match self {
            Param::Embed => "model.embed_tokens.weight".to_owned(),
            Param::Norm => "model.norm.weight".to_owned(),
            Param::LmHead => "lm_head.weight".to_owned(),
            Param::Layer(i, p) => format!("model.layers.{i}.{}", p.suffix()),
        }
    }

    /// The dequantized shape the config implies.
    pub fn shape(self, c: &GptOssConfig) -> Vec<usize> {
        let (h, e, i) = (c.hidden_size, c.num_local_experts, c.intermediate_size);
        match self {
            Param::Embed | Param::LmHead => vec![c.vocab_size, h],
            Param::Norm => vec![h],
            Param::Layer(_, p) => match p {
                LayerParam::InputNorm | LayerParam::PostNorm | LayerParam::OBias => vec![h],
                LayerParam::QProj => vec![c.q_width(), h],
                LayerParam::QBias => vec![c.q_width()],
                LayerParam::KProj | LayerParam::VProj => vec![c.kv_width(), h],
                LayerParam::KBias | LayerParam::VBias => vec![c.kv_width()],
                LayerParam::OProj => vec![h, c.q_width()],
                LayerParam::Sinks => vec![c.num_attention_heads],
                LayerParam::RouterWeight => vec![e, h],
                LayerParam::RouterBias => vec![e],
                LayerParam::GateUp => vec![e, h, 2 * i],
                LayerParam::GateUpBias => vec![e, 2 * i],
                LayerParam::Down => vec![e, i, h],
                LayerParam::DownBias => vec![e, h],
            },
        }
    }
}

impl LayerWeights {
    /// The tensor holding `param`.
    pub fn get(&self, param: LayerParam) -> &Tensor {
        match param {
            LayerParam::InputNorm => &self.input_norm,
            LayerParam::QProj => &self.attn.q_proj,
            LayerParam::QBias => &self.attn.q_bias,
            LayerParam::KProj => &self.attn.k_proj,
            LayerParam::KBias => &self.attn.k_bias,
            LayerParam::VProj => &self.attn.v_proj,
            LayerParam::VBias => &self.attn.v_bias,
            LayerParam::OProj => &self.attn.o_proj,
            LayerParam::OBias => &self.attn.o_bias,
            LayerParam::Sinks => &self.attn.sinks,
            LayerParam::PostNorm => &self.post_norm,
            LayerParam::RouterWeight => &self.router.weight,
            LayerParam::RouterBias => &self.router.bias,
            LayerParam::GateUp => &self.experts.gate_up_proj,
            LayerParam::GateUpBias => &self.experts.gate_up_bias,
            LayerParam::Down => &self.experts.down_proj,
            LayerParam::DownBias => &self.experts.down_bias,
        }
    }

    /// Builds a layer by asking `take` for each parameter in [`LayerParam::ALL`] order.
    pub fn build<E>(mut take: impl FnMut(LayerParam) -> Result<Tensor, E>) -> Result<Self, E> {
        Ok(LayerWeights {
            input_norm: take(LayerParam::InputNorm)?,
            attn: AttentionWeights {
                q_proj: take(LayerParam::QProj)?,
                q_bias: take(LayerParam::QBias)?,
                k_proj: take(LayerParam::KProj)?,
                k_bias: take(LayerParam::KBias)?,
                v_proj: take(LayerParam::VProj)?,
                v_bias: take(LayerParam::VBias)?,
                o_proj: take(LayerParam::OProj)?,
                o_bias: take(LayerParam::OBias)?,
                sinks: take(LayerParam::Sinks)?,
            },
            post_norm: take(LayerParam::PostNorm)?,
            router: RouterWeights { weight: take(LayerParam::RouterWeight)?, bias: take(LayerParam::RouterBias)? },
            experts: ExpertWeights {
                gate_up_proj: take(LayerParam::GateUp)?,
                gate_up_bias: take(LayerParam::GateUpBias)?,
                down_proj: take(LayerParam::Down)?,
                down_bias: take(LayerParam::DownBias)?,
            },
        })
    }
}

impl ModelWeights {
    /// The tensor holding `param`, or `None` for a layer index out of range.
    pub fn get(&self, param: Param) -> Option<&Tensor> {
        match param {
            Param::Embed => Some(&self.embed),
            Param::Norm => Some(&self.norm),
            Param::LmHead => Some(&self.lm_head),
            Param::Layer(i, p) => self.layers.get(i).map(|l| l.get(p)),
        }
    }

    /// Builds a model by asking `take` for every parameter of `config`.
    pub fn build<E>(config: GptOssConfig, mut take: impl FnMut(Param) -> Result<Tensor, E>) -> Result<Self, E> {
        let embed = take(Param::Embed)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| LayerWeights::build(|p| take(Param::Layer(i, p))))
            .collect::<Result<Vec<_>, E>>()?;
        let norm = take(Param::Norm)?;
        let lm_head = take(Param::LmHead)?;
        Ok(ModelWeights { config, embed, layers, norm, lm_head })
    }

    /// Every parameter of `config` as a shape without values: what plan mode uploads to a
    /// placement-only mesh, so the full-size model runs through the device code without the
    /// host memory its values would take.
    pub fn shapes(config: GptOssConfig) -> Self {
        let c = config.clone();
        let built: Result<Self, std::convert::Infallible> =
            Self::build(config, |p| Ok(Tensor::shape_only(&p.shape(&c))));
        match built {
            Ok(w) => w,
            Err(never) => match never {},
        }
    }
}

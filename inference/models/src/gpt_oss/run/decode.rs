//! The decode phase of the module tests: the prompt fills a KV cache (device prefill on the
//! mesh, the reference's `LayerCache` / `KvCache` on the host), then each decode step runs one
//! token through the module and is compared with the reference continuing its cache. The PCC
//! of a module is over all decode steps together, as one token alone is a short vector.

use super::error::RunError;
use super::module::Module;
use super::session::Session;
use crate::common::pcc::pcc;
use crate::common::rng::SplitMix64;
use crate::gpt_oss::device::{
    decode_attention, decode_experts, decode_layer, prefill_attention_fill, DecodeAttention, DecodeModel,
    DecodePosition, DeviceAttention, DeviceExperts, DeviceKvCache, DeviceLayer, DeviceModel, BLOCK, KV_BLOCK,
};
use crate::gpt_oss::reference::{self, LayerCache, Reference};
use crate::gpt_oss::rope::Rope;
use ttsan_events::Role;
use ttsan_sim::ops::{self, Out};
use ttsan_sim::{DType, Distribution, HostTensor, TensorSpec};

/// A whole-model run of the prompt followed by greedy decode steps.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDecode {
    /// PCC of the prompt's logits.
    pub prefill_pcc: f64,
    /// PCC of the decode steps' logits, all steps together.
    pub decode_pcc: f64,
    /// The logits `[prompt + steps, vocab]`: the prompt's rows, then one row per step.
    pub logits: Vec<f32>,
    /// Rows of `logits`.
    pub rows: usize,
}

/// The index of the largest value (the first on ties), as greedy sampling picks a token.
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

impl Session<'_> {
    /// Cache positions for the prompt and the decode steps, whole paged blocks so the same
    /// size also suits a paged cache.
    fn cache_positions(&self) -> usize {
        (self.tokens + self.steps).div_ceil(KV_BLOCK) * KV_BLOCK
    }

    /// One decode step's input row: N(0, 1), distinct per module (`salt`) and step.
    fn step_input(&self, salt: u64, step: usize) -> Vec<f32> {
        let h = self.weights.config.hidden_size;
        SplitMix64::new(self.seed ^ salt ^ ((step as u64 + 1) << 32)).normal_vec(h, 0.0, 1.0)
    }

    /// Module tests feed random activations of the prompt's length straight to one module, so
    /// they need whole tiles; only the whole model pads a prompt of any length (its embedding
    /// turns padded token ids into rows, as tt-metal's generator pads them).
    pub(super) fn need_whole_tiles(&self, module: Module) -> Result<(), RunError> {
        if module != Module::Model && self.tokens % BLOCK != 0 {
            return Err(RunError::Usage(format!(
                "--seq-len {}: the {module} module test takes a multiple of {BLOCK} tokens (the whole model, \
                 without --modules, takes any length)",
                self.tokens
            )));
        }
        Ok(())
    }

    fn need_steps(&self) -> Result<(), RunError> {
        if self.steps == 0 {
            return Err(RunError::Usage("decode needs --decode-steps of at least 1".into()));
        }
        Ok(())
    }

    fn device_attention(&mut self) -> Result<DeviceAttention, RunError> {
        let (c, l) = (&self.weights.config, self.layer);
        if let Some(a) = &self.attn {
            return Ok(a.clone());
        }
        let a = DeviceAttention::upload(&mut self.mesh, c, &self.weights.layers[l].attn, l)?;
        self.attn = Some(a.clone());
        Ok(a)
    }

    /// Attention decode: the prompt fills the layer's cache through the prefill attention
    /// (`fill_cache`), then each step runs `decode_attention` at the next position.
    pub(super) fn attention_decode(&mut self) -> Result<f64, RunError> {
        self.need_steps()?;
        let weights = self.weights;
        let (c, l) = (&weights.config, self.layer);
        let w = &weights.layers[l].attn;
        if self.decode_attn.is_none() {
            // The decode sinks join the prefill placement, as the demo's one attention object
            // serves both.
            let attn = self.device_attention()?;
            self.decode_attn = Some(DecodeAttention::with_prefill(&mut self.mesh, attn, w, l)?);
        }
        let Some(att) = self.decode_attn.clone() else {
            return Err(RunError::Usage("attention upload failed".into()));
        };
        let rope = Rope::new(c);
        let prompt = self.input(0xa77);
        let positions = self.cache_positions();
        let cache = DeviceKvCache::new(&mut self.mesh, c, positions, false)?;
        let kv = cache.layers.get(l).cloned().ok_or_else(|| RunError::Usage(format!("no cache for layer {l}")))?;
        let (cos, sin) = att.attn.rope_tables(&mut self.mesh, &rope, 0, self.tokens)?;
        let xt = self.upload_x(&prompt, &format!("layer{l}.attn.input"))?;
        let pre = prefill_attention_fill(&mut self.mesh, &mut self.ccl, &att.attn, &xt, &cos, &sin, &kv, None)?;
        for t in [&pre, &xt, &cos, &sin] {
            self.mesh.deallocate(t)?;
        }
        let mut golden_cache = LayerCache::new(c.kv_width());
        reference::attention(c, l, w, &rope, &prompt, &mut golden_cache)?;
        let (mut golden, mut got) = (Vec::new(), Vec::new());
        for step in 0..self.steps {
            let x = self.step_input(0xa77, step);
            golden.extend(reference::attention(c, l, w, &rope, &x, &mut golden_cache)?.out);
            let xt = self.upload_x(&x, &format!("layer{l}.attn.decode_input"))?;
            let position = DecodePosition::upload(&mut self.mesh, &att.attn, &rope, self.tokens + step)?;
            let out = decode_attention(&mut self.mesh, &mut self.ccl, &att, &xt, &kv, None, &position)?;
            got.extend(self.read(&out)?);
            for t in [&out, &xt] {
                self.mesh.deallocate(t)?;
            }
            position.deallocate(&mut self.mesh)?;
        }
        cache.deallocate(&mut self.mesh)?;
        Ok(pcc(&golden, &got)?)
    }

    /// Router decode: one token per step.
    pub(super) fn router_decode(&mut self) -> Result<f64, RunError> {
        self.need_steps()?;
        let (mut golden, mut got) = (Vec::new(), Vec::new());
        for step in 0..self.steps {
            let x = self.step_input(0x70, step);
            let (g, d) = self.route_compare(&x)?;
            golden.extend(g);
            got.extend(d);
        }
        Ok(pcc(&golden, &got)?)
    }

    /// Low-latency experts decode (EP over the rows when there are several), routed by the
    /// reference router, as the module test feeds the experts a given routing.
    pub(super) fn experts_decode(&mut self) -> Result<f64, RunError> {
        self.need_steps()?;
        let weights = self.weights;
        let (c, l) = (&weights.config, self.layer);
        let lw = &weights.layers[l];
        if self.experts.is_none() {
            self.experts = Some(DeviceExperts::upload(&mut self.mesh, c, &lw.experts, l)?);
        }
        let Some(ex) = self.experts.clone() else { return Err(RunError::Usage("experts upload failed".into())) };
        let (e, k) = (c.num_local_experts, c.num_experts_per_tok);
        let (mut golden, mut got) = (Vec::new(), Vec::new());
        for step in 0..self.steps {
            let x = self.step_input(0xe7, step);
            let routing = reference::route(&lw.router, &x, c.hidden_size, k);
            golden.extend(reference::experts(c, &lw.experts, &x, &routing)?);
            let xt = self.upload_x(&x, &format!("layer{l}.experts.decode_input"))?;
            let dense = HostTensor::new(vec![1, 1, 1, e], routing.dense())?;
            let spec = TensorSpec::new(&[1, 1, 1, e], DType::Bf16);
            let name = format!("layer{l}.experts.decode_routing");
            let rt = self.mesh.from_host(&dense, &spec, &Distribution::Replicate, &name, Role::Activation)?;
            let out = decode_experts(&mut self.mesh, &mut self.ccl, &ex, &xt, &rt, k)?;
            got.extend(self.read(&out)?);
            for t in [&out, &xt, &rt] {
                self.mesh.deallocate(t)?;
            }
        }
        Ok(pcc(&golden, &got)?)
    }

    /// Decoder-layer decode: the normed prompt fills the layer's cache through the prefill
    /// attention, then each step runs `decode_layer`.
    pub(super) fn decoder_decode(&mut self) -> Result<f64, RunError> {
        self.need_steps()?;
        let weights = self.weights;
        let (c, l) = (&weights.config, self.layer);
        let lw = &weights.layers[l];
        if self.decode_layer.is_none() {
            let layer = match &self.decoder {
                Some(d) => d.clone(),
                None => {
                    let d = DeviceLayer::upload(&mut self.mesh, c, lw, l)?;
                    self.decoder = Some(d.clone());
                    d
                }
            };
            let att = DecodeAttention::with_prefill(&mut self.mesh, layer.attn.clone(), &lw.attn, l)?;
            self.decode_layer = Some((layer, att));
        }
        let Some((layer, att)) = self.decode_layer.clone() else {
            return Err(RunError::Usage("layer upload failed".into()));
        };
        let rope = Rope::new(c);
        let prompt = self.input(0xdec);
        let positions = self.cache_positions();
        let cache = DeviceKvCache::new(&mut self.mesh, c, positions, false)?;
        let kv = cache.layers.get(l).cloned().ok_or_else(|| RunError::Usage(format!("no cache for layer {l}")))?;
        let pt = self.upload_x(&prompt, &format!("layer{l}.input"))?;
        let normed = ops::rms_norm(
            &mut self.mesh,
            &pt,
            Some(&layer.input_norm),
            layer.eps,
            &Out::dram().named("layer.input_norm"),
        )?;
        let (cos, sin) = layer.attn.rope_tables(&mut self.mesh, &rope, 0, self.tokens)?;
        let pre = prefill_attention_fill(&mut self.mesh, &mut self.ccl, &layer.attn, &normed, &cos, &sin, &kv, None)?;
        for t in [&pre, &pt, &normed, &cos, &sin] {
            self.mesh.deallocate(t)?;
        }
        let mut golden_cache = LayerCache::new(c.kv_width());
        let mut p = prompt;
        reference::decoder_layer(c, l, lw, &rope, &mut p, &mut golden_cache)?;
        let (mut golden, mut got) = (Vec::new(), Vec::new());
        for step in 0..self.steps {
            let mut x = self.step_input(0xdec, step);
            let xt = self.upload_x(&x, &format!("layer{l}.decode_input"))?;
            reference::decoder_layer(c, l, lw, &rope, &mut x, &mut golden_cache)?;
            golden.extend(x);
            let position = DecodePosition::upload(&mut self.mesh, &layer.attn, &rope, self.tokens + step)?;
            let out = decode_layer(&mut self.mesh, &mut self.ccl, &layer, &att, xt, &kv, None, &position)?;
            got.extend(self.read(&out)?);
            self.mesh.deallocate(&out)?;
            position.deallocate(&mut self.mesh)?;
        }
        cache.deallocate(&mut self.mesh)?;
        Ok(pcc(&golden, &got)?)
    }

    /// The whole model: a device prefill of the prompt fills the KV cache, then `steps`
    /// greedy decode steps (each token the reference's arg-max of the previous logits, so
    /// device and reference decode the same sequence). `step` hears each decode step (from 1)
    /// as it starts.
    pub fn model_decode(&mut self, ids: Option<&[u32]>, step: &dyn Fn(usize)) -> Result<ModelDecode, RunError> {
        self.need_steps()?;
        let weights = self.weights;
        let c = &weights.config;
        let ids = self.prompt_ids(ids);
        if self.decode_model.is_none() {
            let prefill = match &self.model {
                Some(m) => m.clone(),
                None => DeviceModel::upload(&mut self.mesh, weights)?,
            };
            self.decode_model = Some(DecodeModel::with_prefill(&mut self.mesh, prefill, weights)?);
        }
        let Some(model) = self.decode_model.clone() else {
            return Err(RunError::Usage("model upload failed".into()));
        };
        let reference = Reference::new(weights);
        let (golden_prefill, mut golden_cache) = reference.prefill(&ids)?;
        let positions = (ids.len() + self.steps).div_ceil(KV_BLOCK) * KV_BLOCK;
        let mut cache = DeviceKvCache::new(&mut self.mesh, c, positions, false)?;
        let mut logits = model.prefill(&mut self.mesh, &mut self.ccl, &mut cache, &ids, self.reduce, &mut |_| {})?;
        let prefill_pcc = pcc(&golden_prefill, &logits)?;
        let v = c.vocab_size;
        let mut last = golden_prefill.len().checked_sub(v).map_or(Vec::new(), |s| golden_prefill[s..].to_vec());
        let (mut golden, mut got) = (Vec::new(), Vec::new());
        for i in 0..self.steps {
            step(i + 1);
            let token = argmax(&last) as u32;
            let g = reference.decode(token, &mut golden_cache)?;
            let d = model.decode_step(&mut self.mesh, &mut self.ccl, &mut cache, token, ids.len() + i, &mut |_| {})?;
            got.extend_from_slice(&d);
            golden.extend_from_slice(&g);
            last = g;
        }
        cache.deallocate(&mut self.mesh)?;
        logits.extend_from_slice(&got);
        Ok(ModelDecode { prefill_pcc, decode_pcc: pcc(&golden, &got)?, logits, rows: ids.len() + self.steps })
    }
}

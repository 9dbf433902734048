//! The module-test harness: one mesh, its program cache and the CCL manager persist across
//! module tests and test cases, as tt-metal's `mesh_device` fixture does. A test case builds
//! the whole decoder layer first, every weight in the real modules' upload order, as
//! `setup_decoder_layer` in tt-metal's `models/demos/gpt_oss/tests/unit/test_modules.py`
//! builds a `DecoderLayer` before `test_decoder` runs any component; each module test then
//! runs its part of that layer on a random input, compares with the f32 reference by PCC, and
//! frees its activations and the op cache's buffers at the end. The case's end frees the
//! layer (the test's `DecoderLayer` goes out of scope).

use super::error::RunError;
use super::module::{Module, ModuleResult};
use super::options::Mode;
use crate::common::pcc::pcc;
use crate::common::rng::SplitMix64;
use crate::gpt_oss::device::{
    prefill_attention, prefill_experts_consuming, prefill_layer, router, throughput_experts, throughput_prefill,
    DecodeAttention, DecodeModel, DeviceAttention, DeviceExperts, DeviceLayer, DeviceModel, DeviceRouter,
    ThroughputExperts, ThroughputInputs, TpReduce,
};
use crate::gpt_oss::reference::{self, LayerCache, Reference};
use crate::gpt_oss::rope::Rope;
use crate::gpt_oss::ModelWeights;
use ttsan_events::{Role, Space};
use ttsan_sim::ccl::{CclManager, Topology};
use ttsan_sim::{DType, Distribution, HostTensor, MemoryConfig, Mesh, RunStats, Tensor, TensorSpec};

/// Rejects a prompt length the device prefill cannot take.
fn check_tokens(tokens: usize) -> Result<(), RunError> {
    // Any length: the model pads the prompt to a tile (module tests check whole tiles
    // themselves, `need_whole_tiles`).
    if tokens == 0 {
        return Err(RunError::Usage("the prompt is empty: --seq-len or --input-ids needs a token".into()));
    }
    Ok(())
}

/// The persistent fixture and the decoder layer of the current test case.
pub struct Session<'w> {
    pub(super) mesh: Mesh,
    pub(super) ccl: CclManager,
    pub(super) weights: &'w ModelWeights,
    pub(super) layer: usize,
    pub(super) tokens: usize,
    pub(super) steps: usize,
    pub(super) reduce: TpReduce,
    pub(super) seed: u64,
    pub(super) attn: Option<DeviceAttention>,
    pub(super) experts: Option<DeviceExperts>,
    pub(super) router: Option<DeviceRouter>,
    pub(super) decoder: Option<DeviceLayer>,
    pub(super) model: Option<DeviceModel>,
    pub(super) decode_attn: Option<DecodeAttention>,
    pub(super) decode_layer: Option<(DeviceLayer, DecodeAttention)>,
    pub(super) decode_model: Option<DecodeModel>,
    pub(super) throughput: Option<ThroughputExperts>,
    /// Buffers a named fault staged (kept alive to the end of the run).
    pub(super) staged: Vec<Tensor>,
    /// The test case's rotary tables (cos, sin) of positions `0..tokens`, uploaded with the
    /// layer before any component runs, as `test_decoder` uploads `tt_cos` and `tt_sin`.
    pub(super) rope: Option<(Tensor, Tensor)>,
}

impl<'w> Session<'w> {
    /// Opens the fixture on `mesh`: the CCL manager first, as the test fixture creates it.
    /// `tokens` is the prompt (prefill) length, `steps` the decode steps after it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mut mesh: Mesh,
        weights: &'w ModelWeights,
        layer: usize,
        tokens: usize,
        steps: usize,
        reduce: TpReduce,
        seed: u64,
    ) -> Result<Self, RunError> {
        if layer >= weights.layers.len() {
            return Err(RunError::Usage(format!(
                "layer {layer} does not exist (the config has {} layers)",
                weights.layers.len()
            )));
        }
        check_tokens(tokens)?;
        let ccl = crate::gpt_oss::ccl::manager(&mut mesh, Topology::Ring, 1)?;
        Ok(Session {
            mesh,
            ccl,
            weights,
            layer,
            tokens,
            steps,
            reduce,
            seed,
            attn: None,
            experts: None,
            router: None,
            decoder: None,
            model: None,
            decode_attn: None,
            decode_layer: None,
            decode_model: None,
            throughput: None,
            staged: Vec::new(),
            rope: None,
        })
    }

    /// Stages `cb-clash`: a persistent L1 buffer height-sharded over the whole compute grid
    /// (as the decode path's pre-allocated L1 outputs are), sized to fill each core's largest
    /// free L1 block but its last page. L1 fills from the top, so the buffer reaches down to
    /// within one page of the unreserved base, and the next program whose static circular
    /// buffers need more than that page fails as tt-metal fails it.
    pub fn stage_cb_clash(&mut self) -> Result<(), RunError> {
        const PAGE: u64 = 2048;
        let grid = self.mesh.compute_grid();
        let cores = (u64::from(grid.end.x) - u64::from(grid.start.x) + 1)
            * (u64::from(grid.end.y) - u64::from(grid.start.y) + 1);
        let free = self.mesh.allocator().manager(Space::L1).statistics().largest_free_block;
        let pages = (free / PAGE).saturating_sub(1);
        if pages == 0 {
            return Err(RunError::Usage("cb-clash: no free L1 to stage the clash in".into()));
        }
        let rows = usize::try_from(pages * cores * 32)
            .map_err(|_| RunError::Usage("cb-clash: L1 too large to stage".into()))?;
        let spec =
            TensorSpec::new(&[1, 1, rows, 32], DType::Bf16).memory(MemoryConfig::L1HeightSharded { cores: grid });
        let t = self.mesh.allocate(&spec, "decode.l1_persistent_output", Role::Activation)?;
        self.staged.push(t);
        Ok(())
    }

    /// Starts a test case of `tokens` prompt tokens: builds the decoder layer under test
    /// (every weight, the sinks included) before any component runs, as `setup_decoder_layer`
    /// does in tt-metal's `test_modules.py`. The module tests use its parts.
    pub fn setup_decoder_layer(&mut self, tokens: usize) -> Result<(), RunError> {
        check_tokens(tokens)?;
        self.tokens = tokens;
        let (c, l) = (&self.weights.config, self.layer);
        let layer = DeviceLayer::upload(&mut self.mesh, c, &self.weights.layers[l], l)?;
        self.attn = Some(layer.attn.clone());
        self.experts = layer.experts.clone();
        self.router = Some(layer.router.clone());
        self.throughput = layer.throughput.clone();
        let rope = Rope::new(c);
        self.rope = Some(layer.attn.rope_tables(&mut self.mesh, &rope, 0, tokens)?);
        self.decoder = Some(layer);
        Ok(())
    }

    /// The case's rotary tables, or tables uploaded now (freed by the caller when `owned`).
    fn case_rope(&mut self, att: &DeviceAttention) -> Result<(Tensor, Tensor, bool), RunError> {
        if let Some((cos, sin)) = &self.rope {
            return Ok((cos.clone(), sin.clone(), false));
        }
        let rope = Rope::new(&self.weights.config);
        let (cos, sin) = att.rope_tables(&mut self.mesh, &rope, 0, self.tokens)?;
        Ok((cos, sin, true))
    }

    /// Ends a test case: the layer's weights (and the decode sinks a decode test added) are
    /// freed, as the test's `DecoderLayer` goes out of scope; the mesh, the program cache and
    /// the CCL manager stay for the next case.
    pub fn teardown_decoder_layer(&mut self) -> Result<(), RunError> {
        let mut sinks: Vec<Tensor> = self.decode_attn.take().map(|a| a.decode_sinks).into_iter().collect();
        sinks.extend(self.decode_layer.take().map(|(_, a)| a.decode_sinks));
        for t in &sinks {
            if self.mesh.is_live(t) {
                self.mesh.deallocate(t)?;
            }
        }
        if let Some(layer) = self.decoder.take() {
            layer.deallocate(&mut self.mesh)?;
        }
        if let Some((cos, sin)) = self.rope.take() {
            self.mesh.deallocate(&cos)?;
            self.mesh.deallocate(&sin)?;
        }
        self.attn = None;
        self.experts = None;
        self.router = None;
        self.throughput = None;
        Ok(())
    }

    /// The mesh (for inspection).
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// Runs one module test in `mode` (decode: the prompt fills the KV cache, then the decode
    /// steps are compared).
    pub fn run_module(&mut self, module: Module, mode: Mode) -> Result<ModuleResult, RunError> {
        self.need_whole_tiles(module)?;
        self.mesh.mark(&format!("module {module} {mode} begin"));
        let pcc = match (mode, module) {
            (Mode::Prefill, Module::Attention) => self.attention()?,
            (Mode::Prefill, Module::Experts) => self.experts()?,
            (Mode::Prefill, Module::Router) => self.router()?,
            (Mode::Prefill, Module::Decoder) => self.decoder()?,
            (Mode::Prefill, Module::Model) => self.model(None)?.0,
            (Mode::Decode, Module::Attention) => self.attention_decode()?,
            (Mode::Decode, Module::Experts) => self.experts_decode()?,
            (Mode::Decode, Module::Router) => self.router_decode()?,
            (Mode::Decode, Module::Decoder) => self.decoder_decode()?,
            (Mode::Decode, Module::Model) => self.model_decode(None, &|_| {})?.decode_pcc,
        };
        self.end_module()?;
        self.mesh.mark(&format!("module {module} {mode} end"));
        Ok(ModuleResult { module, mode, pcc, threshold: module.threshold(), case: None })
    }

    /// Test-case hygiene: activations are already freed; the program cache's buffers go too.
    pub(super) fn end_module(&mut self) -> Result<(), RunError> {
        Ok(self.mesh.release_op_cache()?)
    }

    /// The whole model on `ids` (random ids when `None`): logits PCC and the logits `[T, V]`.
    pub fn model(&mut self, ids: Option<&[u32]>) -> Result<(f64, Vec<f32>), RunError> {
        let ids = self.prompt_ids(ids);
        if self.model.is_none() {
            self.model = Some(DeviceModel::upload(&mut self.mesh, self.weights)?);
        }
        let Some(model) = &self.model else { return Err(RunError::Usage("model upload failed".into())) };
        let logits = model.prefill(&mut self.mesh, &mut self.ccl, &ids, self.reduce)?;
        let (golden, _) = Reference::new(self.weights).prefill(&ids)?;
        Ok((pcc(&golden, &logits)?, logits))
    }

    /// The prompt: `ids`, or random ids of the prompt length.
    pub(super) fn prompt_ids(&self, ids: Option<&[u32]>) -> Vec<u32> {
        match ids {
            Some(ids) => ids.to_vec(),
            None => {
                let mut rng = SplitMix64::new(self.seed ^ 0x1d5);
                let vocab = self.weights.config.vocab_size as u64;
                (0..self.tokens).map(|_| rng.below(vocab) as u32).collect()
            }
        }
    }

    /// Ends the run.
    pub fn finish(self) -> Result<RunStats, RunError> {
        Ok(self.mesh.finish()?)
    }

    pub(super) fn input(&self, salt: u64) -> Vec<f32> {
        let h = self.weights.config.hidden_size;
        SplitMix64::new(self.seed ^ salt).normal_vec(self.tokens * h, 0.0, 1.0)
    }

    /// Uploads `x` (`[rows, H]`, the row count from its length) replicated as an activation.
    pub(super) fn upload_x(&mut self, x: &[f32], name: &str) -> Result<Tensor, RunError> {
        let h = self.weights.config.hidden_size;
        let host = HostTensor::new(vec![1, 1, x.len() / h.max(1), h], x.to_vec())?;
        let spec = TensorSpec::new(&host.shape, DType::Bf16);
        Ok(self.mesh.from_host(&host, &spec, &Distribution::Replicate, name, Role::Activation)?)
    }

    pub(super) fn read(&mut self, t: &Tensor) -> Result<Vec<f32>, RunError> {
        Ok(self.mesh.to_host(t)?.swap_remove(0).data)
    }

    fn attention(&mut self) -> Result<f64, RunError> {
        let (c, l) = (&self.weights.config, self.layer);
        if self.attn.is_none() {
            self.attn = Some(DeviceAttention::upload(&mut self.mesh, c, &self.weights.layers[l].attn, l)?);
        }
        let Some(att) = self.attn.clone() else { return Err(RunError::Usage("attention upload failed".into())) };
        let x = self.input(0xa77);
        let rope = Rope::new(c);
        let (cos, sin, owned) = self.case_rope(&att)?;
        let xt = self.upload_x(&x, &format!("layer{l}.attn.input"))?;
        let out = prefill_attention(&mut self.mesh, &mut self.ccl, &att, &xt, &cos, &sin)?;
        let got = self.read(&out)?;
        for t in [&out, &xt] {
            self.mesh.deallocate(t)?;
        }
        if owned {
            self.mesh.deallocate(&cos)?;
            self.mesh.deallocate(&sin)?;
        }
        let golden =
            reference::attention(c, l, &self.weights.layers[l].attn, &rope, &x, &mut LayerCache::new(c.kv_width()))?;
        Ok(pcc(&golden.out, &got)?)
    }

    fn experts(&mut self) -> Result<f64, RunError> {
        let (c, l) = (&self.weights.config, self.layer);
        let desc = self.mesh.desc();
        if throughput_prefill(desc.rows as usize, desc.cols as usize, c.num_local_experts) {
            return self.throughput_experts();
        }
        if self.experts.is_none() {
            self.experts = Some(DeviceExperts::upload(&mut self.mesh, c, &self.weights.layers[l].experts, l)?);
        }
        let Some(ex) = self.experts.clone() else { return Err(RunError::Usage("experts upload failed".into())) };
        let x = self.input(0xe7);
        let lw = &self.weights.layers[l];
        let routing = reference::route(&lw.router, &x, c.hidden_size, c.num_experts_per_tok);
        let xt = self.upload_x(&x, &format!("layer{l}.experts.input"))?;
        let rt = ex.upload_routing(&mut self.mesh, &routing.dense(), self.tokens)?;
        let out = prefill_experts_consuming(&mut self.mesh, &mut self.ccl, &ex, xt, rt, self.reduce)?;
        let got = self.read(&out)?;
        self.mesh.deallocate(&out)?;
        let golden = reference::experts(c, &lw.experts, &x, &routing)?;
        Ok(pcc(&golden, &got)?)
    }

    /// The throughput experts (section 3.8.3), as 4x8 runs the experts with users split over
    /// the rows: 32 tokens per row (one chunk), routed by the reference router; dispatch and
    /// combine along the rows, all-reduce along the columns.
    fn throughput_experts(&mut self) -> Result<f64, RunError> {
        const PER_ROW: usize = 32;
        let weights = self.weights;
        let (c, l) = (&weights.config, self.layer);
        let lw = &weights.layers[l];
        let rows = self.mesh.desc().rows as usize;
        let cols = self.mesh.desc().cols as usize;
        let (h, k) = (c.hidden_size, c.num_experts_per_tok);
        let tokens = PER_ROW * rows;
        if self.throughput.is_none() {
            self.throughput = Some(ThroughputExperts::upload(&mut self.mesh, c, &lw.experts, l)?);
        }
        let Some(ex) = self.throughput.clone() else { return Err(RunError::Usage("experts upload failed".into())) };
        let x = SplitMix64::new(self.seed ^ 0x7e7).normal_vec(tokens * h, 0.0, 1.0);
        let routing = reference::route(&lw.router, &x, h, k);
        let golden = reference::experts(c, &lw.experts, &x, &routing)?;
        let by_rows = |dim: usize| Distribution::Shard { axis: 0, dim };
        let host_x = HostTensor::new(vec![1, tokens, 1, h], x)?;
        let idx: Vec<f32> = routing.indices.iter().map(|&e| e as f32).collect();
        let host_idx = HostTensor::new(vec![1, tokens, 1, k], idx)?;
        let host_w = HostTensor::from_fn(&[k, 1, tokens, 1], |i| routing.weights[(i % tokens) * k + i / tokens]);
        let x_spec = TensorSpec::new(&[1, PER_ROW, 1, h], DType::Bf16).row_major();
        let idx_spec = TensorSpec::new(&[1, PER_ROW, 1, k], DType::U32).row_major();
        let w_spec = TensorSpec::new(&[k, 1, PER_ROW, 1], DType::Bf16);
        let name = |n: &str| format!("layer{l}.experts.{n}");
        let inputs = ThroughputInputs {
            x: self.mesh.from_host(&host_x, &x_spec, &by_rows(1), &name("input"), Role::Activation)?,
            indices: self.mesh.from_host(&host_idx, &idx_spec, &by_rows(1), &name("topk_indices"), Role::Activation)?,
            weights: self.mesh.from_host(&host_w, &w_spec, &by_rows(2), &name("topk_weights"), Role::Activation)?,
        };
        let out = throughput_experts(&mut self.mesh, &ex, &inputs, self.ccl.topology, self.ccl.num_links)?;
        let per_chip = self.mesh.to_host(&out)?;
        // Each row's chips hold that row's users; the first column's copy stands for the row.
        let got: Vec<f32> = per_chip.iter().step_by(cols.max(1)).flat_map(|t| t.data.iter().copied()).collect();
        for t in [&out, &inputs.x, &inputs.indices, &inputs.weights] {
            self.mesh.deallocate(t)?;
        }
        Ok(pcc(&golden, &got)?)
    }

    fn router(&mut self) -> Result<f64, RunError> {
        let x = self.input(0x70);
        let (golden, got) = self.route_compare(&x)?;
        Ok(pcc(&golden, &got)?)
    }

    /// The router of the layer on `x` (`[rows, H]`): the reference's dense `[rows, E]` scores
    /// and the device's, scattered on the host from its `(indices, weights)`.
    pub(super) fn route_compare(&mut self, x: &[f32]) -> Result<(Vec<f32>, Vec<f32>), RunError> {
        let (c, l) = (&self.weights.config, self.layer);
        let lw = &self.weights.layers[l];
        if self.router.is_none() {
            self.router = Some(DeviceRouter::upload(&mut self.mesh, &lw.router, c.num_experts_per_tok, l)?);
        }
        let Some(dev) = self.router.clone() else { return Err(RunError::Usage("router upload failed".into())) };
        let xt = self.upload_x(x, &format!("layer{l}.router.input"))?;
        let out = router(&mut self.mesh, &dev, &xt)?;
        let idx = self.read(&out.indices)?;
        let wts = self.read(&out.weights)?;
        for t in [&out.indices, &out.weights, &xt] {
            self.mesh.deallocate(t)?;
        }
        let e = c.num_local_experts;
        let k = dev.top_k.max(1);
        let rows = x.len() / c.hidden_size.max(1);
        let mut dense = vec![0.0f32; rows * e];
        for (slot, (&i, &w)) in idx.iter().zip(&wts).enumerate() {
            if let Some(v) = dense.get_mut(slot / k * e + i as usize) {
                *v = w;
            }
        }
        let golden = reference::route(&lw.router, x, c.hidden_size, c.num_experts_per_tok).dense();
        Ok((golden, dense))
    }

    fn decoder(&mut self) -> Result<f64, RunError> {
        let (c, l) = (&self.weights.config, self.layer);
        let lw = &self.weights.layers[l];
        if self.decoder.is_none() {
            self.decoder = Some(DeviceLayer::upload(&mut self.mesh, c, lw, l)?);
        }
        let Some(layer) = self.decoder.clone() else { return Err(RunError::Usage("layer upload failed".into())) };
        let mut x = self.input(0xdec);
        let rope = Rope::new(c);
        let (cos, sin, owned) = self.case_rope(&layer.attn)?;
        let xt = self.upload_x(&x, &format!("layer{l}.input"))?;
        let out = prefill_layer(&mut self.mesh, &mut self.ccl, &layer, xt, &cos, &sin, self.reduce)?;
        let got = self.read(&out)?;
        self.mesh.deallocate(&out)?;
        if owned {
            self.mesh.deallocate(&cos)?;
            self.mesh.deallocate(&sin)?;
        }
        reference::decoder_layer(c, l, lw, &rope, &mut x, &mut LayerCache::new(c.kv_width()))?;
        Ok(pcc(&x, &got)?)
    }
}

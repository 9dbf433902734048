//! Throughput experts, decode (`tt/experts_throughput/decode.py`) on an R x C mesh: experts
//! split over all chips, users split over the rows (T_loc tokens per row, replicated over the
//! row's columns). all_to_all_dispatch along the rows brings every token to the chips of its
//! column that hold one of its experts; each chip runs its local experts densely over all
//! dispatched rows; all_to_all_combine brings the k expert outputs back; the routing weights
//! scale them, a sum over k folds them, and an all_reduce along the columns adds the partial
//! results of the C columns (each owns a different share of the experts).

use super::error::DeviceError;
use crate::common::upload::put;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::weights::ExpertWeights;
use ttsan_events::Role;
use ttsan_sim::ccl::{self, CclArgs, Topology};
use ttsan_sim::ops::{self, BinaryOp, MatmulArgs, Out, ReduceOp, UnaryOp};
use ttsan_sim::{DType, Distribution, HostTensor, Mesh, PageLayout, Tensor, TensorSpec};

/// One layer's experts, sharded over every chip of the mesh.
#[derive(Debug, Clone)]
pub struct ThroughputExperts {
    /// `[1, E_loc, H, 2I]` per chip: gate then up, concatenated (de-interleaved from HF).
    pub w1_w3: Tensor,
    /// `[1, E_loc, 1, 2I]` per chip.
    pub w1_w3_bias: Tensor,
    /// `[1, E_loc, I, H]` per chip.
    pub w2: Tensor,
    /// `[1, E_loc, 1, H]` per chip.
    pub w2_bias: Tensor,
    /// `[1, 1, E, D]` one-hot: expert e lives on chip `e / E_loc` (uint32, row-major, replicated).
    pub mapping: Tensor,
    /// Experts per chip.
    pub local: usize,
    /// Intermediate size.
    pub intermediate: usize,
    /// `swiglu_alpha`.
    pub alpha: f32,
    /// `swiglu_limit`.
    pub limit: f32,
    /// The layer index (names the activations, `layer{N}.experts.*`).
    pub layer: usize,
}

impl ThroughputExperts {
    /// Uploads layer `layer`'s experts with `ShardTensorToMesh(dim=1)` placement.
    pub fn upload(
        mesh: &mut Mesh,
        config: &GptOssConfig,
        w: &ExpertWeights,
        layer: usize,
    ) -> Result<Self, DeviceError> {
        let (e, h, i) = (config.num_local_experts, config.hidden_size, config.intermediate_size);
        let devices = mesh.num_devices();
        if devices == 0 || e % devices != 0 {
            return Err(DeviceError::Placement(format!("{e} experts over {devices} chips")));
        }
        // HF interleaves gate/up columns; the TT layout is gate (I columns) then up (I columns).
        let deinterleave = |row: &[f32]| -> Vec<f32> {
            row.iter().step_by(2).chain(row.iter().skip(1).step_by(2)).copied().collect::<Vec<f32>>()
        };
        let w1_w3: Vec<f32> = w.gate_up_proj.data.chunks_exact(2 * i).flat_map(deinterleave).collect();
        let w1_w3_bias: Vec<f32> = w.gate_up_bias.data.chunks_exact(2 * i).flat_map(deinterleave).collect();
        let experts_dim = Distribution::ShardAll { dim: 1 };
        let prefix = format!("model.layers.{layer}.mlp.experts");
        let local = e / devices;
        let mapping =
            HostTensor::from_fn(&[1, 1, e, devices], |k| if (k / devices) / local == k % devices { 1.0 } else { 0.0 });
        let mapping_spec = TensorSpec::new(&[1, 1, e, devices], DType::U32).row_major();
        Ok(ThroughputExperts {
            w1_w3: put(
                mesh,
                &HostTensor::values_or_shape(vec![1, e, h, 2 * i], w1_w3)?,
                &experts_dim,
                &format!("{prefix}.w1_w3"),
                Role::Weight,
            )?,
            w1_w3_bias: put(
                mesh,
                &HostTensor::values_or_shape(vec![1, e, 1, 2 * i], w1_w3_bias)?,
                &experts_dim,
                &format!("{prefix}.w1_w3_bias"),
                Role::Weight,
            )?,
            w2: put(
                mesh,
                &HostTensor::values_or_shape(vec![1, e, i, h], w.down_proj.data.clone())?,
                &experts_dim,
                &format!("{prefix}.w2"),
                Role::Weight,
            )?,
            w2_bias: put(
                mesh,
                &HostTensor::values_or_shape(vec![1, e, 1, h], w.down_bias.data.clone())?,
                &experts_dim,
                &format!("{prefix}.w2_bias"),
                Role::Weight,
            )?,
            mapping: mesh.from_host(
                &mapping,
                &mapping_spec,
                &Distribution::Replicate,
                "expert_mapping",
                Role::Weight,
            )?,
            local,
            intermediate: i,
            alpha: config.swiglu_alpha as f32,
            limit: config.swiglu_limit as f32,
            layer,
        })
    }

    /// The buffer name of activation `what` of this layer's experts.
    pub(super) fn name(&self, what: &str) -> String {
        format!("layer{}.experts.{what}", self.layer)
    }

    /// Frees every weight tensor.
    pub fn deallocate(&self, mesh: &mut Mesh) -> Result<(), DeviceError> {
        for t in [&self.w1_w3, &self.w1_w3_bias, &self.w2, &self.w2_bias, &self.mapping] {
            mesh.deallocate(t)?;
        }
        Ok(())
    }
}

/// Inputs of the throughput experts on each chip (what the router and the reshapes before
/// dispatch produce in the demo; the module test uploads them directly).
#[derive(Debug, Clone)]
pub struct ThroughputInputs {
    /// `[1, T_loc, 1, H]` normed tokens of this row, row-major.
    pub x: Tensor,
    /// `[1, T_loc, 1, k]` uint32 expert indices, row-major.
    pub indices: Tensor,
    /// `[k, 1, T_loc, 1]` routing weights, aligned with `indices`.
    pub weights: Tensor,
}

fn step(
    mesh: &mut Mesh,
    t: Tensor,
    next: impl FnOnce(&mut Mesh, &Tensor) -> Result<Tensor, DeviceError>,
) -> Result<Tensor, DeviceError> {
    let out = next(mesh, &t)?;
    mesh.deallocate(&t)?;
    Ok(out)
}

/// One local expert over every dispatched row: `[1, G, T_loc, H]` -> `[1, G, T_loc, H]`.
fn local_expert(mesh: &mut Mesh, ex: &ThroughputExperts, x: &Tensor, e: usize) -> Result<Tensor, DeviceError> {
    let (h, i) = (x.shape()[3], ex.intermediate);
    let w13 =
        ops::slice(mesh, &ex.w1_w3, &[0, e, 0, 0], &[1, e + 1, h, 2 * i], &Out::dram().named(&ex.name("w1_w3.local")))?;
    let b13 = ops::slice(
        mesh,
        &ex.w1_w3_bias,
        &[0, e, 0, 0],
        &[1, e + 1, 1, 2 * i],
        &Out::dram().named(&ex.name("b13.local")),
    )?;
    let w2 = ops::slice(mesh, &ex.w2, &[0, e, 0, 0], &[1, e + 1, i, h], &Out::dram().named(&ex.name("w2.local")))?;
    let b2 = ops::slice(mesh, &ex.w2_bias, &[0, e, 0, 0], &[1, e + 1, 1, h], &Out::dram().named(&ex.name("b2.local")))?;
    let gu = ops::matmul(mesh, x, &w13, MatmulArgs::default(), &Out::dram().named(&ex.name("gate_up_mm")))?;
    let gu = step(mesh, gu, |m, t| Ok(ops::add(m, t, &b13, &Out::dram().named(&ex.name("gate_up")))?))?;
    let [a, b, c, _] =
        <[usize; 4]>::try_from(gu.shape()).map_err(|_| DeviceError::Placement("gate_up rank".to_owned()))?;
    let gate = ops::slice(mesh, &gu, &[0, 0, 0, 0], &[a, b, c, i], &Out::dram().named(&ex.name("gate")))?;
    let up = ops::slice(mesh, &gu, &[0, 0, 0, i], &[a, b, c, 2 * i], &Out::dram().named(&ex.name("up")))?;
    mesh.deallocate(&gu)?;
    let gate = step(mesh, gate, |m, t| {
        Ok(ops::unary(m, UnaryOp::Clamp(f32::MIN, ex.limit), t, &Out::dram().named(&ex.name("gate_clamped")))?)
    })?;
    let up = step(mesh, up, |m, t| {
        Ok(ops::unary(m, UnaryOp::Clamp(-ex.limit, ex.limit), t, &Out::dram().named(&ex.name("up_clamped")))?)
    })?;
    let scaled = ops::unary(mesh, UnaryOp::Scale(ex.alpha), &gate, &Out::dram().named(&ex.name("gate_alpha")))?;
    let sig = step(mesh, scaled, |m, t| {
        Ok(ops::unary(m, UnaryOp::Sigmoid, t, &Out::dram().named(&ex.name("gate_sigmoid")))?)
    })?;
    let glu = ops::binary(mesh, BinaryOp::Multiply, &gate, &sig, &Out::dram().named(&ex.name("glu")))?;
    mesh.deallocate(&gate)?;
    mesh.deallocate(&sig)?;
    let up1 = step(mesh, up, |m, t| {
        Ok(ops::unary(m, UnaryOp::Offset(1.0), t, &Out::dram().named(&ex.name("up_plus_one")))?)
    })?;
    let act = ops::binary(mesh, BinaryOp::Multiply, &up1, &glu, &Out::dram().named(&ex.name("act")))?;
    mesh.deallocate(&up1)?;
    mesh.deallocate(&glu)?;
    let down = step(mesh, act, |m, t| {
        Ok(ops::matmul(m, t, &w2, MatmulArgs::default(), &Out::dram().named(&ex.name("down_mm")))?)
    })?;
    let out = step(mesh, down, |m, t| Ok(ops::add(m, t, &b2, &Out::dram().named(&ex.name("down")))?))?;
    for t in [&w13, &b13, &w2, &b2] {
        mesh.deallocate(t)?;
    }
    Ok(out)
}

/// The throughput experts on every chip; returns `[1, 1, T_loc, H]`, the same on every chip of
/// a row.
pub fn throughput_experts(
    mesh: &mut Mesh,
    ex: &ThroughputExperts,
    inputs: &ThroughputInputs,
    topology: Topology,
    num_links: u32,
) -> Result<Tensor, DeviceError> {
    let args = |axis: usize, name: &str| CclArgs {
        cluster_axis: Some(axis),
        topology,
        num_links,
        out: Out::dram().named(name),
    };
    let (dispatched, metadata) =
        ccl::all_to_all_dispatch(mesh, &inputs.x, &inputs.indices, &ex.mapping, &args(0, &ex.name("dispatch")))?;
    let tiled = step(mesh, dispatched, |m, t| {
        Ok(ops::to_layout(m, t, PageLayout::Tile, &Out::dram().named(&ex.name("dispatched")))?)
    })?;
    let mut outputs = Vec::with_capacity(ex.local);
    for e in 0..ex.local {
        outputs.push(local_expert(mesh, ex, &tiled, e)?);
    }
    mesh.deallocate(&tiled)?;
    let refs: Vec<&Tensor> = outputs.iter().collect();
    let stacked = ops::concat(mesh, &refs, 0, &Out::dram().named(&ex.name("out")))?;
    for t in &outputs {
        mesh.deallocate(t)?;
    }
    let stacked = step(mesh, stacked, |m, t| {
        Ok(ops::to_layout(m, t, PageLayout::RowMajor, &Out::dram().named(&ex.name("out_rm")))?)
    })?;
    let combined = ccl::all_to_all_combine(mesh, &stacked, &metadata, &ex.mapping, &args(0, &ex.name("combine")))?;
    mesh.deallocate(&stacked)?;
    mesh.deallocate(&metadata)?;
    let combined = step(mesh, combined, |m, t| {
        Ok(ops::to_layout(m, t, PageLayout::Tile, &Out::dram().named(&ex.name("combined")))?)
    })?;
    let weighted = step(mesh, combined, |m, t| {
        Ok(ops::multiply(m, t, &inputs.weights, &Out::dram().named(&ex.name("weighted")))?)
    })?;
    let summed =
        step(mesh, weighted, |m, t| Ok(ops::reduce(m, ReduceOp::Sum, t, 0, &Out::dram().named(&ex.name("sum_k")))?))?;
    let reduced = step(mesh, summed, |m, t| Ok(ccl::all_reduce(m, t, &args(1, &ex.name("all_reduce")))?))?;
    Ok(reduced)
}

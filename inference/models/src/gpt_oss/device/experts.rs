//! Low-latency experts, prefill (`tt/experts/prefill.py`) on a 1xN mesh: every chip holds all
//! experts with the intermediate dim split over the columns (gate/up column-parallel, down
//! row-parallel), computes every expert densely for each 32-token block (`sparse_matmul` with
//! an all-ones sparsity), applies the clamped SwiGLU with eltwise ops, weights by the dense
//! routing, sums over experts and finishes with the TP all-reduce.

use super::allreduce::allreduce;
use super::error::DeviceError;
use super::plan::TpPlan;
use crate::common::upload::{put, rank0_bias};
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::weights::ExpertWeights;
use ttsan_events::Role;
use ttsan_sim::ccl::{self, CclArgs, CclManager};
use ttsan_sim::ops::{self, BinaryOp, MatmulArgs, Out, ReduceOp, UnaryOp};
use ttsan_sim::{Distribution, HostTensor, Mesh, Tensor};

/// Token block the sparse matmul works on (one tile of rows).
pub const BLOCK: usize = 32;

/// How the experts' TP partial sums are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TpReduce {
    /// `ttnn.all_reduce` (the fix of the sink-corruption case).
    #[default]
    AllReduce,
    /// `mesh_config.allreduce`: `reduce_scatter_minimal_async` + `all_gather_async` (what the
    /// experts used when the attention sinks got corrupted).
    ReduceScatterAllGather,
}

/// One layer's experts on the mesh.
#[derive(Debug, Clone)]
pub struct DeviceExperts {
    /// `[1, E, H, I/tp]` per chip (HF's even gate_up columns).
    pub gate: Tensor,
    /// `[1, E, H, I/tp]` per chip (HF's odd gate_up columns).
    pub up: Tensor,
    /// `[1, E, 1, I/tp]` per chip.
    pub gate_bias: Tensor,
    /// `[1, E, 1, I/tp]` per chip.
    pub up_bias: Tensor,
    /// `[1, E, I/tp, H]` per chip.
    pub down: Tensor,
    /// `[1, E, 1, H]`: the bias on TP rank 0, zeros elsewhere.
    pub down_bias: Tensor,
    /// Experts.
    pub experts: usize,
    /// `swiglu_alpha`.
    pub alpha: f32,
    /// `swiglu_limit`.
    pub limit: f32,
    /// Per-chip sizes.
    pub plan: TpPlan,
    /// The layer index (names the buffers, `layer{N}.experts.*`).
    pub layer: usize,
}

impl DeviceExperts {
    /// Uploads layer `layer`'s experts, de-interleaving gate and up as every TT loader does.
    pub fn upload(
        mesh: &mut Mesh,
        config: &GptOssConfig,
        w: &ExpertWeights,
        layer: usize,
    ) -> Result<Self, DeviceError> {
        let plan = TpPlan::new(config, mesh)?;
        let (e, h, i) = (config.num_local_experts, config.hidden_size, config.intermediate_size);
        // On meshes with several rows the weights are replicated down the rows: prefill then
        // computes every row's copy alike, and decode splits the experts over the rows with
        // moe_routing_remap (expert parallelism on axis 0).
        if i % plan.tp != 0 {
            return Err(DeviceError::Placement(format!(
                "low-latency experts need intermediate {i} divisible by {}",
                plan.tp
            )));
        }
        let pick = |data: &[f32], rows: usize, parity: usize| -> Vec<f32> {
            data.chunks_exact(2 * i).take(rows).flat_map(|row| row.iter().skip(parity).step_by(2).copied()).collect()
        };
        let gate = HostTensor::values_or_shape(vec![1, e, h, i], pick(&w.gate_up_proj.data, e * h, 0))?;
        let up = HostTensor::values_or_shape(vec![1, e, h, i], pick(&w.gate_up_proj.data, e * h, 1))?;
        let gate_bias = HostTensor::values_or_shape(vec![1, e, 1, i], pick(&w.gate_up_bias.data, e, 0))?;
        let up_bias = HostTensor::values_or_shape(vec![1, e, 1, i], pick(&w.gate_up_bias.data, e, 1))?;
        let down = HostTensor::values_or_shape(vec![1, e, i, h], w.down_proj.data.clone())?;
        let prefix = format!("layer{layer}.experts");
        let columns = Distribution::Shard { axis: 1, dim: 3 };
        let rows = Distribution::Shard { axis: 1, dim: 2 };
        let down_bias =
            rank0_bias(mesh, plan.tp, &[1, e, 1, h], &w.down_bias.data, &format!("{prefix}.down_proj_bias"))?;
        Ok(DeviceExperts {
            gate: put(mesh, &gate, &columns, &format!("{prefix}.gate_proj"), Role::Weight)?,
            up: put(mesh, &up, &columns, &format!("{prefix}.up_proj"), Role::Weight)?,
            gate_bias: put(mesh, &gate_bias, &columns, &format!("{prefix}.gate_proj_bias"), Role::Weight)?,
            up_bias: put(mesh, &up_bias, &columns, &format!("{prefix}.up_proj_bias"), Role::Weight)?,
            down: put(mesh, &down, &rows, &format!("{prefix}.down_proj"), Role::Weight)?,
            down_bias,
            experts: e,
            alpha: config.swiglu_alpha as f32,
            limit: config.swiglu_limit as f32,
            plan,
            layer,
        })
    }

    /// Uploads dense routing weights (`[T, E]`, HF's router scores) permuted to `[1, E, T, 1]`
    /// as the experts consume them; no values (a placement-only mesh's read-back) upload the
    /// shape.
    pub fn upload_routing(&self, mesh: &mut Mesh, dense: &[f32], tokens: usize) -> Result<Tensor, DeviceError> {
        let e = self.experts;
        if dense.is_empty() && tokens > 0 {
            let shape = HostTensor::shape_only(&[1, e, tokens, 1]);
            return Ok(put(mesh, &shape, &Distribution::Replicate, "experts.routing", Role::Activation)?);
        }
        if dense.len() != tokens * e {
            return Err(DeviceError::Placement(format!("{} routing weights for {tokens} tokens x {e}", dense.len())));
        }
        let permuted = HostTensor::from_fn(&[1, e, tokens, 1], |k| dense[(k % tokens) * e + k / tokens]);
        Ok(put(mesh, &permuted, &Distribution::Replicate, "experts.routing", Role::Activation)?)
    }

    /// Frees every weight tensor.
    pub fn deallocate(&self, mesh: &mut Mesh) -> Result<(), DeviceError> {
        for t in [&self.gate, &self.up, &self.gate_bias, &self.up_bias, &self.down, &self.down_bias] {
            mesh.deallocate(t)?;
        }
        Ok(())
    }
}

fn unary(mesh: &mut Mesh, op: UnaryOp, x: &Tensor, name: &str) -> Result<Tensor, DeviceError> {
    Ok(ops::unary(mesh, op, x, &Out::dram().named(name))?)
}

fn binary(mesh: &mut Mesh, op: BinaryOp, a: &Tensor, b: &Tensor, name: &str) -> Result<Tensor, DeviceError> {
    Ok(ops::binary(mesh, op, a, b, &Out::dram().named(name))?)
}

/// `apply_swiglu`: `clamp(gate, max=L)`, `clamp(up, -L, L)`, `gate * sigmoid(alpha gate)`,
/// `(up + 1) * glu`. Frees its inputs.
fn swiglu(mesh: &mut Mesh, ex: &DeviceExperts, gate: Tensor, up: Tensor) -> Result<Tensor, DeviceError> {
    let gate_c = unary(mesh, UnaryOp::Clamp(f32::MIN, ex.limit), &gate, "experts.gate_clamped")?;
    let up_c = unary(mesh, UnaryOp::Clamp(-ex.limit, ex.limit), &up, "experts.up_clamped")?;
    mesh.deallocate(&gate)?;
    mesh.deallocate(&up)?;
    let scaled = unary(mesh, UnaryOp::Scale(ex.alpha), &gate_c, "experts.gate_alpha")?;
    let sig = unary(mesh, UnaryOp::Sigmoid, &scaled, "experts.gate_sigmoid")?;
    mesh.deallocate(&scaled)?;
    let glu = binary(mesh, BinaryOp::Multiply, &gate_c, &sig, "experts.glu")?;
    mesh.deallocate(&gate_c)?;
    mesh.deallocate(&sig)?;
    let up1 = unary(mesh, UnaryOp::Offset(1.0), &up_c, "experts.up_plus_one")?;
    mesh.deallocate(&up_c)?;
    let act = binary(mesh, BinaryOp::Multiply, &up1, &glu, "experts.act")?;
    mesh.deallocate(&up1)?;
    mesh.deallocate(&glu)?;
    Ok(act)
}

/// One 32-token block `x` (`[1, 1, 32, H]`) through every expert, weighted by `routing`
/// (`[1, E, 32, 1]`) and summed over experts: `[1, 1, 32, H]`, a TP partial sum.
fn block(mesh: &mut Mesh, ex: &DeviceExperts, x: &Tensor, routing: &Tensor) -> Result<Tensor, DeviceError> {
    // Prefill's static sparsity: ones over every expert (dense over experts).
    let ones = HostTensor::from_fn(&[1, 1, 1, ex.experts], |_| 1.0);
    let sparsity = put(mesh, &ones, &Distribution::Replicate, "experts.prefill_sparsity", Role::Activation)?;
    let gate_mm = ops::sparse_matmul(mesh, x, &ex.gate, &sparsity, &Out::dram().named("experts.gate_mm"))?;
    let up_mm = ops::sparse_matmul(mesh, x, &ex.up, &sparsity, &Out::dram().named("experts.up_mm"))?;
    mesh.deallocate(&sparsity)?;
    let gate = binary(mesh, BinaryOp::Add, &gate_mm, &ex.gate_bias, "experts.gate")?;
    let up = binary(mesh, BinaryOp::Add, &up_mm, &ex.up_bias, "experts.up")?;
    mesh.deallocate(&gate_mm)?;
    mesh.deallocate(&up_mm)?;
    let act = swiglu(mesh, ex, gate, up)?;
    let down_mm = ops::matmul(mesh, &act, &ex.down, MatmulArgs::default(), &Out::dram().named("experts.down_mm"))?;
    mesh.deallocate(&act)?;
    let down = binary(mesh, BinaryOp::Add, &down_mm, &ex.down_bias, "experts.down")?;
    mesh.deallocate(&down_mm)?;
    let weighted = binary(mesh, BinaryOp::Multiply, &down, routing, "experts.weighted")?;
    mesh.deallocate(&down)?;
    // Stands in for fast_reduce_nc(dims=[1]).
    let summed = ops::reduce(mesh, ReduceOp::Sum, &weighted, 1, &Out::dram().named("experts.sum"))?;
    mesh.deallocate(&weighted)?;
    Ok(summed)
}

/// The experts on `x` (`[1, 1, T, H]`, normed, T a multiple of 32) with dense routing
/// `[1, E, T, 1]`; returns `[1, 1, T, H]` on every chip.
pub fn prefill_experts(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    ex: &DeviceExperts,
    x: &Tensor,
    routing: &Tensor,
    reduce: TpReduce,
) -> Result<Tensor, DeviceError> {
    let partial = partial_sum(mesh, ex, x, routing)?;
    tp_reduce(mesh, ccl_manager, ex, partial, reduce)
}

/// [`prefill_experts`] that frees its inputs once the local experts are done with them,
/// before the TP all-reduce, as tt-metal's prefill frees what it no longer needs to bound peak
/// DRAM in long prefill. The all-reduce's intermediate then takes the lowest free DRAM.
pub fn prefill_experts_consuming(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    ex: &DeviceExperts,
    x: Tensor,
    routing: Tensor,
    reduce: TpReduce,
) -> Result<Tensor, DeviceError> {
    let partial = partial_sum(mesh, ex, &x, &routing)?;
    mesh.deallocate(&x)?;
    mesh.deallocate(&routing)?;
    tp_reduce(mesh, ccl_manager, ex, partial, reduce)
}

/// Every block through the local experts, concatenated: the TP partial sum `[1, 1, T, H]`.
fn partial_sum(mesh: &mut Mesh, ex: &DeviceExperts, x: &Tensor, routing: &Tensor) -> Result<Tensor, DeviceError> {
    let &[1, 1, tokens, h] = x.shape() else {
        return Err(DeviceError::Placement(format!("experts input {:?} is not [1, 1, T, H]", x.shape())));
    };
    if tokens == 0 || tokens % BLOCK != 0 {
        return Err(DeviceError::Placement(format!("{tokens} tokens are not whole blocks of {BLOCK}")));
    }
    let mut parts = Vec::with_capacity(tokens / BLOCK);
    for b in 0..tokens / BLOCK {
        let rows = (b * BLOCK, (b + 1) * BLOCK);
        let xb = ops::slice(mesh, x, &[0, 0, rows.0, 0], &[1, 1, rows.1, h], &Out::dram().named("experts.x_block"))?;
        let rb = ops::slice(
            mesh,
            routing,
            &[0, 0, rows.0, 0],
            &[1, ex.experts, rows.1, 1],
            &Out::dram().named("experts.routing_block"),
        )?;
        parts.push(block(mesh, ex, &xb, &rb)?);
        mesh.deallocate(&xb)?;
        mesh.deallocate(&rb)?;
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    let partial = ops::concat(mesh, &refs, 2, &Out::dram().named("experts.partial"))?;
    for p in &parts {
        mesh.deallocate(p)?;
    }
    Ok(partial)
}

/// The TP reduction of the partial sums (frees `partial`).
fn tp_reduce(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    ex: &DeviceExperts,
    partial: Tensor,
    reduce: TpReduce,
) -> Result<Tensor, DeviceError> {
    let out = match reduce {
        TpReduce::AllReduce => {
            let args = CclArgs {
                cluster_axis: Some(1),
                topology: ccl_manager.topology,
                num_links: ccl_manager.num_links,
                out: Out::dram().named(&format!("layer{}.experts.tp_allreduce", ex.layer)),
            };
            ccl::all_reduce(mesh, &partial, &args)?
        }
        TpReduce::ReduceScatterAllGather => {
            allreduce(mesh, ccl_manager, &partial, &format!("layer{}.experts.tp_allreduce", ex.layer))?
        }
    };
    mesh.deallocate(&partial)?;
    Ok(out)
}

//! The MLP in decode: the router with its dense scatter (`tt/topk.py` for the low-latency
//! experts) and the low-latency experts decode (`tt/experts/decode.py`, reference doc
//! section 3.8.2). Every chip holds all experts with the intermediate dim split over the
//! columns; with several mesh rows the rows split the experts (EP on axis 0) through
//! `moe_routing_remap`, and an all-reduce over the rows adds their shares before the TP
//! all-reduce over the columns.

use super::error::DeviceError;
use super::experts::DeviceExperts;
use super::router::{router, DeviceRouter};
use ttsan_events::Role;
use ttsan_sim::ccl::{self, CclArgs, CclManager};
use ttsan_sim::ops::{self, BinaryOp, MatmulArgs, Out, ReduceOp, UnaryOp};
use ttsan_sim::{DType, Mesh, PageLayout, Tensor, TensorSpec};

/// Routes `x` (`[1, 1, T, H]`, normed) and scatters the top-k weights into dense `[1, 1, T, E]`
/// routing weights (HF's router scores): `linear`, `topk`, `softmax`, then
/// `ttnn.scatter(zeros_like(logits), dim=-1, index, weights)`.
pub fn dense_routing(mesh: &mut Mesh, w: &DeviceRouter, x: &Tensor) -> Result<Tensor, DeviceError> {
    let routed = router(mesh, w, x)?;
    let mut shape = routed.indices.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = w.weight.shape().last().copied().unwrap_or(0);
    }
    let spec = TensorSpec::new(&shape, DType::Bf16);
    let pieces = mesh.zeros_per_device(&shape);
    let zeros = mesh.from_host_per_device(pieces, &spec, "router.zeros_like", Role::Activation)?;
    let dense = ops::scatter(mesh, &zeros, &routed.indices, &routed.weights, &Out::dram().named("router.scores"))?;
    for t in [&zeros, &routed.indices, &routed.weights] {
        mesh.deallocate(t)?;
    }
    Ok(dense)
}

fn unary(mesh: &mut Mesh, op: UnaryOp, x: &Tensor, name: &str) -> Result<Tensor, DeviceError> {
    Ok(ops::unary(mesh, op, x, &Out::l1().named(name))?)
}

fn binary(mesh: &mut Mesh, op: BinaryOp, a: &Tensor, b: &Tensor, name: &str) -> Result<Tensor, DeviceError> {
    Ok(ops::binary(mesh, op, a, b, &Out::l1().named(name))?)
}

/// `apply_swiglu`: `clamp(gate, max=L)`, `clamp(up, -L, L)`, `gate * sigmoid(alpha gate)`,
/// `(up + 1) * glu`. Frees its inputs.
fn swiglu(mesh: &mut Mesh, ex: &DeviceExperts, gate: Tensor, up: Tensor) -> Result<Tensor, DeviceError> {
    let gate_c = unary(mesh, UnaryOp::Clamp(f32::MIN, ex.limit), &gate, "experts.decode.gate_clamped")?;
    let up_c = unary(mesh, UnaryOp::Clamp(-ex.limit, ex.limit), &up, "experts.decode.up_clamped")?;
    mesh.deallocate(&gate)?;
    mesh.deallocate(&up)?;
    let scaled = unary(mesh, UnaryOp::Scale(ex.alpha), &gate_c, "experts.decode.gate_alpha")?;
    let sig = unary(mesh, UnaryOp::Sigmoid, &scaled, "experts.decode.gate_sigmoid")?;
    mesh.deallocate(&scaled)?;
    let glu = binary(mesh, BinaryOp::Multiply, &gate_c, &sig, "experts.decode.glu")?;
    mesh.deallocate(&gate_c)?;
    mesh.deallocate(&sig)?;
    let up1 = unary(mesh, UnaryOp::Offset(1.0), &up_c, "experts.decode.up_plus_one")?;
    mesh.deallocate(&up_c)?;
    let act = binary(mesh, BinaryOp::Multiply, &up1, &glu, "experts.decode.act")?;
    mesh.deallocate(&up1)?;
    mesh.deallocate(&glu)?;
    Ok(act)
}

/// `sparse_matmul` of `x` against `w` over the selected experts, plus the bias.
fn projection(
    mesh: &mut Mesh,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    sparsity: &Tensor,
    name: &str,
) -> Result<Tensor, DeviceError> {
    let mm = ops::sparse_matmul(mesh, x, w, sparsity, &Out::l1().named(&format!("{name}_mm")))?;
    let out = binary(mesh, BinaryOp::Add, &mm, bias, name)?;
    mesh.deallocate(&mm)?;
    Ok(out)
}

/// Low-latency experts decode of one token `x` (`[1, 1, 1, H]`, normed) with dense routing
/// `routing` (`[1, 1, 1, E]`, from [`dense_routing`]); returns `[1, 1, 1, H]` on every chip.
pub fn decode_experts(
    mesh: &mut Mesh,
    ccl_manager: &mut CclManager,
    ex: &DeviceExperts,
    x: &Tensor,
    routing: &Tensor,
    top_k: usize,
) -> Result<Tensor, DeviceError> {
    let e = ex.experts;
    if x.shape().len() != 4 || x.shape()[2] != 1 || routing.shape() != [1, 1, 1, e] {
        return Err(DeviceError::Placement(format!(
            "decode experts take one token [1, 1, 1, H] and routing [1, 1, 1, {e}], got {:?} and {:?}",
            x.shape(),
            routing.shape()
        )));
    }
    let ep = mesh.desc().rows as usize;
    let sparsity = ops::to_layout(mesh, routing, PageLayout::RowMajor, &Out::l1().named("experts.decode.sparsity"))?;
    let (sparsity, weights) = if ep > 1 {
        let remapped =
            ops::moe_routing_remap(mesh, &sparsity, top_k, ep, 0, &Out::l1().named("experts.decode.sparsity_remap"))?;
        mesh.deallocate(&sparsity)?;
        // Stands in for tilize_with_zero_padding: the remapped weights back in tiles.
        let weights =
            ops::to_layout(mesh, &remapped, PageLayout::Tile, &Out::l1().named("experts.decode.routing_remap"))?;
        (remapped, weights)
    } else {
        let weights = ops::to_layout(mesh, &sparsity, PageLayout::Tile, &Out::l1().named("experts.decode.routing"))?;
        (sparsity, weights)
    };
    let gate = projection(mesh, x, &ex.gate, &ex.gate_bias, &sparsity, "experts.decode.gate")?;
    let up = projection(mesh, x, &ex.up, &ex.up_bias, &sparsity, "experts.decode.up")?;
    mesh.deallocate(&sparsity)?;
    let act = swiglu(mesh, ex, gate, up)?;
    // Stands in for sparse_matmul(is_input_a_sparse=True): the skipped experts' rows are zero
    // in `act` only up to their bias, and their routing weight below is zero.
    let down_mm = ops::matmul(mesh, &act, &ex.down, MatmulArgs::default(), &Out::l1().named("experts.decode.down_mm"))?;
    mesh.deallocate(&act)?;
    let down = binary(mesh, BinaryOp::Add, &down_mm, &ex.down_bias, "experts.decode.down")?;
    mesh.deallocate(&down_mm)?;
    let per_expert = ops::reshape(mesh, &weights, &[1, e, 1, 1], &Out::l1().named("experts.decode.routing_e"))?;
    mesh.deallocate(&weights)?;
    let weighted = binary(mesh, BinaryOp::Multiply, &down, &per_expert, "experts.decode.weighted")?;
    mesh.deallocate(&down)?;
    mesh.deallocate(&per_expert)?;
    let summed = ops::reduce(mesh, ReduceOp::Sum, &weighted, 1, &Out::l1().named("experts.decode.sum"))?;
    mesh.deallocate(&weighted)?;
    let reduce = |axis: usize, name: &str, ccl_manager: &CclManager| CclArgs {
        cluster_axis: Some(axis),
        topology: ccl_manager.topology,
        num_links: ccl_manager.num_links,
        out: Out::dram().named(name),
    };
    let summed = if ep > 1 {
        let rows = ccl::all_reduce(mesh, &summed, &reduce(0, "experts.decode.ep_all_reduce", ccl_manager))?;
        mesh.deallocate(&summed)?;
        rows
    } else {
        summed
    };
    let out = ccl::all_reduce(mesh, &summed, &reduce(1, "experts.decode.tp_all_reduce", ccl_manager))?;
    mesh.deallocate(&summed)?;
    Ok(out)
}

//! Plan mode's MLP on a mesh with several rows: the router and the throughput experts (reference
//! doc section 3.8.3) with the experts sharded over every chip, as the device path runs them
//! (`device::throughput_mlp`). Prefill splits the sequence over the rows, runs the experts in
//! chunks and gathers the rows' tokens back (padding the sequence to whole tiles per row, as
//! the device path does); a decode step's rows each hold their own tile of users, as the
//! demo's batched 4x8 decode has them.

use super::{named, spec, topk, within, Dims, LayerW, Planner, TILE};
use crate::gpt_oss::device::THROUGHPUT_CHUNK;
use crate::gpt_oss::run::error::RunError;
use crate::sim::ccl;
use crate::sim::ops::Out;
use crate::sim::{DType, Tensor};

/// Router and throughput experts on the normed `h2` (`[1, 1, s, H]`); `split` (prefill)
/// partitions the sequence over the rows and gathers it back.
pub(super) fn mlp(
    p: &mut Planner,
    n: &Dims,
    w: &LayerW,
    h2: &Tensor,
    s: usize,
    split: bool,
) -> Result<Tensor, RunError> {
    let (h, k) = (n.h, n.top_k);
    let padded_len = if split { s.div_ceil(n.rows * TILE) * n.rows * TILE } else { s };
    let padded = match padded_len > s {
        true => Some(p.op1("ttnn.pad", &[h2], &[1, 1, padded_len, h], "experts.padded")?),
        false => None,
    };
    let per_row = if split { padded_len / n.rows } else { s };
    let local = match split {
        true => {
            let out = Out::dram().named("experts.sp_input");
            let whole = padded.as_ref().unwrap_or(h2);
            Some(ccl::mesh_partition(&mut p.mesh, whole, 2, Some(0), &out).map_err(|e| named(e, "experts.sp_input"))?)
        }
        false => None,
    };
    if let Some(t) = &padded {
        p.free(&[t])?;
    }
    let x = local.as_ref().unwrap_or(h2);
    let e_all = n.experts * n.rows;
    let logits = p.op1("ttnn.linear", &[x, &w.router, &w.router_bias], &[1, 1, per_row, e_all], "router.logits")?;
    let [vals, idx] = topk(p, &logits, per_row, k)?;
    p.free(&[&logits])?;
    let wts = p.op1("ttnn.softmax", &[&vals], &[1, 1, per_row, k], "router.weights")?;
    p.free(&[&vals])?;
    let mut parts = Vec::new();
    for start in (0..per_row).step_by(THROUGHPUT_CHUNK) {
        let c = THROUGHPUT_CHUNK.min(per_row - start);
        // One chunk runs on the whole tensors, as the demo does below its chunk size.
        let sliced = match per_row > THROUGHPUT_CHUNK {
            true => Some([
                p.op1("ttnn.slice", &[x], &[1, 1, c, h], "experts.chunk.x")?,
                p.op1_spec(
                    "ttnn.slice",
                    &[&idx],
                    idx.spec().clone().with_shape(&[1, 1, c, k]),
                    "experts.chunk.indices",
                )?,
                p.op1("ttnn.slice", &[&wts], &[1, 1, c, k], "experts.chunk.weights")?,
            ]),
            false => None,
        };
        let [cx, ci, cw] = match &sliced {
            Some([a, b, c]) => [a, b, c],
            None => [x, &idx, &wts],
        };
        parts.push(chunk(p, n, w, cx, ci, cw, c)?);
        if let Some(ts) = &sliced {
            p.free(&ts.iter().collect::<Vec<_>>())?;
        }
    }
    p.free(&[&idx, &wts])?;
    if let Some(t) = &local {
        p.free(&[t])?;
    }
    let joined = match parts.len() {
        1 => parts.pop().ok_or_else(|| RunError::Usage("no chunk".into()))?,
        _ => {
            let refs: Vec<&Tensor> = parts.iter().collect();
            let joined = p.op1("ttnn.concat", &refs, &[1, 1, per_row, h], "experts.chunks")?;
            p.free(&refs)?;
            joined
        }
    };
    if !split {
        return Ok(joined);
    }
    let args = p.ccl_args(0, "experts.sp_gather");
    let gathered = ccl::all_gather(&mut p.mesh, &joined, 2, &args).map_err(|e| named(e, "experts.sp_gather"))?;
    p.free(&[&joined])?;
    if padded_len == s {
        return Ok(gathered);
    }
    let out = p.op1("ttnn.slice", &[&gathered], &[1, 1, s, h], "experts.mlp")?;
    p.free(&[&gathered])?;
    Ok(out)
}

/// One chunk of `c` tokens per row: dispatch over the rows, every local expert densely over
/// all dispatched tokens, combine, weigh, sum over k, all_reduce over the columns.
fn chunk(
    p: &mut Planner,
    n: &Dims,
    w: &LayerW,
    x: &Tensor,
    idx: &Tensor,
    wts: &Tensor,
    c: usize,
) -> Result<Tensor, RunError> {
    let (h, k, el, r) = (n.h, n.top_k, n.local, n.rows);
    let i = n.inter * n.tp;
    let total = c * r;
    let mapping = w.mapping.as_ref().ok_or_else(|| RunError::Usage("no expert mapping".into()))?;
    // Row-major `[1, c, 1, *]`, as all_to_all_dispatch takes its tokens and indices.
    let x_rm = p.op1_spec("ttnn.to_layout", &[x], spec(&[1, c, 1, h]).row_major(), "experts.input")?;
    let idx_spec = spec(&[1, c, 1, k]).row_major().with_dtype(DType::U32);
    let idx_rm = p.op1_spec("ttnn.to_layout", &[idx], idx_spec, "experts.topk_indices")?;
    let weights = p.op1("ttnn.permute", &[wts], &[k, 1, c, 1], "experts.topk_weights")?;
    let args = p.ccl_args(0, "experts.dispatch");
    let (dispatched, metadata) = ccl::all_to_all_dispatch(&mut p.mesh, &x_rm, &idx_rm, mapping, &args)
        .map_err(|e| within(e, "ttnn.all_to_all_dispatch", "experts.dispatch"))?;
    p.free(&[&x_rm, &idx_rm])?;
    let tiled = p.op1("ttnn.to_layout", &[&dispatched], &[1, 1, total, h], "experts.dispatched")?;
    p.free(&[&dispatched])?;
    let repeated = p.op1("ttnn.repeat", &[&tiled], &[1, el, total, h], "experts.repeated")?;
    p.free(&[&tiled])?;
    let gu = p.op1("ttnn.matmul", &[&repeated, &w.gate_up], &[1, el, total, 2 * i], "experts.gate_up")?;
    p.free(&[&repeated])?;
    let biased = p.op1("ttnn.add", &[&gu, &w.gate_up_bias], &[1, el, total, 2 * i], "experts.gate_up_bias")?;
    p.free(&[&gu])?;
    let gate = p.op1("ttnn.slice", &[&biased], &[1, el, total, i], "experts.gate")?;
    let up = p.op1("ttnn.slice", &[&biased], &[1, el, total, i], "experts.up")?;
    p.free(&[&biased])?;
    let act = p.op1("ttnn.swiglu", &[&gate, &up], &[1, el, total, i], "experts.swiglu")?;
    p.free(&[&gate, &up])?;
    let down = p.op1("ttnn.matmul", &[&act, &w.down], &[1, el, total, h], "experts.down")?;
    p.free(&[&act])?;
    let db = p.op1("ttnn.add", &[&down, &w.down_bias], &[1, el, total, h], "experts.down_bias")?;
    p.free(&[&down])?;
    // Each local expert's rows for every dispatched token, `[E_local, rows, c, H]` row-major,
    // as all_to_all_combine takes them.
    let out_rm = p.op1_spec("ttnn.to_layout", &[&db], spec(&[el, r, c, h]).row_major(), "experts.out_rm")?;
    p.free(&[&db])?;
    let args = p.ccl_args(0, "experts.combine");
    let combined = ccl::all_to_all_combine(&mut p.mesh, &out_rm, &metadata, mapping, &args)
        .map_err(|e| within(e, "ttnn.all_to_all_combine", "experts.combine"))?;
    p.free(&[&out_rm, &metadata])?;
    let tiled = p.op1("ttnn.to_layout", &[&combined], &[k, 1, c, h], "experts.combined")?;
    p.free(&[&combined])?;
    let weighted = p.op1("ttnn.mul", &[&tiled, &weights], &[k, 1, c, h], "experts.weighted")?;
    p.free(&[&tiled, &weights])?;
    let summed = p.op1("ttnn.sum", &[&weighted], &[1, 1, c, h], "experts.sum_k")?;
    p.free(&[&weighted])?;
    let reduced = p.all_reduce(&summed, 1, "experts.all_reduce")?;
    p.free(&[&summed])?;
    Ok(reduced)
}

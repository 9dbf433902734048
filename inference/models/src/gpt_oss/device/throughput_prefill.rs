//! The MLP of a prefill layer on a mesh with several rows (reference doc section 3.10, "4x8,
//! prefill"): the sequence is split over the rows (the prefill config's SP = rows), each row
//! routes its own tokens and runs the throughput experts over them in chunks
//! (`prefill_forward_chunked`), every chunk ending in the all_reduce over the columns; the
//! rows' tokens are then gathered back, so every chip holds the whole sequence for the
//! residual add.

use super::error::DeviceError;
use super::experts::BLOCK;
use super::router::{router, DeviceRouter};
use super::throughput::{throughput_experts, ThroughputExperts, ThroughputInputs};
use ttsan_events::Role;
use ttsan_sim::ccl::{self, CclArgs, CclManager};
use ttsan_sim::ops::{self, Out};
use ttsan_sim::{DType, Mesh, PageLayout, Tensor, TensorSpec};

/// Whether prefill on an R x C mesh runs the throughput experts: several rows, and experts
/// that shard whole over every chip (`ThroughputExpertConfig` needs that). Otherwise prefill
/// keeps the low-latency experts, replicated down the rows.
pub fn throughput_prefill(rows: usize, cols: usize, experts: usize) -> bool {
    rows > 1 && experts % (rows * cols) == 0
}

/// Tokens per chunk of a row's sequence: the demo's default `chunk_size` (larger chunks
/// diverged on the last mesh row, tt-metal issue 36335).
pub const THROUGHPUT_CHUNK: usize = 128;

/// Router and throughput experts over the normed prefill sequence `h` (`[1, 1, T, H]`, the same
/// on every chip, T a multiple of 32): returns `[1, 1, T, H]` on every chip. `h` stays alive.
///
/// Each row must hold whole tiles of tokens, so a sequence that does not split into them is
/// padded with zero rows at its end (the demo pads its prompts the same way); their outputs are
/// sliced off after the gather. A row's last chunk is shorter when its share is not a whole
/// number of chunks, as `ttnn.split` leaves it.
pub fn throughput_mlp(
    mesh: &mut Mesh,
    ccl_manager: &CclManager,
    w: &DeviceRouter,
    ex: &ThroughputExperts,
    h: &Tensor,
) -> Result<Tensor, DeviceError> {
    let &[1, 1, tokens, hidden] = h.shape() else {
        return Err(DeviceError::Placement(format!("MLP input {:?} is not [1, 1, T, H]", h.shape())));
    };
    let rows = mesh.desc().rows as usize;
    let padded_len = tokens.div_ceil(rows * BLOCK) * rows * BLOCK;
    let padded = match padded_len - tokens {
        0 => None,
        pad => {
            // Stands in for ttnn.pad (the simulator has no pad op): a concat with zero rows.
            let shape = [1, 1, pad, hidden];
            let zeros = mesh.zeros_per_device(&shape);
            let spec = TensorSpec::new(&shape, DType::Bf16);
            let zeros = mesh.from_host_per_device(zeros, &spec, &ex.name("pad_rows"), Role::Activation)?;
            let padded = ops::concat(mesh, &[h, &zeros], 2, &Out::dram().named(&ex.name("padded")))?;
            mesh.deallocate(&zeros)?;
            Some(padded)
        }
    };
    let whole = padded.as_ref().unwrap_or(h);
    let local = ccl::mesh_partition(mesh, whole, 2, Some(0), &Out::dram().named(&ex.name("sp_input")))?;
    if let Some(p) = &padded {
        mesh.deallocate(p)?;
    }
    let routed = router(mesh, w, &local)?;
    let per_row = padded_len / rows;
    let mut outputs = Vec::with_capacity(per_row.div_ceil(THROUGHPUT_CHUNK));
    for start in (0..per_row).step_by(THROUGHPUT_CHUNK) {
        let end = (start + THROUGHPUT_CHUNK).min(per_row);
        let parts = [&local, &routed.indices, &routed.weights];
        // One chunk runs the forward on the whole tensors, as the demo does below its chunk size.
        let sliced = if per_row > THROUGHPUT_CHUNK {
            let mut v = Vec::with_capacity(parts.len());
            for (t, what) in parts.iter().zip(["chunk.x", "chunk.indices", "chunk.weights"]) {
                let width = t.shape()[3];
                let out = Out::dram().named(&ex.name(what));
                v.push(ops::slice(mesh, t, &[0, 0, start, 0], &[1, 1, end, width], &out)?);
            }
            Some(v)
        } else {
            None
        };
        let [x, indices, weights] = match &sliced {
            Some(v) => [&v[0], &v[1], &v[2]],
            None => parts,
        };
        let inputs = dispatch_inputs(mesh, ex, x, indices, weights)?;
        outputs.push(throughput_experts(mesh, ex, &inputs, ccl_manager.topology, ccl_manager.num_links)?);
        for t in sliced.iter().flatten().chain([&inputs.x, &inputs.indices, &inputs.weights]) {
            mesh.deallocate(t)?;
        }
    }
    for t in [&local, &routed.indices, &routed.weights] {
        mesh.deallocate(t)?;
    }
    let joined = match outputs.as_slice() {
        [one] => one.clone(),
        many => {
            let refs: Vec<&Tensor> = many.iter().collect();
            let joined = ops::concat(mesh, &refs, 2, &Out::dram().named(&ex.name("chunks")))?;
            for t in many {
                mesh.deallocate(t)?;
            }
            joined
        }
    };
    // The sequence-parallel all_gather(dim=-2, cluster_axis=sp_axis) of the demo's prefill MLP:
    // each row contributes its share of the tokens.
    let args = CclArgs {
        cluster_axis: Some(0),
        topology: ccl_manager.topology,
        num_links: ccl_manager.num_links,
        out: Out::dram().named(&ex.name("sp_gather")),
    };
    let gathered = ccl::all_gather(mesh, &joined, 2, &args)?;
    mesh.deallocate(&joined)?;
    if padded.is_none() {
        return Ok(gathered);
    }
    let out = ops::slice(mesh, &gathered, &[0, 0, 0, 0], &[1, 1, tokens, hidden], &Out::dram().named(&ex.name("mlp")))?;
    mesh.deallocate(&gathered)?;
    Ok(out)
}

/// The reshapes before the dispatch (`decode_forward` steps 0, 1 and 6): tokens and indices
/// untilized to row-major `[1, n, 1, *]` as all_to_all_dispatch takes them, and the routing
/// weights permuted to `[k, 1, n, 1]` to scale the combined expert outputs.
fn dispatch_inputs(
    mesh: &mut Mesh,
    ex: &ThroughputExperts,
    x: &Tensor,
    indices: &Tensor,
    weights: &Tensor,
) -> Result<ThroughputInputs, DeviceError> {
    let row_major = |mesh: &mut Mesh, t: &Tensor, what: &str| -> Result<Tensor, DeviceError> {
        let [_, _, n, width] = <[usize; 4]>::try_from(t.shape())
            .map_err(|_| DeviceError::Placement(format!("{what} {:?} is not rank 4", t.shape())))?;
        let rm = ops::to_layout(mesh, t, PageLayout::RowMajor, &Out::dram().named(&ex.name(&format!("{what}_rm"))))?;
        let out = ops::reshape(mesh, &rm, &[1, n, 1, width], &Out::dram().named(&ex.name(what)))?;
        mesh.deallocate(&rm)?;
        Ok(out)
    };
    let x = row_major(mesh, x, "input")?;
    let indices = row_major(mesh, indices, "topk_indices")?;
    let weights = ops::permute(mesh, weights, &[3, 1, 2, 0], &Out::dram().named(&ex.name("topk_weights")))?;
    Ok(ThroughputInputs { x, indices, weights })
}

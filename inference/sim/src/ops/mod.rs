//! ttnn ops on the simulated mesh, named as ttnn spells them.
//!
//! Every op here runs per chip on that chip's local tensors (the collectives live in
//! [`super::ccl`]). The kernels compute in `f32` on the CPU and round once when they store
//! the result in the output's dtype.

mod cache;
mod decode_heads;
mod decode_routing;
mod decode_sdpa;
mod eltwise;
mod embedding;
mod layout;
mod matmul;
mod norm;
mod reduce;
mod reshape;
mod rotary;
mod sdpa;
mod slice;
mod softmax;
mod sparse_matmul;
mod topk;

pub use cache::{fill_cache, paged_fill_cache, paged_update_cache};
pub use decode_heads::{
    nlp_concat_heads, nlp_concat_heads_decode, nlp_create_qkv_heads, nlp_create_qkv_heads_decode, QkvHeads,
};
pub use decode_routing::{moe_routing_remap, scatter};
pub use decode_sdpa::{paged_scaled_dot_product_attention_decode, scaled_dot_product_attention_decode, SdpaDecodeArgs};
pub use eltwise::{add, binary, multiply, silu, subtract, unary, BinaryOp, UnaryOp};
pub use embedding::embedding;
pub use layout::{to_layout, to_memory_config};
pub use matmul::{linear, matmul, MatmulArgs};
pub use norm::rms_norm;
pub use reduce::{reduce, ReduceOp};
pub use reshape::{permute, reshape, transpose};
pub use rotary::rotary_embedding;
pub use sdpa::{scaled_dot_product_attention, SdpaArgs};
pub use slice::{concat, slice};
pub use softmax::softmax;
pub use sparse_matmul::sparse_matmul;
pub use topk::topk;

use super::dtype::{DType, PageLayout};
use super::error::{SimError, SimResult};
use super::host::HostTensor;
use super::mesh::Mesh;
use super::op::OpRun;
use super::tensor::{MemoryConfig, Tensor, TensorSpec};
use ttsan_events::Role;

/// Where and how an op stores its output (ttnn's `memory_config=`, `dtype=`, `layout=`), and
/// the name the output buffer gets in the trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Out {
    /// Memory config (`None`: DRAM interleaved).
    pub memory: Option<MemoryConfig>,
    /// Output dtype (`None`: the first input's).
    pub dtype: Option<DType>,
    /// Output page layout (`None`: the first input's).
    pub layout: Option<PageLayout>,
    /// Buffer name (`None`: `<op>.out`).
    pub name: Option<String>,
    /// Buffer role (`None`: activation).
    pub role: Option<Role>,
}

impl Out {
    /// DRAM interleaved, everything else inherited.
    pub fn dram() -> Self {
        Out { memory: Some(MemoryConfig::DramInterleaved), ..Out::default() }
    }

    /// L1 interleaved.
    pub fn l1() -> Self {
        Out { memory: Some(MemoryConfig::L1Interleaved), ..Out::default() }
    }

    /// The same with a memory config.
    pub fn memory(mut self, memory: MemoryConfig) -> Self {
        self.memory = Some(memory);
        self
    }

    /// The same with a buffer name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// The same with an output dtype.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// The same with an output page layout.
    pub fn layout(mut self, layout: PageLayout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// The same with a buffer role.
    pub fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    /// The output spec for `shape`, inheriting dtype and layout from `like`.
    pub fn spec(&self, shape: &[usize], like: &Tensor) -> TensorSpec {
        TensorSpec {
            shape: shape.to_vec(),
            dtype: self.dtype.unwrap_or(like.dtype()),
            layout: self.layout.unwrap_or(like.layout()),
            memory: self.memory.clone().unwrap_or(MemoryConfig::DramInterleaved),
        }
    }

    /// The output buffer name for op `op`.
    pub fn name_for(&self, op: &str) -> String {
        self.name.clone().unwrap_or_else(|| format!("{op}.out"))
    }
}

/// The usual double-buffered circular buffers: two pages per input and two for the output.
fn default_cbs(inputs: &[&Tensor], out: &TensorSpec) -> Vec<(String, u64)> {
    let mut cbs: Vec<(String, u64)> =
        inputs.iter().enumerate().map(|(i, t)| (format!("cb_in{i}"), 2 * t.placement().page_size)).collect();
    cbs.push(("cb_out".to_string(), 2 * out.format().page_size()));
    cbs
}

/// Places the usual double-buffered circular buffers (two pages per input, two for the output)
/// of a program reading `inputs` and writing `out` on the whole compute grid; returns where the
/// region ends. Every op with that layout places its buffers here, in data and plan mode alike.
pub fn place_default_cbs(op: &mut OpRun<'_>, inputs: &[&Tensor], out: &TensorSpec) -> SimResult<u64> {
    let cbs = default_cbs(inputs, out);
    let refs: Vec<(&str, u64)> = cbs.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let grid = op.compute_grid();
    op.circular_buffers(grid, &refs)
}

/// Runs a per-chip op: begin, allocate the output, place circular buffers, run `kernel` on
/// every chip's inputs, write its result, end. New per-chip ops need only a kernel:
/// `local_op(mesh, "ttnn.my_op", args, &[x], out.spec(shape, x), out, |ins| ...)`. On a
/// placement-only mesh the op ends after placing ([`OpRun::compute`]).
pub fn local_op(
    mesh: &mut Mesh,
    name: &str,
    args: String,
    inputs: &[&Tensor],
    out_spec: TensorSpec,
    out: &Out,
    kernel: impl Fn(&[HostTensor]) -> SimResult<HostTensor> + Sync,
) -> SimResult<Tensor> {
    let mut op = mesh.begin_op(name, args, inputs, &[], &[])?;
    let output = op.alloc_output(&out_spec, &out.name_for(name), out.role.unwrap_or(Role::Activation))?;
    place_default_cbs(&mut op, inputs, &out_spec)?;
    op.compute(|op| {
        op.run(|chip| {
            let ins: Vec<HostTensor> = inputs.iter().map(|t| chip.read(t)).collect();
            let result = kernel(&ins)?;
            if result.shape != output.shape() {
                return Err(SimError::invalid(
                    name,
                    format!("kernel produced {:?}, expected {:?}", result.shape, output.shape()),
                ));
            }
            chip.write(&output, &result)
        })?;
        Ok(())
    })?;
    op.finish()?;
    Ok(output)
}

/// A readable argument string for `OpBegin.args`.
pub(crate) fn args_of(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

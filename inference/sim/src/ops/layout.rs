//! `ttnn.to_layout` (tilize / untilize) and `ttnn.to_memory_config`: same values, new pages.

use super::{args_of, local_op, Out};
use crate::dtype::PageLayout;
use crate::error::SimResult;
use crate::mesh::Mesh;
use crate::tensor::{MemoryConfig, Tensor};

/// `ttnn.to_layout(x, layout)`: re-pages the tensor as tiles or rows.
pub fn to_layout(mesh: &mut Mesh, x: &Tensor, layout: PageLayout, out: &Out) -> SimResult<Tensor> {
    let out = out.clone().layout(layout);
    let spec = out.spec(x.shape(), x);
    let args = args_of(&[("layout", layout.to_string())]);
    local_op(mesh, "ttnn.to_layout", args, &[x], spec, &out, |ins| Ok(ins[0].clone()))
}

/// `ttnn.to_memory_config(x, memory)`: moves the tensor (e.g. DRAM -> L1 height-sharded).
pub fn to_memory_config(mesh: &mut Mesh, x: &Tensor, memory: MemoryConfig, out: &Out) -> SimResult<Tensor> {
    let args = args_of(&[("memory_config", format!("{memory:?}"))]);
    let out = out.clone().memory(memory);
    let spec = out.spec(x.shape(), x);
    local_op(mesh, "ttnn.to_memory_config", args, &[x], spec, &out, |ins| Ok(ins[0].clone()))
}

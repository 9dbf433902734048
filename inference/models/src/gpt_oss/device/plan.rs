//! How the model divides over a mesh: tensor parallelism over the columns (mesh axis 1), as
//! tt-metal's `MeshConfig(tp_axis=1)`.

use super::error::DeviceError;
use crate::gpt_oss::config::GptOssConfig;
use ttsan_sim::Mesh;

/// Per-chip sizes under tensor parallelism over the mesh columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpPlan {
    /// Mesh rows (replicas for attention and the router).
    pub rows: usize,
    /// Mesh columns = TP degree.
    pub tp: usize,
    /// Query heads per chip.
    pub heads: usize,
    /// Key/value heads per chip.
    pub kv_heads: usize,
}

impl TpPlan {
    /// The plan for `config` on `mesh`; heads and kv heads must divide over the columns.
    pub fn new(config: &GptOssConfig, mesh: &Mesh) -> Result<Self, DeviceError> {
        let rows = mesh.desc().rows as usize;
        let tp = mesh.desc().cols as usize;
        let (nh, nkv) = (config.num_attention_heads, config.num_key_value_heads);
        if tp == 0 || nh % tp != 0 || nkv % tp != 0 {
            return Err(DeviceError::Placement(format!("{nh} heads / {nkv} kv heads over {tp} columns")));
        }
        if config.hidden_size % tp != 0 {
            return Err(DeviceError::Placement(format!("hidden {} over {tp} columns", config.hidden_size)));
        }
        Ok(TpPlan { rows, tp, heads: nh / tp, kv_heads: nkv / tp })
    }

    /// The TP rank (mesh column) of device `d` (row-major device order).
    pub fn rank(&self, device: usize) -> usize {
        device % self.tp
    }

    /// Chips in the mesh.
    pub fn devices(&self) -> usize {
        self.rows * self.tp
    }
}

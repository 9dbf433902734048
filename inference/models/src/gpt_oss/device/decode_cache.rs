//! The KV cache on the mesh (`DeviceKvCache`): one key and one value tensor per layer in DRAM
//! (role kv-cache), the kv heads split over the mesh columns as the demo shards them
//! (`ShardTensor2dMesh` on the head dim, replicated down the rows), optionally paged.

use super::error::DeviceError;
use super::plan::TpPlan;
use crate::gpt_oss::config::GptOssConfig;
use crate::gpt_oss::error::GptOssError;
use ttsan_events::Role;
use ttsan_sim::{DType, HostTensor, Mesh, Tensor, TensorSpec};

/// Positions per block of a paged cache (the demo's `block_size`).
pub const KV_BLOCK: usize = 64;

/// One layer's cache tensors.
#[derive(Debug, Clone)]
pub struct LayerKv {
    /// Rotated keys: `[1, kv_heads/tp, max_seq, d]`, or paged `[blocks, kv_heads/tp, 64, d]`.
    pub k: Tensor,
    /// Values, laid out as `k`.
    pub v: Tensor,
}

/// The KV cache of one user for every layer.
#[derive(Debug, Clone)]
pub struct DeviceKvCache {
    /// Per layer.
    pub layers: Vec<LayerKv>,
    /// `[1, blocks]` uint32 row-major, replicated, when the cache is paged.
    pub page_table: Option<Tensor>,
    /// Positions the cache holds.
    pub max_seq: usize,
    /// Positions filled so far (the position of the next token).
    pub len: usize,
}

impl DeviceKvCache {
    /// Allocates a zeroed cache of `max_seq` positions for `config` on `mesh` (the demo uploads
    /// zeros too). `paged` uses blocks of [`KV_BLOCK`] positions (`max_seq` must be a multiple)
    /// and a page table that maps logical block `i` to physical block `blocks - 1 - i`, so a
    /// kernel that ignored the table would read the wrong rows.
    pub fn new(mesh: &mut Mesh, config: &GptOssConfig, max_seq: usize, paged: bool) -> Result<Self, DeviceError> {
        let plan = TpPlan::new(config, mesh)?;
        let d = config.head_dim;
        if max_seq == 0 || (paged && max_seq % KV_BLOCK != 0) {
            return Err(GptOssError::InvalidInput(format!(
                "a cache of {max_seq} positions (paged caches need a multiple of {KV_BLOCK})"
            ))
            .into());
        }
        let blocks = max_seq / KV_BLOCK;
        let shape = if paged { vec![blocks, plan.kv_heads, KV_BLOCK, d] } else { vec![1, plan.kv_heads, max_seq, d] };
        let spec = TensorSpec::new(&shape, DType::Bf16);
        let devices = mesh.num_devices();
        let mut zeros = |name: String| -> Result<Tensor, DeviceError> {
            let pieces = mesh.zeros_per_device(&shape);
            Ok(mesh.from_host_per_device(pieces, &spec, &name, Role::KvCache)?)
        };
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                Ok(LayerKv {
                    k: zeros(format!("model.layers.{l}.self_attn.k_cache"))?,
                    v: zeros(format!("model.layers.{l}.self_attn.v_cache"))?,
                })
            })
            .collect::<Result<Vec<_>, DeviceError>>()?;
        let page_table = if paged {
            let table = HostTensor::from_fn(&[1, blocks], |i| (blocks - 1 - i) as f32);
            let spec = TensorSpec::new(&[1, blocks], DType::U32).row_major();
            Some(mesh.from_host_per_device(vec![table; devices], &spec, "kv_cache.page_table", Role::Activation)?)
        } else {
            None
        };
        Ok(DeviceKvCache { layers, page_table, max_seq, len: 0 })
    }

    /// Positions filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the cache is paged.
    pub fn is_paged(&self) -> bool {
        self.page_table.is_some()
    }

    /// Uploads the `[1]` uint32 current-position tensor the decode ops take.
    pub fn position_tensor(mesh: &mut Mesh, pos: usize) -> Result<Tensor, DeviceError> {
        let spec = TensorSpec::new(&[1], DType::U32).row_major();
        let devices = mesh.num_devices();
        let host = HostTensor::new(vec![1], vec![pos as f32])?;
        Ok(mesh.from_host_per_device(vec![host; devices], &spec, "decode.cur_pos", Role::Activation)?)
    }

    /// Frees every cache tensor.
    pub fn deallocate(&self, mesh: &mut Mesh) -> Result<(), DeviceError> {
        for l in &self.layers {
            mesh.deallocate(&l.k)?;
            mesh.deallocate(&l.v)?;
        }
        if let Some(t) = &self.page_table {
            mesh.deallocate(t)?;
        }
        Ok(())
    }
}

//! GPT-OSS on the simulated mesh, op for op as tt-metal's `models/demos/gpt_oss` runs it
//! (reference doc sections 3.5-3.10): same tensor placements, same op order, same collectives,
//! so a trace of a simulated run shows the buffers and the CCL traffic the real model has.
//!
//! So far: the router (section 3.8.1, throughput form: indices and weights, no scatter),
//! prefill attention (section 3.7) on meshes with tensor parallelism over the columns, and the
//! low-latency prefill experts (section 3.8.2) on 1xN meshes; the throughput experts
//! (section 3.8.3: all_to_all dispatch, dense local experts, combine, all_reduce), which
//! prefill on several rows runs over the rows in chunks; and with them whole decoder layers and
//! the whole model in prefill on 1xN and RxN.
//! Decode (sections 3.6, 3.8.2, 3.9): attention with the KV cache, router + low-latency
//! experts with EP over the rows, decoder layers and the whole-model decode step, on 1xN and
//! RxN meshes; the prefill that fills the cache.
//! Ops the simulator does not have yet are composed from the ones it has; each such spot says
//! which ttnn op it stands in for.

mod allreduce;
mod attention;
mod decode_attention;
mod decode_cache;
mod decode_experts;
mod decode_model;
mod error;
mod experts;
mod model;
mod plan;
mod router;
mod throughput;
mod throughput_prefill;

pub use allreduce::allreduce;
pub use attention::{prefill_attention, DeviceAttention};
pub use decode_attention::{decode_attention, prefill_attention_fill, DecodeAttention, DecodePosition};
pub use decode_cache::{DeviceKvCache, LayerKv, KV_BLOCK};
pub use decode_experts::{decode_experts, dense_routing};
pub use decode_model::{decode_layer, DecodeModel};
pub use error::DeviceError;
pub use experts::{prefill_experts, prefill_experts_consuming, DeviceExperts, TpReduce, BLOCK};
pub use model::{padded_prompt, prefill_layer, DeviceLayer, DeviceModel, ExpertsPlacement};
pub use plan::TpPlan;
pub use router::{router, DeviceRouter, RouterOutput};
pub use throughput::{throughput_experts, ThroughputExperts, ThroughputInputs};
pub use throughput_prefill::{throughput_mlp, throughput_prefill, THROUGHPUT_CHUNK};

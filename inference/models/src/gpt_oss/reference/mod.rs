//! The f32 CPU reference: Hugging Face's GPT-OSS semantics, module by module, with a KV cache
//! for decode. Every function here is an entry point the module tests compare against.

mod attention;
mod cache;
mod experts;
mod layer;
mod model;
mod ops;
mod router;

pub use attention::{attention, AttentionOutput};
pub use cache::{KvCache, LayerCache};
pub use experts::{expert_forward, experts, swiglu};
pub use layer::{decoder_layer, mlp};
pub use model::Reference;
pub use ops::{linear, rms_norm};
pub use router::{route, Routing};

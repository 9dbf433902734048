//! The whole model: embedding, decoder layers, final norm, lm_head; prefill and cached decode.

use super::cache::{KvCache, LayerCache};
use super::layer::decoder_layer;
use super::ops::{linear, rms_norm};
use crate::gpt_oss::error::{GptOssError, Result};
use crate::gpt_oss::rope::Rope;
use crate::gpt_oss::weights::ModelWeights;

/// The reference model over borrowed weights.
#[derive(Debug, Clone)]
pub struct Reference<'w> {
    weights: &'w ModelWeights,
    rope: Rope,
}

impl<'w> Reference<'w> {
    /// A reference model for `weights` (whose config was validated when loaded or built).
    pub fn new(weights: &'w ModelWeights) -> Self {
        Reference { weights, rope: Rope::new(&weights.config) }
    }

    /// The weights.
    pub fn weights(&self) -> &'w ModelWeights {
        self.weights
    }

    /// The rotary embedding in use.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// An empty cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        let width = self.weights.config.kv_width();
        KvCache { layers: (0..self.weights.config.num_hidden_layers).map(|_| LayerCache::new(width)).collect() }
    }

    /// Embedding rows of `tokens` (`[T, H]`).
    pub fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let vocab = self.weights.config.vocab_size;
        let mut x = Vec::with_capacity(tokens.len() * self.weights.config.hidden_size);
        for &t in tokens {
            if t as usize >= vocab {
                return Err(GptOssError::InvalidInput(format!("token id {t} >= vocab_size {vocab}")));
            }
            x.extend_from_slice(self.weights.embed.outer(t as usize));
        }
        Ok(x)
    }

    /// The final hidden states (`[T, H]`, before the final norm) of `tokens`, which continue the
    /// sequence held by `cache`.
    pub fn forward_hidden(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let config = &self.weights.config;
        if tokens.is_empty() {
            return Err(GptOssError::InvalidInput("no tokens".to_owned()));
        }
        if cache.layers.len() != config.num_hidden_layers
            || cache.layers.iter().any(|l| l.width != config.kv_width() || l.len() != cache.len())
        {
            return Err(GptOssError::InvalidInput("the cache does not belong to this model".to_owned()));
        }
        let mut x = self.embed(tokens)?;
        for (i, (w, layer_cache)) in self.weights.layers.iter().zip(cache.layers.iter_mut()).enumerate() {
            decoder_layer(config, i, w, &self.rope, &mut x, layer_cache)?;
        }
        Ok(x)
    }

    /// Logits (`[T, V]`) of `tokens` continuing the sequence held by `cache`.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let config = &self.weights.config;
        let x = self.forward_hidden(tokens, cache)?;
        let normed = rms_norm(&x, &self.weights.norm.data, config.rms_norm_eps as f32);
        let zero_bias = vec![0.0; config.vocab_size];
        Ok(linear(&normed, &self.weights.lm_head.data, &zero_bias, config.hidden_size))
    }

    /// Prefill: logits of every prompt position and the filled cache.
    pub fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, KvCache)> {
        let mut cache = self.new_cache();
        let logits = self.forward(tokens, &mut cache)?;
        Ok((logits, cache))
    }

    /// One decode step: the logits (`[V]`) of `token` at position `cache.len()`.
    pub fn decode(&self, token: u32, cache: &mut KvCache) -> Result<Vec<f32>> {
        self.forward(&[token], cache)
    }
}

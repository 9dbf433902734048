//! The per-layer key/value cache of the reference (unbounded; sliding layers mask instead of
//! evicting, as HF's DynamicCache does).

/// Keys and values of one layer: `len()` positions of `width = nkv * head_dim` values each,
/// keys already rotated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerCache {
    /// Rotated keys, position-major.
    pub keys: Vec<f32>,
    /// Values, position-major.
    pub values: Vec<f32>,
    /// Values per position.
    pub width: usize,
}

impl LayerCache {
    /// An empty cache for rows of `width` values.
    pub fn new(width: usize) -> Self {
        LayerCache { keys: Vec::new(), values: Vec::new(), width }
    }

    /// Cached positions.
    pub fn len(&self) -> usize {
        self.keys.len() / self.width.max(1)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// One [`LayerCache`] per decoder layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KvCache {
    /// Layer caches in layer order.
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    /// Positions processed so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    /// Whether no token was processed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

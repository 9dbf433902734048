//! Device tensors: a spec (shape, dtype, page layout, memory config) and the buffer behind it.

use super::dtype::{DType, PageLayout};
use super::pages::PageFormat;
use super::placement::Placement;
use std::sync::Arc;
use ttsan_events::{CoreRange, Role, Space};

/// Where a tensor's pages go (`ttnn.MemoryConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryConfig {
    /// `ttnn.DRAM_MEMORY_CONFIG`: pages round-robin over the DRAM banks.
    DramInterleaved,
    /// `ttnn.L1_MEMORY_CONFIG`: pages round-robin over the L1 banks (one per compute core).
    L1Interleaved,
    /// HEIGHT_SHARDED in L1: consecutive page rows fill one core after another, row-major over
    /// `cores`. The page rows must divide evenly over the cores.
    L1HeightSharded {
        /// The shard grid.
        cores: CoreRange,
    },
}

impl MemoryConfig {
    /// The memory space.
    pub fn space(&self) -> Space {
        match self {
            MemoryConfig::DramInterleaved => Space::Dram,
            _ => Space::L1,
        }
    }
}

/// What a tensor looks like on each chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Logical shape on one chip.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Tile or row-major pages.
    pub layout: PageLayout,
    /// Memory placement.
    pub memory: MemoryConfig,
}

impl TensorSpec {
    /// A tiled DRAM-interleaved tensor.
    pub fn new(shape: &[usize], dtype: DType) -> Self {
        TensorSpec { shape: shape.to_vec(), dtype, layout: PageLayout::Tile, memory: MemoryConfig::DramInterleaved }
    }

    /// The same with row-major pages.
    pub fn row_major(mut self) -> Self {
        self.layout = PageLayout::RowMajor;
        self
    }

    /// The same with tile pages.
    pub fn tile(mut self) -> Self {
        self.layout = PageLayout::Tile;
        self
    }

    /// The same in another memory config.
    pub fn memory(mut self, memory: MemoryConfig) -> Self {
        self.memory = memory;
        self
    }

    /// The same, L1-interleaved.
    pub fn l1(self) -> Self {
        self.memory(MemoryConfig::L1Interleaved)
    }

    /// The same with another shape.
    pub fn with_shape(mut self, shape: &[usize]) -> Self {
        self.shape = shape.to_vec();
        self
    }

    /// The same with another element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// How its values map to pages.
    pub fn format(&self) -> PageFormat {
        PageFormat::new(&self.shape, self.dtype, self.layout)
    }
}

/// How a host tensor is spread over the chips of a mesh (ttnn's mesh mappers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distribution {
    /// Every chip gets the whole tensor (`ReplicateTensorToMesh`).
    Replicate,
    /// Split `dim` over mesh `axis` (0: down the rows, 1: along the columns) and replicate over
    /// the other axis (`ShardTensor2dMesh` with one `None`).
    Shard {
        /// Mesh axis.
        axis: usize,
        /// Tensor dim.
        dim: usize,
    },
    /// Split over all chips in device-id order (`ShardTensorToMesh`).
    ShardAll {
        /// Tensor dim.
        dim: usize,
    },
    /// Split one dim over the rows and another over the columns (`ShardTensor2dMesh`).
    Shard2d {
        /// Tensor dim split over mesh rows, if any.
        rows: Option<usize>,
        /// Tensor dim split over mesh columns, if any.
        cols: Option<usize>,
    },
}

/// A tensor on the mesh: the same buffer address on every chip, possibly different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) role: Role,
    pub(crate) spec: TensorSpec,
    pub(crate) placement: Arc<Placement>,
}

impl Tensor {
    /// The buffer id (as in the trace).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The buffer name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The buffer role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The spec.
    pub fn spec(&self) -> &TensorSpec {
        &self.spec
    }

    /// Shape on one chip.
    pub fn shape(&self) -> &[usize] {
        &self.spec.shape
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.spec.dtype
    }

    /// Page layout.
    pub fn layout(&self) -> PageLayout {
        self.spec.layout
    }

    /// Memory space.
    pub fn space(&self) -> Space {
        self.placement.space
    }

    /// Bank-local address, the same on every chip.
    pub fn address(&self) -> u64 {
        self.placement.address
    }

    /// Where its pages are.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }
}

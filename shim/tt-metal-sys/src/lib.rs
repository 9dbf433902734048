//! Run-time bindings to the real tt-metal (the `ttnn==0.81.1` wheel) in mock mode.
//!
//! Nothing links against `libtt_metal.so`: the library is `dlopen`ed from a runtime root (the
//! unpacked wheel, see [`RuntimeRoot`]) when a mesh is opened, so this crate builds and its
//! callers run on machines without it. The C++ glue in `cpp/glue.cpp` holds the unavoidable
//! C++ (shared_ptr, variant, optional, exceptions) and turns every exception into an error code.
//!
//! ```no_run
//! use tt_metal_sys::{Arch, BufferKind, MockMesh, RuntimeRoot};
//! let root = RuntimeRoot::locate(None);
//! let mut mesh = MockMesh::open(&root, Arch::WormholeB0, 1)?;
//! let buf = mesh.allocate(BufferKind::Dram, 128 * 1024, 2048)?;
//! assert_eq!(buf.address(), 0x100040);
//! mesh.free(buf)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;
#[allow(missing_docs)]
mod ffi;
mod mesh;
mod process;
mod root;
mod stdout;
mod types;

pub use error::{AllocError, TtError};
pub use mesh::{MeshBufferHandle, MockMesh};
pub use root::{RuntimeRoot, ROOT_ENV, SUPPORTED_VERSION, SUPPORTED_VERSIONS};
pub use stdout::divert_library_stdout;
pub use ttnn_wheel::metadata_version;
pub use types::{AllocatorFacts, Arch, BufferInfo, BufferKind, MeshInfo, OpenOptions, RunMode, SpaceFacts};

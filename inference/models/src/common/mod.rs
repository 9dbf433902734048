//! What every model on the simulated mesh needs, whatever its architecture: comparing outputs
//! (PCC), `.npy` files for tensors, a seeded RNG for inputs and weights, and the host-to-mesh
//! upload helpers the device code places weights with.

pub mod error;
pub mod npy;
pub mod pcc;
pub mod rng;
pub mod upload;

pub use error::CommonError;

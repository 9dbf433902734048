//! Why a graph capture cannot be imported.

use thiserror::Error;

/// A capture that cannot be turned into a trace. Everything recoverable (unknown node types,
/// frees of unknown buffers) is a warning instead.
#[derive(Debug, Error)]
pub enum ImportError {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not shaped like a graph capture.
    #[error("not a ttnn graph capture: {0}")]
    Shape(String),
    /// A node lacks a parameter the import cannot do without.
    #[error("node {counter} ({node_type}): missing parameter `{param}`")]
    MissingParam {
        /// The node's counter.
        counter: u64,
        /// Its type.
        node_type: String,
        /// The parameter.
        param: &'static str,
    },
    /// A parameter whose value cannot be understood.
    #[error("node {counter} ({node_type}): parameter `{param}`: {reason}")]
    BadParam {
        /// The node's counter.
        counter: u64,
        /// Its type.
        node_type: String,
        /// The parameter.
        param: &'static str,
        /// What is wrong.
        reason: String,
    },
}

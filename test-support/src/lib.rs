//! Traces built without hardware, for the tests, benchmarks and examples of every ttsan crate:
//! [`fixtures`], one small hand-built trace per finding kind (the golden reports' inputs) and
//! the [`fixtures::TraceBuilder`] they are made with, and [`synth`], synthetic traces at any
//! size; [`events`], the records they are built from, with the fields every caller leaves at
//! its default filled in once.
//!
//! A crate of its own, used only as a dev-dependency (and by examples), so that test scaffolding
//! is no part of any library's public API.
#![deny(missing_docs)]

pub mod events;
pub mod fixtures;
pub mod synth;

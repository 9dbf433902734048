//! `libttsan_preload.so`: an `LD_PRELOAD` shim that records what the real `libtt_metal.so`
//! allocates into a ttsan trace.
//!
//! It interposes `BufferImpl::allocate_impl` and `BufferImpl::deallocate_impl` (every buffer the
//! device allocator places: mesh backing buffers and device-local buffers of every type), reads
//! each buffer through tt-metal's exported const accessors, and records `BufferAlloc` /
//! `BufferFree` with a native backtrace. Programs mark ops and guards through a tiny C ABI
//! ([`cabi`]); guarded buffers are read back and digested at the end of every top-level op.
//!
//! Ops come from tt-metal itself: the shim registers its own `IGraphProcessor` with
//! `GraphTracker` (the `processor` module), built on the interface's vtable as the loaded
//! library lays it out (the `vtable` module finds each method's slot by name and refuses a
//! layout it cannot confirm). Every ttnn op, C++ or Python, in fast runtime mode or not, and the
//! device operations nested in it reach it, with circular buffers and programs. Programs can
//! also mark ops themselves through the C ABI.
//!
//! Events go from the calling thread, in the order tt-metal's allocator saw them, to one writer
//! thread that encodes and appends them to `$TTSAN_TRACE`. The trace is flushed at exit and on
//! SIGINT, SIGTERM, SIGABRT, SIGSEGV and SIGBUS, so a crashed run still leaves a readable trace.
//! A forked child stops recording (its parent's trace stays consistent); an exec'd child that
//! uses tt-metal writes its own `$TTSAN_TRACE.<pid>`.
//!
//! What the wrapper (`ttsan run`) and the shim agree on, the environment variables, status lines,
//! guard selection and sampling, is the `ttsan-preload-protocol` crate; the wrapper links that,
//! never this crate.
//!
//! Nothing here may unwind into the traced program: every exported function catches panics, and
//! tt-metal's own exceptions (an out-of-memory from the allocator) pass through untouched.
#![deny(missing_docs)]

pub mod cabi;
mod config;
mod digest;
mod geometry;
mod interpose;
mod lifecycle;
mod lock;
mod names;
mod processor;
mod reentry;
mod signals;
mod stack;
mod state;
mod status;
mod symbols;
mod tt;
mod vtable;
mod writer;

// Storage for the shim's per-thread state (`ThreadState` in src/reentry.rs), in the
// initial-exec TLS model. Rust offers only the general-dynamic model in a shared library, where
// every access calls __tls_get_addr; tt-metal reaches the shim's per-thread state about ten
// times per allocate/free pair (the re-entrancy flag of each interposed call, the graph
// processor's registration check in every GraphTracker::instance()), and those calls were a
// measurable share of the shim's time. Initial-exec TLS is a fixed offset from the thread
// pointer; the shim is preloaded, so it is loaded with the program and its TLS is static.
// The block starts zeroed, which is the Rust state's initial value.
#include <cstddef>

alignas(16) static __thread unsigned char ttsan_thread_block[64] __attribute__((tls_model("initial-exec")));

extern "C" void* ttsan_preload_thread_block() { return ttsan_thread_block; }

//! Compiles the shim's C++: try/catch wrappers around the tt-metal calls that may throw (buffer
//! reads, pushing the graph processor), so a C++ exception never unwinds into Rust, and the
//! libstdc++ `shared_ptr` the processor is handed over in; and the per-thread state's storage in the
//! initial-exec TLS model (cpp/thread.cpp).

fn main() {
    for f in ["cpp/read.cpp", "cpp/processor.cpp", "cpp/thread.cpp", "cpp/guarded.hpp"] {
        println!("cargo:rerun-if-changed={f}");
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("cpp/read.cpp")
        .file("cpp/processor.cpp")
        .file("cpp/thread.cpp")
        .compile("ttsan_preload_cpp");
}

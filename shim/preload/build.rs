//! Compiles the one piece of C++ the shim needs: a try/catch around tt-metal's buffer read, so a
//! C++ exception never unwinds into Rust.

fn main() {
    println!("cargo:rerun-if-changed=cpp/read.cpp");
    cc::Build::new().cpp(true).std("c++17").file("cpp/read.cpp").compile("ttsan_preload_read");
}

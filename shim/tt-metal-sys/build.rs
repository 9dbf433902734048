//! Compiles the C++ glue. It only declares tt-metal's types and reaches its functions through
//! dlsym, so nothing here needs tt-metal to be present.

fn main() {
    println!("cargo:rerun-if-changed=cpp/glue.cpp");
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file("cpp/glue.cpp")
        .flag_if_supported("-Wno-unused-parameter")
        .compile("ttsan_tt_glue");
    // dlopen/dlsym live in libc on glibc >= 2.34 but in libdl before; naming it is harmless.
    println!("cargo:rustc-link-lib=dl");
}

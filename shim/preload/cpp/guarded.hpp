// Runs a call into tt-metal and turns every C++ exception into a return code and a message:
// nothing may unwind into the shim's Rust code.
#pragma once
#include <cstddef>
#include <cstdio>
#include <exception>

template <class F>
int ttsan_guarded(char* err, std::size_t err_len, F&& f) {
    try {
        f();
        return 0;
    } catch (const std::exception& e) {
        if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "%s", e.what());
        return 1;
    } catch (...) {
        if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "unknown C++ exception");
        return 1;
    }
}

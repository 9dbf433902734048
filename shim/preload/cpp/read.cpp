// Calls tt-metal's buffer read through a pointer the shim resolved with dlsym, catching every C++
// exception: the read is the only tt-metal call the shim makes that may throw, and an exception
// unwinding into Rust would abort the traced program.
#include <cstdint>
#include <cstdio>
#include <exception>

extern "C" int ttsan_preload_read_buffer(void (*read)(void*, std::uint8_t*), void* buffer, std::uint8_t* out,
                                         char* err, std::size_t err_len) {
    try {
        read(buffer, out);
        return 0;
    } catch (const std::exception& e) {
        if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "%s", e.what());
        return 1;
    } catch (...) {
        if (err != nullptr && err_len > 0) std::snprintf(err, err_len, "unknown C++ exception");
        return 1;
    }
}

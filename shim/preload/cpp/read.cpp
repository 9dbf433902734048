// Calls tt-metal's buffer reads through pointers the shim resolved with dlsym, catching every C++
// exception: an exception unwinding into Rust would abort the traced program.
#include <cstdint>

#include "guarded.hpp"

extern "C" int ttsan_preload_read_buffer(void (*read)(void*, std::uint8_t*), void* buffer, std::uint8_t* out,
                                         char* err, std::size_t err_len) {
    return ttsan_guarded(err, err_len, [&] { read(buffer, out); });
}

// One chip's Buffer of a mesh buffer: MeshBuffer::get_device_buffer(MeshCoordinate const&). The
// coordinate is built by the library's own constructor MeshCoordinate(uint32_t, uint32_t) in
// storage larger than the class (its size is in no header the wheel ships); a two-dimensional
// coordinate keeps its values inline, so nothing is left to destroy.
extern "C" int ttsan_preload_device_buffer(void (*coord)(void*, std::uint32_t, std::uint32_t),
                                           void* (*get)(const void*, const void*), const void* mesh_buffer,
                                           std::uint32_t row, std::uint32_t col, void** out, char* err,
                                           std::size_t err_len) {
    return ttsan_guarded(err, err_len, [&] {
        alignas(16) unsigned char storage[256] = {};
        coord(storage, row, col);
        *out = get(mesh_buffer, storage);
    });
}

// distributed::Synchronize(MeshDevice*, std::optional<uint8_t> cq_id, std::span<const SubDeviceId>):
// every command queue, every sub-device. The empty optional travels as two zero bytes in one
// register, the empty span as a null pointer and a zero length.
extern "C" int ttsan_preload_synchronize(void (*sync)(void*, std::uint16_t, const void*, std::size_t),
                                         void* mesh_device, char* err, std::size_t err_len) {
    return ttsan_guarded(err, err_len, [&] { sync(mesh_device, 0, nullptr, 0); });
}

// Hands the shim's graph processor to tt-metal as the std::shared_ptr<IGraphProcessor> that
// GraphTracker::push_processor takes. The object (a vtable pointer the Rust side laid out) is
// static, so the shared_ptr owns nothing: its deleter does nothing, and one shared_ptr serves
// every thread (GraphTracker's processor list is thread-local in ttnn 0.81.1). The shared_ptr
// must be libstdc++'s own, which is why this is C++: tt-metal copies it with libstdc++'s atomic
// reference counting. push_processor may throw (it grows a std::vector); nothing may unwind into
// Rust, so every exception is caught and reported.
#include <memory>

#include "guarded.hpp"

namespace {
std::shared_ptr<void>& processor(void* object) {
    // Thread-safe static initialisation; never destroyed, so late pushes at exit stay valid.
    static auto* p = new std::shared_ptr<void>(object, [](void*) {});
    return *p;
}
}  // namespace

extern "C" int ttsan_preload_push_processor(void* tracker, void (*push)(void*, const void*), void* object, char* err,
                                            std::size_t err_len) {
    return ttsan_guarded(err, err_len, [&] { push(tracker, &processor(object)); });
}

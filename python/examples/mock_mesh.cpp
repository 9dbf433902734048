// The example tests' device: a small C ABI over the real libtt_metal.so (ttnn 0.81.1) in mock mode,
// loaded with ctypes (python/examples/conftest.py compiles it). Hand-written declarations as in
// tests/cpp/preload_prog.cpp (the wheel ships no host-API headers); layouts as of ttnn 0.81.1.
//
//   int      mm_open(void);                        one Wormhole chip (create_unit_mesh); 0 on success
//   void     mm_close(void);
//   void*    mm_alloc(uint64_t size, uint64_t page_size, int buffer_type)   a mesh buffer (handle)
//   void     mm_free(void* handle);
//   void*    mm_backing(void* handle);             its tt::tt_metal::Buffer* (for ttsan.guard)
//   uint64_t mm_address(void* handle);             its bank-local address
//   void     mm_place_cb(uint64_t address, uint64_t size);   a program's static CB on cores (0,0)-(3,1)
//   void     mm_release_cbs(void);                 the program's CBs are released
//
// Errors (tt-metal throws C++ exceptions) become return values and a message from mm_error().
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace tt {
enum class ARCH { WORMHOLE_B0 = 2, BLACKHOLE = 3, QUASAR = 4, Invalid = 0xFF };
}
namespace tt::tt_metal {
enum class BufferType { DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE };
enum class DispatchCoreType : uint32_t { WORKER, ETH, COUNT };
enum class DispatchCoreAxis { ROW, COL, COUNT };
class DispatchCoreConfig { public: DispatchCoreType type_ = DispatchCoreType::WORKER; std::optional<DispatchCoreAxis> axis_; };
class BufferShardingArgs { public: BufferShardingArgs(); ~BufferShardingArgs(); private: alignas(8) unsigned char opaque_[8]; };
class Buffer { public: uint32_t address() const; };
namespace experimental { void configure_mock_mode(tt::ARCH, unsigned int); }
class IDevice;
struct CoreRange { size_t x0, y0, x1, y1; };
// The real layout (core_coord.hpp: one std::vector<CoreRange>).
class CoreRangeSet { public: CoreRangeSet(const CoreRange&); private: std::vector<CoreRange> ranges_; };
class GraphTracker {
 public:
  static GraphTracker& instance();
  void track_allocate_cb(const CoreRangeSet&, unsigned long, unsigned long, bool, const IDevice*);
  void track_deallocate_cb(const IDevice*);
};
namespace distributed {
struct ReplicatedBufferConfig; struct ShardedBufferConfig; struct DeviceLocalBufferConfig;
class MeshDevice {
 public:
  static std::shared_ptr<MeshDevice> create_unit_mesh(int, unsigned long, unsigned long, unsigned long,
      const DispatchCoreConfig&, std::span<const unsigned int>, unsigned long);
  bool close();
};
class MeshBuffer { public:
  static std::shared_ptr<MeshBuffer> create(const std::variant<ReplicatedBufferConfig, ShardedBufferConfig>&,
      const DeviceLocalBufferConfig&, MeshDevice*, std::optional<unsigned long>);
  Buffer* get_backing_buffer() const; void deallocate(); };
}}
using namespace tt::tt_metal;
using namespace tt::tt_metal::distributed;

namespace {
std::shared_ptr<MeshDevice> mesh;
std::string last_error;
struct alignas(16) Blob { unsigned char b[1024]; };
struct Handle { std::shared_ptr<MeshBuffer> buffer; };

template <typename F>
bool guarded(F f) {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return false;
}
}  // namespace

extern "C" {
const char* mm_error() { return last_error.c_str(); }

int mm_open() {
  if (mesh) return 0;
  bool ok = guarded([] {
    tt::tt_metal::experimental::configure_mock_mode(tt::ARCH::WORMHOLE_B0, 1);
    DispatchCoreConfig dcc;
    mesh = MeshDevice::create_unit_mesh(0, 0, 0, 1, dcc, {}, 0);
  });
  return ok && mesh ? 0 : -1;
}

void mm_close() {
  if (!mesh) return;
  guarded([] { mesh->close(); });
  mesh.reset();
}

// A replicated mesh buffer: the config variant is a zeroed blob with the size at offset 0
// (ReplicatedBufferConfig{size}); DeviceLocalBufferConfig holds the page size at 0, the buffer
// type at 8 and a BufferShardingArgs built by its own constructor at 16.
void* mm_alloc(uint64_t size, uint64_t page_size, int buffer_type) {
  if (!mesh) { last_error = "mm_open was not called"; return nullptr; }
  Handle* h = nullptr;
  guarded([&] {
    Blob cfg, local;
    memset(&cfg, 0, sizeof cfg); memset(&local, 0, sizeof local);
    BufferType t = static_cast<BufferType>(buffer_type);
    memcpy(cfg.b, &size, 8); memcpy(local.b, &page_size, 8); memcpy(local.b + 8, &t, sizeof t);
    new (local.b + 16) BufferShardingArgs();
    auto b = MeshBuffer::create(*reinterpret_cast<const std::variant<ReplicatedBufferConfig, ShardedBufferConfig>*>(&cfg),
                                *reinterpret_cast<const DeviceLocalBufferConfig*>(&local), mesh.get(), std::nullopt);
    h = new Handle{b};
  });
  return h;
}

void mm_free(void* handle) {
  Handle* h = static_cast<Handle*>(handle);
  if (!h) return;
  guarded([&] { h->buffer->deallocate(); });
  delete h;
}

void* mm_backing(void* handle) {
  Handle* h = static_cast<Handle*>(handle);
  return h ? h->buffer->get_backing_buffer() : nullptr;
}

uint64_t mm_address(void* handle) {
  Handle* h = static_cast<Handle*>(handle);
  return h ? h->buffer->get_backing_buffer()->address() : 0;
}

// What tt-metal does when a program's static circular buffers are placed: it reports them to the
// graph tracker (GraphTracker::track_allocate_cb), which fans them out to every processor.
int mm_place_cb(uint64_t address, uint64_t size) {
  if (!mesh) { last_error = "mm_open was not called"; return -1; }
  return guarded([&] {
    CoreRangeSet cores(CoreRange{0, 0, 3, 1});
    GraphTracker::instance().track_allocate_cb(cores, address, size, false,
                                               reinterpret_cast<const IDevice*>(mesh.get()));
  }) ? 0 : -1;
}

void mm_release_cbs() {
  if (!mesh) return;
  guarded([] { GraphTracker::instance().track_deallocate_cb(reinterpret_cast<const IDevice*>(mesh.get())); });
}
}

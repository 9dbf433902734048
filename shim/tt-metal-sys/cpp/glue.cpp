// C ABI glue between Rust and the C++ API of tt-metal (ttnn 0.81.1), resolved at run time.
//
// The wheel ships no host-API headers, so the few types we touch are declared by hand with the
// layouts of 0.81.1 (see shared/reference/tt-metal-mock-mode.md). Nothing here links against
// libtt_metal: every tt-metal function is reached through a pointer obtained with dlsym, so the
// crate builds and its callers run on machines without the library. Every entry point catches
// all C++ exceptions: unwinding into Rust would be undefined behaviour.

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace tt {
enum class ARCH { WORMHOLE_B0 = 2, BLACKHOLE = 3, QUASAR = 4, Invalid = 0xFF };
struct xy_pair {
    std::size_t x;
    std::size_t y;
};
}  // namespace tt

namespace tt::tt_metal {
enum class BufferType { DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE };
enum class HalMemType : std::uint8_t { L1 = 0, DRAM = 1, HOST = 2 };
enum class DispatchCoreType : std::uint32_t { WORKER, ETH, COUNT };
enum class DispatchCoreAxis { ROW, COL, COUNT };
class DispatchCoreConfig {
public:
    DispatchCoreType type_ = DispatchCoreType::WORKER;
    std::optional<DispatchCoreAxis> axis_;
};
class Buffer;
class Allocator;
struct IGraphProcessor {
    enum class RunMode { NORMAL, NO_DISPATCH };
};
namespace distributed {
class MeshDevice;
class MeshBuffer;
struct ReplicatedBufferConfig;
struct ShardedBufferConfig;
struct DeviceLocalBufferConfig;
class MeshShape;
class MeshCoordinate;
}  // namespace distributed
}  // namespace tt::tt_metal

using namespace tt::tt_metal;
using namespace tt::tt_metal::distributed;

namespace {

// nlohmann::json is returned by value (16 bytes). The user-provided destructor makes the type
// non-trivial so the call uses a hidden return pointer exactly like the real one; the value is
// leaked on purpose because its real destructor is not exported.
struct OpaqueJson {
    alignas(8) unsigned char bytes[16];
    ~OpaqueJson() {}
};

// Oversized zero-filled storage for configs whose full layout we do not declare: every optional
// and variant index defaults to 0 (nullopt / first alternative / INTERLEAVED).
struct alignas(16) Blob {
    unsigned char bytes[1024];
};

using MeshPtr = std::shared_ptr<MeshDevice>;
using BufPtr = std::shared_ptr<MeshBuffer>;
using MeshBufferConfig = std::variant<ReplicatedBufferConfig, ShardedBufferConfig>;

struct Api {
    void (*configure_mock_mode)(tt::ARCH, unsigned int);
    MeshPtr (*create_unit_mesh)(int, unsigned long, unsigned long, unsigned long, const DispatchCoreConfig&,
                                std::span<const unsigned int>, unsigned long);
    MeshPtr (*open_mesh_device)(unsigned long, unsigned long, unsigned long, const DispatchCoreConfig&,
                                const std::optional<MeshShape>&, const std::optional<MeshCoordinate>&,
                                const std::vector<int>&, unsigned long);
    void (*close_mesh_device)(const MeshPtr&);
    bool (*mesh_close)(MeshDevice*);
    std::size_t (*mesh_num_devices)(const MeshDevice*);
    std::size_t (*mesh_num_rows)(const MeshDevice*);
    std::size_t (*mesh_num_cols)(const MeshDevice*);
    std::vector<int> (*mesh_device_ids)(const MeshDevice*);
    const std::unique_ptr<Allocator>& (*mesh_allocator)(const MeshDevice*);

    void (*sharding_args_ctor)(void*);
    void (*sharding_args_dtor)(void*);
    BufPtr (*buffer_create)(const MeshBufferConfig&, const DeviceLocalBufferConfig&, MeshDevice*,
                            std::optional<unsigned long>);
    void (*buffer_deallocate)(MeshBuffer*);
    Buffer* (*backing_buffer)(const MeshBuffer*);

    std::uint32_t (*b_address)(const Buffer*);
    std::uint64_t (*b_size)(const Buffer*);
    std::uint64_t (*b_page_size)(const Buffer*);
    std::uint32_t (*b_num_pages)(const Buffer*);
    BufferType (*b_buffer_type)(const Buffer*);
    std::size_t (*b_unique_id)(const Buffer*);
    bool (*b_is_allocated)(const Buffer*);
    std::uint64_t (*b_aligned_size_per_bank)(const Buffer*);
    std::uint64_t (*b_aligned_page_size)(const Buffer*);
    std::uint32_t (*b_alignment)(const Buffer*);

    std::uint32_t (*a_num_banks)(const Allocator*, const BufferType&);
    std::uint64_t (*a_bank_size)(const Allocator*, const BufferType&);
    std::uint32_t (*a_alignment)(const Allocator*, BufferType);
    std::int32_t (*a_bank_offset)(const Allocator*, BufferType, std::uint32_t);
    std::uint64_t (*a_base_addr)(const Allocator*, const HalMemType&);
    tt::xy_pair (*a_core_of_bank)(const Allocator*, std::uint32_t);
    std::size_t (*a_worker_l1_size)(const Allocator*);

    void (*begin_graph_capture)(IGraphProcessor::RunMode);
    OpaqueJson (*end_graph_capture_to_file)(const std::filesystem::path&);

    // Optional: only the doctor's planted write needs them.
    void (*coord_ctor)(void*, std::uint32_t, std::uint32_t);
    Buffer* (*device_buffer)(const MeshBuffer*, const void*);
    void* (*b_device)(const Buffer*);
    void (*write_dram)(void*, int, unsigned int, std::span<const unsigned char>);
};

Api api;
bool loaded = false;

struct MeshHandle {
    MeshPtr mesh;
    bool unit;
};

void put_error(char* err, std::size_t len, const char* msg) {
    if (err == nullptr || len == 0) return;
    std::snprintf(err, len, "%s", msg);
}

template <typename F>
int guarded(char* err, std::size_t len, F&& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        put_error(err, len, e.what());
        return 1;
    } catch (...) {
        put_error(err, len, "unknown C++ exception from tt-metal");
        return 1;
    }
}

template <typename T>
bool resolve(void* lib, const char* name, T& slot, std::string& missing) {
    void* sym = dlsym(lib, name);
    if (sym == nullptr) {
        if (!missing.empty()) missing += ", ";
        missing += name;
        return false;
    }
    slot = reinterpret_cast<T>(sym);
    return true;
}

BufferType to_buffer_type(int t) { return static_cast<BufferType>(t); }

const Allocator* allocator_of(MeshHandle* h) { return api.mesh_allocator(h->mesh.get()).get(); }

}  // namespace

extern "C" {

// Error codes shared with src/ffi.rs.
// 0 ok; 1 C++ exception (message in err); 2 library or symbol problem; 3 bad argument.

int ttsan_tt_load(const char* metal_path, const char* ttnn_path, char* err, std::size_t err_len) {
    if (loaded) return 0;
    void* metal = dlopen(metal_path, RTLD_NOW | RTLD_GLOBAL);
    if (metal == nullptr) {
        put_error(err, err_len, dlerror());
        return 2;
    }
    void* ttnn = dlopen(ttnn_path, RTLD_NOW | RTLD_GLOBAL);
    if (ttnn == nullptr) {
        put_error(err, err_len, dlerror());
        return 2;
    }
    std::string missing;
    // Called as (resolve)(...) to suppress argument-dependent lookup: ADL would instantiate
    // std::optional/std::variant of the incomplete tt-metal types in the pointer signatures.
    Api a{};
    (resolve)(metal, "_ZN2tt8tt_metal12experimental19configure_mock_modeENS_4ARCHEj", a.configure_mock_mode, missing);
    (resolve)(metal,
            "_ZN2tt8tt_metal11distributed10MeshDevice16create_unit_meshEimmmRKNS0_18DispatchCoreConfigESt4spanIKjLm18446744073709551615EEm",
            a.create_unit_mesh, missing);
    (resolve)(ttnn,
            "_ZN4ttnn11distributed16open_mesh_deviceEmmmRKN2tt8tt_metal18DispatchCoreConfigERKSt8optionalINS2_11distributed9MeshShapeEERKS6_INS7_14MeshCoordinateEERKSt6vectorIiSaIiEEm",
            a.open_mesh_device, missing);
    (resolve)(ttnn, "_ZN4ttnn11distributed17close_mesh_deviceERKSt10shared_ptrIN2tt8tt_metal11distributed10MeshDeviceEE",
            a.close_mesh_device, missing);
    (resolve)(metal, "_ZN2tt8tt_metal11distributed10MeshDevice5closeEv", a.mesh_close, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal11distributed10MeshDevice11num_devicesEv", a.mesh_num_devices, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal11distributed10MeshDevice8num_rowsEv", a.mesh_num_rows, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal11distributed10MeshDevice8num_colsEv", a.mesh_num_cols, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal11distributed10MeshDevice14get_device_idsEv", a.mesh_device_ids, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal11distributed10MeshDevice9allocatorEv", a.mesh_allocator, missing);
    (resolve)(metal, "_ZN2tt8tt_metal18BufferShardingArgsC1Ev", a.sharding_args_ctor, missing);
    (resolve)(metal, "_ZN2tt8tt_metal18BufferShardingArgsD1Ev", a.sharding_args_dtor, missing);
    (resolve)(metal,
            "_ZN2tt8tt_metal11distributed10MeshBuffer6createERKSt7variantIJNS1_22ReplicatedBufferConfigENS1_19ShardedBufferConfigEEERKNS1_23DeviceLocalBufferConfigEPNS1_10MeshDeviceESt8optionalImE",
            a.buffer_create, missing);
    (resolve)(metal, "_ZN2tt8tt_metal11distributed10MeshBuffer10deallocateEv", a.buffer_deallocate, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal11distributed10MeshBuffer18get_backing_bufferEv", a.backing_buffer, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer7addressEv", a.b_address, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer4sizeEv", a.b_size, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer9page_sizeEv", a.b_page_size, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer9num_pagesEv", a.b_num_pages, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer11buffer_typeEv", a.b_buffer_type, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer9unique_idEv", a.b_unique_id, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer12is_allocatedEv", a.b_is_allocated, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer21aligned_size_per_bankEv", a.b_aligned_size_per_bank, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer17aligned_page_sizeEv", a.b_aligned_page_size, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer9alignmentEv", a.b_alignment, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal9Allocator13get_num_banksERKNS0_10BufferTypeE", a.a_num_banks, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal9Allocator13get_bank_sizeERKNS0_10BufferTypeE", a.a_bank_size, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal9Allocator13get_alignmentENS0_10BufferTypeE", a.a_alignment, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal9Allocator15get_bank_offsetENS0_10BufferTypeEj", a.a_bank_offset, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal9Allocator23get_base_allocator_addrERKNS0_10HalMemTypeE", a.a_base_addr, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal9Allocator29get_logical_core_from_bank_idEj", a.a_core_of_bank, missing);
    (resolve)(metal, "_ZNK2tt8tt_metal9Allocator18get_worker_l1_sizeEv", a.a_worker_l1_size, missing);
    (resolve)(ttnn, "_ZN4ttnn5graph14GraphProcessor19begin_graph_captureEN2tt8tt_metal15IGraphProcessor7RunModeE",
            a.begin_graph_capture, missing);
    (resolve)(ttnn, "_ZN4ttnn5graph14GraphProcessor25end_graph_capture_to_fileERKNSt10filesystem7__cxx114pathE",
            a.end_graph_capture_to_file, missing);
    std::string optional_missing;
    (resolve)(metal, "_ZN2tt8tt_metal11distributed14MeshCoordinateC1Ejj", a.coord_ctor, optional_missing);
    (resolve)(metal, "_ZNK2tt8tt_metal11distributed10MeshBuffer17get_device_bufferERKNS1_14MeshCoordinateE",
              a.device_buffer, optional_missing);
    (resolve)(metal, "_ZNK2tt8tt_metal6Buffer6deviceEv", a.b_device, optional_missing);
    (resolve)(metal, "_ZN2tt8tt_metal6detail24WriteToDeviceDRAMChannelEPNS0_7IDeviceEijSt4spanIKhLm18446744073709551615EE",
              a.write_dram, optional_missing);
    if (!missing.empty()) {
        std::string msg = "symbols missing from tt-metal: " + missing;
        put_error(err, err_len, msg.c_str());
        return 2;
    }
    api = a;
    loaded = true;
    return 0;
}

int ttsan_tt_configure_mock(int arch, std::uint32_t chips, char* err, std::size_t err_len) {
    if (!loaded) return 2;
    return guarded(err, err_len, [&] {
        api.configure_mock_mode(static_cast<tt::ARCH>(arch), chips);
        return 0;
    });
}

int ttsan_tt_open(std::uint32_t chips, std::uint64_t l1_small_size, std::uint64_t trace_region_size, void** out,
                  char* err, std::size_t err_len) {
    if (!loaded) return 2;
    return guarded(err, err_len, [&] {
        DispatchCoreConfig dcc;
        auto* handle = new MeshHandle{};
        if (chips == 1) {
            handle->mesh = api.create_unit_mesh(0, l1_small_size, trace_region_size, 1, dcc, {}, 0);
            handle->unit = true;
        } else {
            static Blob no_shape, no_coord;
            std::memset(&no_shape, 0, sizeof no_shape);
            std::memset(&no_coord, 0, sizeof no_coord);
            handle->mesh = api.open_mesh_device(
                l1_small_size, trace_region_size, 1, dcc, *reinterpret_cast<const std::optional<MeshShape>*>(&no_shape),
                *reinterpret_cast<const std::optional<MeshCoordinate>*>(&no_coord), {}, 0);
            handle->unit = false;
        }
        if (!handle->mesh) {
            delete handle;
            put_error(err, err_len, "tt-metal returned no mesh device");
            return 1;
        }
        *out = handle;
        return 0;
    });
}

void* ttsan_tt_mesh_device(void* mesh) { return mesh == nullptr ? nullptr : static_cast<MeshHandle*>(mesh)->mesh.get(); }

int ttsan_tt_close(void* mesh, char* err, std::size_t err_len) {
    auto* h = static_cast<MeshHandle*>(mesh);
    if (h == nullptr) return 3;
    int rc = guarded(err, err_len, [&] {
        if (h->unit) {
            api.mesh_close(h->mesh.get());
        } else {
            api.close_mesh_device(h->mesh);
        }
        h->mesh.reset();
        return 0;
    });
    delete h;
    return rc;
}

struct TtMeshInfo {
    std::uint32_t num_devices;
    std::uint32_t rows;
    std::uint32_t cols;
};

int ttsan_tt_mesh_info(void* mesh, TtMeshInfo* out, std::int32_t* ids, std::uint32_t ids_cap, char* err,
                       std::size_t err_len) {
    auto* h = static_cast<MeshHandle*>(mesh);
    if (h == nullptr || out == nullptr) return 3;
    return guarded(err, err_len, [&] {
        MeshDevice* m = h->mesh.get();
        out->num_devices = static_cast<std::uint32_t>(api.mesh_num_devices(m));
        out->rows = static_cast<std::uint32_t>(api.mesh_num_rows(m));
        out->cols = static_cast<std::uint32_t>(api.mesh_num_cols(m));
        std::vector<int> got = api.mesh_device_ids(m);
        for (std::size_t i = 0; i < got.size() && i < ids_cap; ++i) ids[i] = got[i];
        return 0;
    });
}

struct TtSpaceInfo {
    std::uint32_t num_banks;
    std::uint32_t alignment;
    std::uint64_t bank_size;
};

struct TtAllocatorInfo {
    TtSpaceInfo dram;
    TtSpaceInfo l1;
    TtSpaceInfo l1_small;
    TtSpaceInfo trace;
    std::uint64_t dram_base;
    std::uint64_t l1_base;
    std::uint64_t worker_l1_size;
};

int ttsan_tt_allocator_info(void* mesh, TtAllocatorInfo* out, char* err, std::size_t err_len) {
    auto* h = static_cast<MeshHandle*>(mesh);
    if (h == nullptr || out == nullptr) return 3;
    return guarded(err, err_len, [&] {
        const Allocator* a = allocator_of(h);
        auto space = [&](BufferType t) {
            TtSpaceInfo s{};
            s.num_banks = api.a_num_banks(a, t);
            s.alignment = api.a_alignment(a, t);
            s.bank_size = api.a_bank_size(a, t);
            return s;
        };
        out->dram = space(BufferType::DRAM);
        out->l1 = space(BufferType::L1);
        out->l1_small = space(BufferType::L1_SMALL);
        out->trace = space(BufferType::TRACE);
        HalMemType dram = HalMemType::DRAM, l1 = HalMemType::L1;
        out->dram_base = api.a_base_addr(a, dram);
        out->l1_base = api.a_base_addr(a, l1);
        out->worker_l1_size = api.a_worker_l1_size(a);
        return 0;
    });
}

int ttsan_tt_bank_core(void* mesh, std::uint32_t bank, std::uint64_t* x, std::uint64_t* y, char* err,
                       std::size_t err_len) {
    auto* h = static_cast<MeshHandle*>(mesh);
    if (h == nullptr) return 3;
    return guarded(err, err_len, [&] {
        tt::xy_pair c = api.a_core_of_bank(allocator_of(h), bank);
        *x = c.x;
        *y = c.y;
        return 0;
    });
}

int ttsan_tt_bank_offset(void* mesh, int buffer_type, std::uint32_t bank, std::int64_t* out, char* err,
                         std::size_t err_len) {
    auto* h = static_cast<MeshHandle*>(mesh);
    if (h == nullptr) return 3;
    return guarded(err, err_len, [&] {
        *out = api.a_bank_offset(allocator_of(h), to_buffer_type(buffer_type), bank);
        return 0;
    });
}

int ttsan_tt_alloc(void* mesh, int buffer_type, std::uint64_t size, std::uint64_t page_size, void** out, char* err,
                   std::size_t err_len) {
    auto* h = static_cast<MeshHandle*>(mesh);
    if (h == nullptr || out == nullptr) return 3;
    return guarded(err, err_len, [&] {
        static Blob cfg, local;
        std::memset(&cfg, 0, sizeof cfg);
        std::memset(&local, 0, sizeof local);
        // ReplicatedBufferConfig{size} is alternative 0 of the variant; its size is the first field.
        std::memcpy(cfg.bytes, &size, 8);
        // DeviceLocalBufferConfig: page_size at 0, buffer_type at 8, BufferShardingArgs (pimpl) at 16.
        std::memcpy(local.bytes, &page_size, 8);
        BufferType t = to_buffer_type(buffer_type);
        std::memcpy(local.bytes + 8, &t, sizeof t);
        api.sharding_args_ctor(local.bytes + 16);
        struct Cleanup {
            void* p;
            ~Cleanup() { api.sharding_args_dtor(p); }
        } cleanup{local.bytes + 16};
        BufPtr buf = api.buffer_create(*reinterpret_cast<const MeshBufferConfig*>(&cfg),
                                       *reinterpret_cast<const DeviceLocalBufferConfig*>(&local), h->mesh.get(),
                                       std::nullopt);
        if (!buf) {
            put_error(err, err_len, "tt-metal returned no buffer");
            return 1;
        }
        *out = new BufPtr(std::move(buf));
        return 0;
    });
}

struct TtBufferInfo {
    std::uint64_t address;
    std::uint64_t size;
    std::uint64_t page_size;
    std::uint64_t aligned_page_size;
    std::uint64_t aligned_size_per_bank;
    std::uint64_t unique_id;
    std::uint32_t num_pages;
    std::uint32_t alignment;
    std::int32_t buffer_type;
    std::uint8_t is_allocated;
};

int ttsan_tt_buffer_info(void* buffer, TtBufferInfo* out, char* err, std::size_t err_len) {
    auto* b = static_cast<BufPtr*>(buffer);
    if (b == nullptr || out == nullptr) return 3;
    return guarded(err, err_len, [&] {
        const Buffer* bb = api.backing_buffer(b->get());
        if (bb == nullptr) {
            put_error(err, err_len, "mesh buffer has no backing buffer");
            return 1;
        }
        out->address = api.b_address(bb);
        out->size = api.b_size(bb);
        out->page_size = api.b_page_size(bb);
        out->aligned_page_size = api.b_aligned_page_size(bb);
        out->aligned_size_per_bank = api.b_aligned_size_per_bank(bb);
        out->unique_id = api.b_unique_id(bb);
        out->num_pages = api.b_num_pages(bb);
        out->alignment = api.b_alignment(bb);
        out->buffer_type = static_cast<std::int32_t>(api.b_buffer_type(bb));
        out->is_allocated = api.b_is_allocated(bb) ? 1 : 0;
        return 0;
    });
}

// Writes `len` bytes straight into DRAM bank `bank` of chip (row, col) at the bank-local
// `address`, the way a kernel holding a stale address would: through
// detail::WriteToDeviceDRAMChannel (slow dispatch, no command queue, no buffer, no graph-tracker
// hook). The chip's IDevice is that of `via`'s copy on the chip (get_device_buffer(coord)->device());
// the DRAM channel is the bank's: one bank per channel is the default layout on Wormhole and
// Blackhole, which only hardware confirms (docs/real-hardware.md). The bank's offset is added as
// Buffer::page_address adds it.
int ttsan_tt_write_dram(void* mesh, void* via, std::uint32_t row, std::uint32_t col, std::uint32_t bank,
                        std::uint64_t address, const std::uint8_t* data, std::size_t len, char* err,
                        std::size_t err_len) {
    auto* h = static_cast<MeshHandle*>(mesh);
    auto* b = static_cast<BufPtr*>(via);
    if (h == nullptr || b == nullptr || data == nullptr) return 3;
    if (!api.coord_ctor || !api.device_buffer || !api.b_device || !api.write_dram) {
        put_error(err, err_len,
                  "this tt-metal lacks MeshBuffer::get_device_buffer, Buffer::device or WriteToDeviceDRAMChannel");
        return 1;
    }
    return guarded(err, err_len, [&] {
        alignas(16) unsigned char coord[256] = {};
        api.coord_ctor(coord, row, col);
        const Buffer* chip = api.device_buffer(b->get(), coord);
        if (chip == nullptr) {
            put_error(err, err_len, "the buffer has no copy on that chip");
            return 1;
        }
        void* device = api.b_device(chip);
        const std::int32_t offset = api.a_bank_offset(api.mesh_allocator(h->mesh.get()).get(), BufferType::DRAM, bank);
        const std::int64_t at = static_cast<std::int64_t>(address) + offset;
        if (at < 0 || at > 0xffffffffLL) {
            put_error(err, err_len, "address out of range");
            return 1;
        }
        api.write_dram(device, static_cast<int>(bank), static_cast<unsigned int>(at), std::span<const unsigned char>(data, len));
        return 0;
    });
}

int ttsan_tt_free(void* buffer, char* err, std::size_t err_len) {
    auto* b = static_cast<BufPtr*>(buffer);
    if (b == nullptr) return 3;
    int rc = guarded(err, err_len, [&] {
        api.buffer_deallocate(b->get());
        return 0;
    });
    // Dropping the last reference can also throw in principle; never let it escape.
    guarded(nullptr, 0, [&] {
        delete b;
        return 0;
    });
    return rc;
}

int ttsan_tt_begin_graph_capture(int mode, char* err, std::size_t err_len) {
    if (!loaded) return 2;
    return guarded(err, err_len, [&] {
        api.begin_graph_capture(static_cast<IGraphProcessor::RunMode>(mode));
        return 0;
    });
}

int ttsan_tt_end_graph_capture_to_file(const char* path, char* err, std::size_t err_len) {
    if (!loaded) return 2;
    if (path == nullptr) return 3;
    return guarded(err, err_len, [&] {
        std::filesystem::path p(path);
        new OpaqueJson(api.end_graph_capture_to_file(p));
        return 0;
    });
}

}  // extern "C"

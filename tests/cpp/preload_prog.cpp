// Test program for `ttsan run -- CMD`: drives the real libtt_metal.so (ttnn 0.81.1) in mock mode
// with hand-written declarations (the wheel ships no host-API headers), marks ops and guards
// through the shim's C ABI looked up with dlsym (so it also runs without the shim), and prints
// every buffer it allocates with the address the real allocator gave it:
//   ALLOC <tag> uid=<unique id> addr=<address> size=<bytes> type=<BufferType>
//   FREE <tag> uid=<unique id>
// Modes: basic | threads | fork | segv | wait (until killed) | leak | idle (loads tt-metal, allocates nothing) | bench N;
// each takes the chip count next.
#include <cxxabi.h>
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <any>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>
#include <array>

namespace tt {
enum class ARCH { WORMHOLE_B0 = 2, BLACKHOLE = 3, QUASAR = 4, Invalid = 0xFF };
enum class DataFormat : uint8_t { Float16_b = 5 };
struct xy_pair { size_t x, y; };
}
namespace tt::tt_metal {
enum class BufferType { DRAM, L1, SYSTEM_MEMORY, L1_SMALL, TRACE };
enum class DispatchCoreType : uint32_t { WORKER, ETH, COUNT };
enum class DispatchCoreAxis { ROW, COL, COUNT };
class DispatchCoreConfig { public: DispatchCoreType type_ = DispatchCoreType::WORKER; std::optional<DispatchCoreAxis> axis_; };
class BufferShardingArgs { public: BufferShardingArgs(); ~BufferShardingArgs(); private: alignas(8) unsigned char opaque_[8]; };
class Buffer { public: uint32_t address() const; uint64_t size() const; size_t unique_id() const; BufferType buffer_type() const; };
namespace experimental { void configure_mock_mode(tt::ARCH, unsigned int); }
class IDevice;
class IGraphProcessor;
struct TrackedArgument { std::any value; std::string (*to_string_fn)(const std::any&); };
struct CoreRange { size_t x0, y0, x1, y1; };
// The real layout (core_coord.hpp: one std::vector<CoreRange>), so that a std::variant holding it
// is laid out as the library's.
class CoreRangeSet { public: CoreRangeSet(const CoreRange&); private: std::vector<CoreRange> ranges_; };
class Program;
// Storage to spare; never destroyed (its members leak in this test program).
class CircularBufferConfig {
 public:
  CircularBufferConfig(uint32_t total_size, const std::map<uint8_t, tt::DataFormat>& formats);
  CircularBufferConfig& set_page_size(uint8_t index, uint32_t page_size);
 private:
  alignas(16) unsigned char opaque_[1024];
};
uintptr_t CreateCircularBuffer(Program&, const std::variant<tt::xy_pair, CoreRange, CoreRangeSet>&, const CircularBufferConfig&);
// Room to spare for the real object (a handle to its ProgramImpl); never destroyed.
class Program { public: Program(); private: alignas(16) unsigned char opaque_[512]; };
class GraphTracker {
 public:
  static GraphTracker& instance();
  const std::vector<std::shared_ptr<IGraphProcessor>>& get_processors() const;
  void track_allocate_cb(const CoreRangeSet&, unsigned long, unsigned long, bool, const IDevice*);
  void track_deallocate_cb(const IDevice*);
  void track_program(Program*, const IDevice*);
};
namespace distributed {
class MeshCommandQueue;
class MeshShape;
class MeshCoordinateRange { public: MeshCoordinateRange(const MeshShape&); private: alignas(16) unsigned char opaque_[512]; };
class MeshWorkload {
 public:
  MeshWorkload(); ~MeshWorkload();
  void add_program(const MeshCoordinateRange&, Program&&);
 private:
  alignas(16) unsigned char opaque_[512];
};
struct ReplicatedBufferConfig; struct ShardedBufferConfig; struct DeviceLocalBufferConfig; class MeshShape; class MeshCoordinate;
class MeshDevice {
 public:
  static std::shared_ptr<MeshDevice> create_unit_mesh(int, unsigned long, unsigned long, unsigned long,
      const DispatchCoreConfig&, std::span<const unsigned int>, unsigned long);
  size_t num_devices() const; bool close();
  const MeshShape& shape() const;
  MeshCommandQueue& mesh_command_queue(std::optional<uint8_t>) const;
};
class MeshBuffer { public:
  static std::shared_ptr<MeshBuffer> create(const std::variant<ReplicatedBufferConfig, ShardedBufferConfig>&,
      const DeviceLocalBufferConfig&, MeshDevice*, std::optional<unsigned long>);
  Buffer* get_backing_buffer() const; void deallocate(); };
void EnqueueMeshWorkload(MeshCommandQueue&, MeshWorkload&, bool);
}}
namespace ttnn::distributed {
std::shared_ptr<tt::tt_metal::distributed::MeshDevice> open_mesh_device(unsigned long, unsigned long, unsigned long,
    const tt::tt_metal::DispatchCoreConfig&, const std::optional<tt::tt_metal::distributed::MeshShape>&,
    const std::optional<tt::tt_metal::distributed::MeshCoordinate>&, const std::vector<int>&, unsigned long);
void close_mesh_device(const std::shared_ptr<tt::tt_metal::distributed::MeshDevice>&);
}
using namespace tt::tt_metal;
using namespace tt::tt_metal::distributed;
using Buf = std::shared_ptr<MeshBuffer>;

// The shim's C ABI, when the shim is there.
static void (*op_begin_fn)(const char*);
static void (*op_end_fn)();
static int (*guard_fn)(void*, const char*);
static int (*guard_address_fn)(int, uint64_t, const char*);
static void op_begin(const char* name) { if (op_begin_fn) op_begin_fn(name); printf("OP %s\n", name); }
static void op_end() { if (op_end_fn) op_end_fn(); }

static std::mutex print_lock;
struct alignas(16) Blob { unsigned char b[1024]; };

static Buf make(MeshDevice* dev, const char* tag, uint64_t size, uint64_t page, BufferType t, bool quiet = false) {
  Blob cfg, local;
  memset(&cfg, 0, sizeof cfg); memset(&local, 0, sizeof local);
  memcpy(cfg.b, &size, 8); memcpy(local.b, &page, 8); memcpy(local.b + 8, &t, sizeof t);
  new (local.b + 16) BufferShardingArgs();
  Buf b = MeshBuffer::create(*reinterpret_cast<const std::variant<ReplicatedBufferConfig, ShardedBufferConfig>*>(&cfg),
                             *reinterpret_cast<const DeviceLocalBufferConfig*>(&local), dev, std::nullopt);
  if (!quiet) {
    Buffer* bb = b->get_backing_buffer();
    std::lock_guard<std::mutex> g(print_lock);
    printf("ALLOC %s uid=%zu addr=%u size=%lu type=%d\n", tag, bb->unique_id(), bb->address(),
           (unsigned long)bb->size(), (int)bb->buffer_type());
    fflush(stdout);
  }
  return b;
}

static void drop(Buf& b, const char* tag) {
  size_t uid = b->get_backing_buffer()->unique_id();
  b->deallocate();
  b.reset();
  std::lock_guard<std::mutex> g(print_lock);
  printf("FREE %s uid=%zu\n", tag, uid);
  fflush(stdout);
}

static std::shared_ptr<MeshDevice> open(unsigned chips) {
  tt::tt_metal::experimental::configure_mock_mode(tt::ARCH::WORMHOLE_B0, chips);
  DispatchCoreConfig dcc;
  if (chips == 1) return MeshDevice::create_unit_mesh(0, 0, 0, 1, dcc, {}, 0);
  static Blob no_shape, no_coord;
  memset(&no_shape, 0, sizeof no_shape); memset(&no_coord, 0, sizeof no_coord);
  return ttnn::distributed::open_mesh_device(0, 0, 1, dcc, *reinterpret_cast<const std::optional<MeshShape>*>(&no_shape),
      *reinterpret_cast<const std::optional<MeshCoordinate>*>(&no_coord), {}, 0);
}

static void close(std::shared_ptr<MeshDevice>& mesh, unsigned chips) {
  if (chips == 1) mesh->close(); else ttnn::distributed::close_mesh_device(mesh);
  mesh.reset();
}

// Weights before the first op, two ops (one nested) that allocate and free, a guarded weight.
static void basic(MeshDevice* dev) {
  Buf w1 = make(dev, "weight.embed", 1 << 20, 2048, BufferType::DRAM);
  Buf w2 = make(dev, "weight.norm", 64 << 10, 2048, BufferType::L1);
  if (guard_fn) printf("GUARD weight.embed rc=%d\n", guard_fn(w1->get_backing_buffer(), "weight.embed"));
  if (guard_address_fn) {
    Buffer* n = w2->get_backing_buffer();
    printf("GUARD weight.norm rc=%d\n", guard_address_fn((int)n->buffer_type(), n->address(), "weight.norm"));
    printf("GUARD nothing rc=%d\n", guard_address_fn((int)BufferType::DRAM, 12345, "nothing"));
  }
  op_begin("ttnn.matmul");
  Buf act = make(dev, "matmul.out", 128 << 10, 2048, BufferType::DRAM);
  Buf scratch = make(dev, "matmul.scratch", 32 << 10, 2048, BufferType::L1);
  drop(scratch, "matmul.scratch");
  op_end();
  op_begin("ttnn.add");
  op_begin("ttnn.add.inner");
  Buf out = make(dev, "add.out", 128 << 10, 2048, BufferType::DRAM);
  op_end();
  drop(act, "matmul.out");
  op_end();
  drop(out, "add.out");
  drop(w2, "weight.norm");
  drop(w1, "weight.embed");
}

// Ops announced the way ttnn's header template GraphTracker::track_function_start does: every
// processor in this thread's list, through the vtable slot of the method. The slots are found
// by name in ttnn's own GraphProcessor vtable (exported overrides, so dladdr names them exactly).
static size_t slot_start = 0, slot_end = 0, slot_end_any = 0;

static bool find_slots() {
  void* vt = dlsym(RTLD_DEFAULT, "_ZTVN4ttnn5graph14GraphProcessorE");
  if (!vt) return false;
  void** entries = (void**)vt + 2;
  for (size_t i = 0; i < 15; ++i) {
    Dl_info info;
    if (!dladdr(entries[i], &info) || !info.dli_sname || info.dli_saddr != entries[i]) continue;
    int status = 0;
    char* d = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    if (!d) continue;
    std::string name(d);
    free(d);
    if (name.find("::track_function_start(") != std::string::npos) slot_start = i;
    else if (name.find("::track_function_end()") != std::string::npos) slot_end = i;
    else if (name.find("::track_function_end(std::any const&)") != std::string::npos) slot_end_any = i;
  }
  printf("SLOTS start=%zu end=%zu end_any=%zu\n", slot_start, slot_end, slot_end_any);
  return slot_start && slot_end && slot_end_any;
}

using StartFn = void (*)(void*, std::string_view, std::span<TrackedArgument>);
using EndFn = void (*)(void*);
using EndAnyFn = void (*)(void*, const std::any&);

static void announce_start(std::string_view name, bool quiet = false) {
  std::array<TrackedArgument, 0> args{};
  for (auto& p : GraphTracker::instance().get_processors()) {
    void** vptr = *(void***)p.get();
    ((StartFn)vptr[slot_start])(p.get(), name, std::span<TrackedArgument>(args));
  }
  if (!quiet) printf("OP %.*s\n", (int)name.size(), name.data());
}

static void announce_end(bool with_output) {
  std::any out = 1;
  for (auto& p : GraphTracker::instance().get_processors()) {
    void** vptr = *(void***)p.get();
    if (with_output) ((EndAnyFn)vptr[slot_end_any])(p.get(), out);
    else ((EndFn)vptr[slot_end])(p.get());
  }
}

// Ops as ttnn announces them (nested device operations included), circular buffers through the
// library's own GraphTracker fan-out, and an op announced on a second thread.
static void processor_mode(MeshDevice* dev) {
  if (!find_slots()) { printf("NO SLOTS\n"); return; }
  size_t before = GraphTracker::instance().get_processors().size();
  printf("PROCESSORS %zu then %zu\n", before, GraphTracker::instance().get_processors().size());
  Buf w = make(dev, "weight.sinks", 256 << 10, 2048, BufferType::DRAM);
  if (guard_fn) printf("GUARD weight.sinks rc=%d\n", guard_fn(w->get_backing_buffer(), "weight.sinks"));
  announce_start("ttnn::matmul");
  announce_start("MatmulDeviceOperation");
  Buf out = make(dev, "matmul.out", 128 << 10, 2048, BufferType::DRAM);
  announce_end(true);
  announce_end(true);
  announce_start("ttnn::add");
  Buf tmp = make(dev, "add.tmp", 32 << 10, 2048, BufferType::L1);
  CoreRangeSet cores(CoreRange{0, 0, 3, 1});
  GraphTracker::instance().track_allocate_cb(cores, 0x20000, 4096, false, (const IDevice*)dev);
  printf("CB addr=131072 size=4096 cores=8\n");
  drop(tmp, "add.tmp");
  GraphTracker::instance().track_deallocate_cb((const IDevice*)dev);
  announce_end(false);
  drop(out, "matmul.out");
  std::thread t([&] {
    announce_start("ttnn::worker_op");
    Buf x = make(dev, "worker.out", 16 << 10, 2048, BufferType::DRAM);
    drop(x, "worker.out");
    announce_end(true);
  });
  t.join();
  drop(w, "weight.sinks");
}

// Loading weights as ttnn does (a host transfer the graph tracker announces as an op), then a
// compute op whose program runs after it allocated its output, then another compute op.
static void preload_mode(MeshDevice* dev) {
  if (!find_slots()) { printf("NO SLOTS\n"); return; }
  Buf sinks = make(dev, "weight.sinks", 256 << 10, 2048, BufferType::DRAM);
  announce_start("Tensor::to_device");
  Buf norm = make(dev, "weight.norm", 64 << 10, 2048, BufferType::L1);
  announce_end(true);
  announce_start("ttnn::matmul");
  Buf out = make(dev, "matmul.out", 128 << 10, 2048, BufferType::DRAM);
  GraphTracker::instance().track_program(new Program(), (const IDevice*)dev);
  printf("PROGRAM\n");
  announce_end(true);
  announce_start("ttnn::add");
  Buf sum = make(dev, "add.out", 128 << 10, 2048, BufferType::DRAM);
  announce_end(true);
  drop(sum, "add.out");
  drop(out, "matmul.out");
  drop(norm, "weight.norm");
  drop(sinks, "weight.sinks");
}

// A program built with the public host API: one circular buffer on a 4x2 core range, dispatched
// to every chip as a mesh workload. tt-metal places the CB when it dispatches the program and
// reports the placement to the graph tracker.
static void dispatch_mode(MeshDevice* dev) {
  Buf input = make(dev, "input", 64 << 10, 2048, BufferType::DRAM);
  Program program;
  CircularBufferConfig config(4096, {{0, tt::DataFormat::Float16_b}});
  config.set_page_size(0, 2048);
  uintptr_t cb = CreateCircularBuffer(program, CoreRange{0, 0, 3, 1}, config);
  printf("CB handle=%lu\n", (unsigned long)cb);
  fflush(stdout);
  MeshWorkload workload;
  workload.add_program(MeshCoordinateRange(dev->shape()), std::move(program));
  op_begin("dispatch");
  EnqueueMeshWorkload(dev->mesh_command_queue(std::nullopt), workload, true);
  op_end();
  printf("DISPATCHED\n");
}

// Four threads allocate; each frees half of its own buffers and hands the rest to the main
// thread, which frees them (cross-thread frees).
static void threads(MeshDevice* dev) {
  std::vector<Buf> handed;
  std::mutex handed_lock;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        std::string tag = "t" + std::to_string(t) + "." + std::to_string(i);
        Buf b = make(dev, tag.c_str(), (uint64_t)(t + 1) * 8192, 2048, i % 2 ? BufferType::L1 : BufferType::DRAM);
        if (i % 2 == 0) drop(b, tag.c_str());
        else { std::lock_guard<std::mutex> g(handed_lock); handed.push_back(b); }
      }
    });
  }
  for (auto& t : ts) t.join();
  for (auto& b : handed) drop(b, "handed");
}

static void fork_mode(MeshDevice* dev) {
  Buf before = make(dev, "parent.before", 256 << 10, 2048, BufferType::DRAM);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    // The child allocates and frees through the inherited allocator, then leaves without
    // running tt-metal's destructors (its threads did not survive the fork).
    Buf c = make(dev, "child", 64 << 10, 2048, BufferType::DRAM, true);
    c->deallocate();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  printf("CHILD exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  Buf after = make(dev, "parent.after", 128 << 10, 2048, BufferType::DRAM);
  drop(after, "parent.after");
  drop(before, "parent.before");
}

static void segv(MeshDevice* dev) {
  Buf w = make(dev, "weight", 1 << 20, 2048, BufferType::DRAM);
  op_begin("ttnn.crashing_op");
  Buf a = make(dev, "activation", 64 << 10, 2048, BufferType::L1);
  printf("CRASHING\n");
  fflush(stdout);
  volatile int* p = nullptr;
  *p = 1;
}

// Allocates, then waits to be killed (the test sends SIGTERM).
static void wait_mode(MeshDevice* dev) {
  Buf w = make(dev, "weight", 1 << 20, 2048, BufferType::DRAM);
  op_begin("ttnn.waiting_op");
  Buf a = make(dev, "activation", 64 << 10, 2048, BufferType::L1);
  printf("WAITING\n");
  fflush(stdout);
  for (int i = 0; i < 600; ++i) usleep(100 * 1000);
}

// A buffer still allocated when the device closes (the allocator releases it without a free).
static void leak(MeshDevice* dev) {
  static Buf* kept = new Buf(make(dev, "leaked", 64 << 10, 2048, BufferType::DRAM));
  (void)kept;
}

static void bench(MeshDevice* dev, long n) {
  // Warm-up so first-use costs (symbol lookup, the trace file) stay out of the measurement.
  for (int i = 0; i < 100; ++i) { Buf b = make(dev, "", 64 << 10, 2048, BufferType::DRAM, true); b->deallocate(); }
  // Wall time, this thread's CPU time (what the shim adds to each tt-metal call) and the whole
  // process's CPU time (that plus the shim's writer thread).
  auto cpu = [](clockid_t c) { timespec t; clock_gettime(c, &t); return (double)t.tv_sec * 1e9 + (double)t.tv_nsec; };
  double thread0 = cpu(CLOCK_THREAD_CPUTIME_ID), process0 = cpu(CLOCK_PROCESS_CPUTIME_ID);
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    Buf b = make(dev, "", (i % 4 + 1) * 16384, 2048, i % 2 ? BufferType::L1 : BufferType::DRAM, true);
    b->deallocate();
  }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  double thread_ns = cpu(CLOCK_THREAD_CPUTIME_ID) - thread0, process_ns = cpu(CLOCK_PROCESS_CPUTIME_ID) - process0;
  printf("BENCH iterations=%ld ns_per_iteration=%.1f thread_cpu_ns=%.1f process_cpu_ns=%.1f\n", n, (double)ns / (double)n,
         thread_ns / (double)n, process_ns / (double)n);
}

// What the graph processor costs per op: ops announced as ttnn announces them (a top-level op
// with one nested device operation, both ending with an output), no allocation inside. Without
// the shim no processor is registered and the loop only walks an empty list.
static void bench_ops(MeshDevice* dev, long n) {
  if (!find_slots()) { printf("NO SLOTS\n"); return; }
  Buf started = make(dev, "", 64 << 10, 2048, BufferType::DRAM, true);
  auto one = [] {
    announce_start("ttnn::add", true);
    announce_start("BinaryNgDeviceOperation", true);
    announce_end(true);
    announce_end(true);
  };
  for (int i = 0; i < 100; ++i) one();
  auto cpu = [](clockid_t c) { timespec t; clock_gettime(c, &t); return (double)t.tv_sec * 1e9 + (double)t.tv_nsec; };
  double thread0 = cpu(CLOCK_THREAD_CPUTIME_ID), process0 = cpu(CLOCK_PROCESS_CPUTIME_ID);
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) one();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  double thread_ns = cpu(CLOCK_THREAD_CPUTIME_ID) - thread0, process_ns = cpu(CLOCK_PROCESS_CPUTIME_ID) - process0;
  printf("BENCH iterations=%ld ns_per_iteration=%.1f thread_cpu_ns=%.1f process_cpu_ns=%.1f\n", n, (double)ns / (double)n,
         thread_ns / (double)n, process_ns / (double)n);
  started->deallocate();
}

int main(int argc, char** argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s MODE CHIPS [N]\n", argv[0]); return 2; }
  std::string mode = argv[1];
  unsigned chips = (unsigned)atoi(argv[2]);
  op_begin_fn = (void (*)(const char*))dlsym(RTLD_DEFAULT, "ttsan_op_begin");
  op_end_fn = (void (*)())dlsym(RTLD_DEFAULT, "ttsan_op_end");
  guard_fn = (int (*)(void*, const char*))dlsym(RTLD_DEFAULT, "ttsan_guard");
  guard_address_fn = (int (*)(int, uint64_t, const char*))dlsym(RTLD_DEFAULT, "ttsan_guard_address");
  printf("SHIM %s\n", op_begin_fn ? "present" : "absent");
  if (mode == "idle") { printf("DONE\n"); return 0; }
  auto mesh = open(chips);
  printf("MESH devices=%zu\n", mesh->num_devices());
  fflush(stdout);
  if (mode == "basic") basic(mesh.get());
  else if (mode == "threads") threads(mesh.get());
  else if (mode == "fork") fork_mode(mesh.get());
  else if (mode == "segv") segv(mesh.get());
  else if (mode == "leak") leak(mesh.get());
  else if (mode == "wait") wait_mode(mesh.get());
  else if (mode == "processor") processor_mode(mesh.get());
  else if (mode == "preload") preload_mode(mesh.get());
  else if (mode == "dispatch") dispatch_mode(mesh.get());
  else if (mode == "bench") bench(mesh.get(), argc > 3 ? atol(argv[3]) : 2000);
  else if (mode == "bench-ops") bench_ops(mesh.get(), argc > 3 ? atol(argv[3]) : 2000);
  else { fprintf(stderr, "unknown mode %s\n", mode.c_str()); return 2; }
  close(mesh, chips);
  printf("DONE\n");
  return 0;
}

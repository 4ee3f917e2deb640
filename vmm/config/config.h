// The VM configuration: plain structs filled by the YAML parser (vmm/config/yaml.h) and the command line
// (vmm/config/cli.h), read by the VM builder. No behaviour here; the rules live in vmm/config/fields.h.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kite {

// Named ConfigHugePages (not HugePages) so it cannot clash with the RAM-block type of the memory library.
enum class ConfigHugePages { Auto, None, Transparent, Hugetlbfs2M };
enum class BootProtocol { Auto, BzImage, Pvh };
// How the guest learns where the virtio-mmio transports are: ACPI DSDT entries (LNRO0005, what the stock
// kernel uses), or virtio_mmio.device= parameters on the kernel command line (kernels without ACPI).
enum class VirtioDiscovery { Acpi, Cmdline };
// The sandbox Kite puts on itself before the guest runs (vmm/sandbox.h). On: the seccomp filter enforced
// and Landlock; Log: calls outside the filter's allowlist are only logged by the kernel, no Landlock;
// Off: none.
enum class SeccompMode { On, Log, Off };

// Where a character device's output goes. Input (serial, console) comes from stdin only in Stdio mode.
struct OutputConfig {
    enum class Mode { Stdio, File, Off } mode = Mode::Stdio;
    std::string path;  // Mode::File only; resolved (relative paths made relative to the YAML file's folder)
};

struct BootConfig {
    std::string kernel;  // required unless VmConfig::restore is set
    std::string initrd;  // empty = none
    std::string cmdline;
    BootProtocol protocol = BootProtocol::Auto;
    VirtioDiscovery virtio_discovery = VirtioDiscovery::Acpi;
};

struct MemoryConfig {
    uint64_t size = 512ull << 20;  // bytes, a non-zero multiple of 4 KiB (of 2 MiB with Hugetlbfs2M)
    ConfigHugePages hugepages = ConfigHugePages::Auto;
    // Guest RAM is always a shared memfd: vhost-user back-ends and the mirror VM map it.
};

struct BlockConfig {
    std::string path;
    bool readonly = false;
    std::string id;  // virtio-blk serial (VIRTIO_BLK_T_GET_ID), at most 20 bytes; empty = none
    enum class Engine { Auto, IoUring, Sync } engine = Engine::Auto;
};

struct NetConfig {
    std::string tap;                                // interface name, at most IFNAMSIZ-1 = 15 bytes
    std::optional<std::array<uint8_t, 6>> mac;      // unicast; nullopt = let the builder pick one
};

struct RngConfig {};

struct ConsoleConfig {
    OutputConfig output;
};

// Settings every vhost-user front-end shares.
struct VhostUserCommon {
    uint32_t reconnect_timeout_ms = 5000;  // how long to wait for the back-end's socket to (re)appear
    // The uid the back-end must run as (SO_PEERCRED); unset = Kite's own user or root.
    std::optional<uint32_t> peer_uid;
    // virtio-mmio (an I/O APIC pin, no shared memory limits) or virtio-pci (MSI-X, one vector per
    // queue; no shared memory regions).
    enum class Transport { Mmio, Pci } transport = Transport::Mmio;
};

struct VhostUserBlkConfig {
    std::string socket;
    VhostUserCommon common;
};

struct VhostUserFsConfig {
    std::string socket;
    std::string tag;            // mount tag the guest uses, 1..36 bytes
    uint64_t dax_size = 0;      // DAX window (shared memory region 0); 0 = no DAX; a multiple of 2 MiB
    uint16_t queue_size = 1024; // power of two, 1..32768
    VhostUserCommon common;
};

// Any device type behind a vhost-user back-end; shared memory regions are the VIRTIO shm regions.
struct VhostUserGenericConfig {
    std::string socket;
    uint32_t virtio_id = 0;         // VIRTIO device ID, required (for example 26 = virtio-fs, 2 = blk)
    uint16_t num_queues = 1;        // 1..64
    uint16_t queue_size = 256;      // power of two, 1..32768
    std::vector<uint64_t> shm_sizes;  // each a non-zero multiple of 4 KiB; empty = ask GET_SHMEM_CONFIG
    // Bytes of device config space to ask GET_CONFIG for: the device type's config struct (a back-end
    // may refuse a larger request); 0 = the device has none, do not ask.
    uint32_t config_size = 256;
    VhostUserCommon common;
};

using DeviceConfig = std::variant<BlockConfig, NetConfig, RngConfig, ConsoleConfig, VhostUserBlkConfig,
                                  VhostUserFsConfig, VhostUserGenericConfig>;

struct VmConfig {
    unsigned vcpus = 1;  // 1..254
    MemoryConfig memory;
    BootConfig boot;
    OutputConfig serial;
    std::vector<DeviceConfig> devices;  // in order: the builder assigns transports in this order
    bool vhost_trace = false;           // print every vhost-user message, decoded
    std::string control_socket;         // JSON control API; empty = none
    std::string restore;                // snapshot file to resume from; empty = fresh boot
    std::string log_level = "warn";     // trace | debug | info | warn | error | critical | off
    SeccompMode seccomp = SeccompMode::On;  // the system-call filter (vmm/seccomp.h)
};

// The config-file name of a device's kind: "block", "net", "vhost-user-fs", ...
const char* device_kind_name(const DeviceConfig& device);

}  // namespace kite

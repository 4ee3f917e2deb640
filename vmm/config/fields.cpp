// One setter per config key and the cross-field rules (see vmm/config/fields.h).
#include "vmm/config/fields.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/size.h"
#include "vmm/config/keys.h"

namespace kite {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2ull << 20;
// Sizes above this are typos ("512G" for "512M"), not machines Kite will build.
constexpr uint64_t kMaxRegion = 1ull << 40;
constexpr unsigned kMaxVcpus = 254;  // one IOAPIC/xAPIC id space, 255 is broadcast
constexpr uint64_t kMaxQueueSize = 32768;  // split virtqueue limit
constexpr uint64_t kMaxQueues = 64;
constexpr size_t kMaxShmRegions = 16;  // vhost::kMaxShmRegionsPerDevice (config may not include vhost/)
constexpr size_t kBlockIdBytes = 20;  // VIRTIO_BLK_ID_BYTES
constexpr size_t kFsTagBytes = 36;    // struct virtio_fs_config.tag
constexpr uint64_t kMaxReconnectMs = 3'600'000;
constexpr uint64_t kMaxConfigSpace = 256;  // vhost-user's largest GET_CONFIG payload

constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

std::unexpected<Error> unknown_key(std::string_view key, std::span<const std::string_view> keys) {
    return fail(unknown_name_message("key", key, keys));
}

bool is_known(std::string_view key, std::span<const std::string_view> keys) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// A region size: non-zero (unless zero_ok), a multiple of `align`, at most kMaxRegion.
Result<uint64_t> region_size(std::string_view text, uint64_t align, bool zero_ok) {
    auto size = parse_size(text);
    if (!size) return size;
    if (*size == 0 && zero_ok) return size;
    if (*size == 0) return fail("must not be zero");
    if (*size % align != 0) return fail(std::string(text) + " is not a multiple of " + format_size(align));
    if (*size > kMaxRegion) return fail(std::string(text) + " is more than " + format_size(kMaxRegion));
    return size;
}

Result<std::string> path_value(std::string_view text, const FieldContext& context) {
    if (text.empty()) return fail("must not be empty");
    return resolve_path(text, context);
}

Result<std::string> socket_value(std::string_view text, const FieldContext& context) {
    auto path = path_value(text, context);
    if (!path) return path;
    constexpr size_t max_length = sizeof(sockaddr_un::sun_path) - 1;
    if (path->size() > max_length) {
        return fail("socket path " + *path + " is longer than " + std::to_string(max_length) + " bytes");
    }
    return path;
}

Result<uint16_t> queue_size_value(std::string_view text) {
    auto size = parse_uint(text, 1, kMaxQueueSize);
    if (!size) return std::unexpected(size.error());
    if ((*size & (*size - 1)) != 0) return fail("must be a power of two, got " + std::string(text));
    return static_cast<uint16_t>(*size);
}

// Assigns a parsed value to a field, or passes the parse error on.
template <class Field, class Parsed>
Result<void> assign(Field& field, Result<Parsed> parsed) {
    if (!parsed) return std::unexpected(parsed.error());
    field = static_cast<Field>(std::move(*parsed));
    return {};
}

Result<void> set_common(VhostUserCommon& common, std::string_view key, std::string_view value,
                        std::span<const std::string_view> keys) {
    if (key == "reconnect-timeout-ms") return assign(common.reconnect_timeout_ms, parse_uint(value, 0, kMaxReconnectMs));
    // (uid_t)-1 means "no change" to the kernel, never a user.
    if (key == "peer-uid") return assign(common.peer_uid, parse_uint(value, 0, 0xfffffffe));
    if (key == "transport") {
        if (value == "mmio") common.transport = VhostUserCommon::Transport::Mmio;
        else if (value == "pci") common.transport = VhostUserCommon::Transport::Pci;
        else return fail("expected mmio or pci, got " + quote_value(value));
        return {};
    }
    return unknown_key(key, keys);
}

Result<void> set_field(BlockConfig& block, std::string_view key, std::string_view value,
                       const FieldContext& context) {
    if (key == "path") return assign(block.path, path_value(value, context));
    if (key == "readonly") return assign(block.readonly, parse_bool(value));
    if (key == "id") {
        if (value.size() > kBlockIdBytes) return fail("longer than " + std::to_string(kBlockIdBytes) + " bytes");
        block.id = value;
        return {};
    }
    if (key == "engine") {
        if (value == "auto") block.engine = BlockConfig::Engine::Auto;
        else if (value == "io_uring" || value == "io-uring") block.engine = BlockConfig::Engine::IoUring;
        else if (value == "sync") block.engine = BlockConfig::Engine::Sync;
        else return fail("expected auto, io_uring or sync, got " + quote_value(value));
        return {};
    }
    return unknown_key(key, key_names(KeyScope::Block));
}

Result<void> set_field(NetConfig& net, std::string_view key, std::string_view value, const FieldContext&) {
    if (key == "tap") {
        if (auto ok = check_tap_name(value); !ok) return ok;
        net.tap = value;
        return {};
    }
    if (key == "mac") return assign(net.mac, parse_mac(value));
    return unknown_key(key, key_names(KeyScope::Net));
}

Result<void> set_field(RngConfig&, std::string_view key, std::string_view, const FieldContext&) {
    return unknown_key(key, {});  // not reached: rng has no keys in the table
}

Result<void> set_field(ConsoleConfig& console, std::string_view key, std::string_view value,
                       const FieldContext& context) {
    if (key == "output") return assign(console.output, parse_output(value, context));
    return unknown_key(key, key_names(KeyScope::Console));
}

Result<void> set_field(VhostUserBlkConfig& blk, std::string_view key, std::string_view value,
                       const FieldContext& context) {
    if (key == "socket") return assign(blk.socket, socket_value(value, context));
    return set_common(blk.common, key, value, key_names(KeyScope::VhostUserBlk));
}

Result<void> set_field(VhostUserFsConfig& fs, std::string_view key, std::string_view value,
                       const FieldContext& context) {
    if (key == "socket") return assign(fs.socket, socket_value(value, context));
    if (key == "tag") {
        if (value.empty() || value.size() > kFsTagBytes) {
            return fail("must be 1 to " + std::to_string(kFsTagBytes) + " bytes");
        }
        fs.tag = value;
        return {};
    }
    // Linux maps DAX ranges in 2 MiB chunks (FUSE_DAX_SHIFT), so the window is a whole number of them.
    if (key == "dax") return assign(fs.dax_size, region_size(value, kHugePage, true));
    if (key == "queue-size") return assign(fs.queue_size, queue_size_value(value));
    return set_common(fs.common, key, value, key_names(KeyScope::VhostUserFs));
}

Result<void> set_field(VhostUserGenericConfig& generic, std::string_view key, std::string_view value,
                       const FieldContext& context) {
    if (key == "socket") return assign(generic.socket, socket_value(value, context));
    if (key == "virtio-id") return assign(generic.virtio_id, parse_uint(value, 1, 0xffff));
    if (key == "queues") return assign(generic.num_queues, parse_uint(value, 1, kMaxQueues));
    if (key == "queue-size") return assign(generic.queue_size, queue_size_value(value));
    if (key == "config-size") return assign(generic.config_size, parse_uint(value, 0, kMaxConfigSpace));
    if (key == "shm") {
        // "64M:128M" on the command line; the YAML list calls this once per item.
        size_t start = 0;
        while (true) {
            size_t end = value.find(':', start);
            std::string_view item = value.substr(start, end == std::string_view::npos ? end : end - start);
            auto size = region_size(item, kPage, false);
            if (!size) return std::unexpected(size.error());
            if (generic.shm_sizes.size() >= kMaxShmRegions) {
                return fail("more than " + std::to_string(kMaxShmRegions) + " shared memory regions");
            }
            generic.shm_sizes.push_back(*size);
            if (end == std::string_view::npos) return {};
            start = end + 1;
        }
    }
    return set_common(generic.common, key, value, key_names(KeyScope::VhostUser));
}

ConfigIssue missing(std::string key) { return ConfigIssue{std::move(key), "missing required key"}; }

ConfigCheck check_complete(const BlockConfig& d) { return d.path.empty() ? std::unexpected(missing("path")) : ConfigCheck{}; }
ConfigCheck check_complete(const NetConfig& d) { return d.tap.empty() ? std::unexpected(missing("tap")) : ConfigCheck{}; }
ConfigCheck check_complete(const RngConfig&) { return {}; }
ConfigCheck check_complete(const ConsoleConfig&) { return {}; }
ConfigCheck check_complete(const VhostUserBlkConfig& d) {
    return d.socket.empty() ? std::unexpected(missing("socket")) : ConfigCheck{};
}
ConfigCheck check_complete(const VhostUserFsConfig& d) {
    if (d.socket.empty()) return std::unexpected(missing("socket"));
    if (d.tag.empty()) return std::unexpected(missing("tag"));
    if (d.dax_size > 0 && d.common.transport == VhostUserCommon::Transport::Pci)
        return std::unexpected(ConfigIssue{"transport", "pci has no shared memory regions: a DAX window needs mmio"});
    return {};
}
ConfigCheck check_complete(const VhostUserGenericConfig& d) {
    if (d.socket.empty()) return std::unexpected(missing("socket"));
    if (d.virtio_id == 0) return std::unexpected(missing("virtio-id"));
    if (!d.shm_sizes.empty() && d.common.transport == VhostUserCommon::Transport::Pci)
        return std::unexpected(ConfigIssue{"transport", "pci has no shared memory regions: shm needs mmio"});
    return {};
}

std::string device_key(size_t index, const DeviceConfig& device, std::string_view key) {
    return "devices[" + std::to_string(index) + "]." + device_kind_name(device) + "." + std::string(key);
}

// "" when path names a regular file (or, with block_ok, a block device) this process can open as asked.
std::string file_problem(const std::string& path, bool block_ok, bool writable) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return path + ": " + std::strerror(errno);
    bool kind_ok = S_ISREG(st.st_mode) || (block_ok && S_ISBLK(st.st_mode));
    if (!kind_ok) return path + ": not a regular file";
    if (::access(path.c_str(), R_OK) != 0) return path + ": not readable: " + std::strerror(errno);
    if (writable && ::access(path.c_str(), W_OK) != 0) {
        return path + ": not writable (" + std::strerror(errno) + "); set readonly to open it read-only";
    }
    return "";
}

}  // namespace

static_assert(std::variant_size_v<DeviceConfig> == std::size(kDeviceKinds));

const char* device_kind_name(const DeviceConfig& device) {
    return kDeviceKinds[device.index()].name.data();  // kDeviceKinds is in DeviceConfig's variant order
}

std::span<const std::string_view> vm_keys() { return key_names(KeyScope::Top); }
std::span<const std::string_view> device_kinds() { return device_kind_names(); }
std::span<const std::string_view> memory_keys() { return key_names(KeyScope::Memory); }

Result<void> set_vm_field(VmConfig& config, std::string_view key, std::string_view value,
                          const FieldContext& context) {
    if (value.find('\0') != std::string_view::npos) return fail("must not contain a NUL byte");
    // Only keys of the table (vmm/config/keys.h) exist, whatever a setter below would take.
    if (key.starts_with("memory.")) {
        if (!is_known(key.substr(7), memory_keys())) return unknown_key(key.substr(7), memory_keys());
    } else if (!is_known(key, vm_keys())) {
        return unknown_key(key, vm_keys());
    }
    if (key == "vcpus") return assign(config.vcpus, parse_uint(value, 1, kMaxVcpus));
    if (key == "memory" || key == "memory.size") return assign(config.memory.size, region_size(value, kPage, false));
    if (key == "memory.hugepages") {
        if (value == "auto") config.memory.hugepages = ConfigHugePages::Auto;
        else if (value == "none") config.memory.hugepages = ConfigHugePages::None;
        else if (value == "transparent") config.memory.hugepages = ConfigHugePages::Transparent;
        else if (value == "hugetlbfs") config.memory.hugepages = ConfigHugePages::Hugetlbfs2M;
        else return fail("expected auto, none, transparent or hugetlbfs, got " + quote_value(value));
        return {};
    }
    if (key == "kernel") return assign(config.boot.kernel, path_value(value, context));
    if (key == "initrd") return assign(config.boot.initrd, path_value(value, context));
    if (key == "cmdline") {
        config.boot.cmdline = value;
        return {};
    }
    if (key == "boot-protocol") {
        if (value == "auto") config.boot.protocol = BootProtocol::Auto;
        else if (value == "bzimage") config.boot.protocol = BootProtocol::BzImage;
        else if (value == "pvh") config.boot.protocol = BootProtocol::Pvh;
        else return fail("expected auto, bzimage or pvh, got " + quote_value(value));
        return {};
    }
    if (key == "virtio-discovery") {
        if (value == "acpi") config.boot.virtio_discovery = VirtioDiscovery::Acpi;
        else if (value == "cmdline") config.boot.virtio_discovery = VirtioDiscovery::Cmdline;
        else return fail("expected acpi or cmdline, got " + quote_value(value));
        return {};
    }
    if (key == "serial") return assign(config.serial, parse_output(value, context));
    if (key == "log-level") {
        if (std::find(std::begin(kLogLevels), std::end(kLogLevels), value) == std::end(kLogLevels)) {
            return fail(unknown_name_message("log level " + quote_value(value), value, kLogLevels));
        }
        config.log_level = value;
        return {};
    }
    if (key == "vhost-trace") return assign(config.vhost_trace, parse_bool(value));
    if (key == "seccomp") {
        if (value == "on") config.seccomp = SeccompMode::On;
        else if (value == "log") config.seccomp = SeccompMode::Log;
        else if (value == "off") config.seccomp = SeccompMode::Off;
        else return fail("expected on, log or off, got " + quote_value(value));
        return {};
    }
    if (key == "api-socket") return assign(config.control_socket, socket_value(value, context));
    if (key == "restore") return assign(config.restore, path_value(value, context));
    if (key == "devices") return fail("expected a list of devices");
    return unknown_key(key, vm_keys());  // a key in the table without a setter
}

Result<DeviceConfig> make_device(std::string_view kind) {
    if (kind == "block") return BlockConfig{};
    if (kind == "net") return NetConfig{};
    if (kind == "rng") return RngConfig{};
    if (kind == "console") return ConsoleConfig{};
    if (kind == "vhost-user-blk") return VhostUserBlkConfig{};
    if (kind == "vhost-user-fs") return VhostUserFsConfig{};
    if (kind == "vhost-user") return VhostUserGenericConfig{};
    return fail(unknown_name_message("device type", kind, device_kinds()));
}

std::span<const std::string_view> device_keys(const DeviceConfig& device) {
    return key_names(kDeviceKinds[device.index()].scope);
}

Result<void> set_device_field(DeviceConfig& device, std::string_view key, std::string_view value,
                              const FieldContext& context) {
    if (value.find('\0') != std::string_view::npos) return fail("must not contain a NUL byte");
    // Only keys of the table (vmm/config/keys.h) exist, whatever a setter would take.
    if (!is_known(key, device_keys(device)) && device_keys(device).empty()) {
        return fail(unknown_name_message("key", key, {}) + " (" + device_kind_name(device) + " has no settings)");
    }
    if (!is_known(key, device_keys(device))) return unknown_key(key, device_keys(device));
    return std::visit([&](auto& d) { return set_field(d, key, value, context); }, device);
}

ConfigCheck check_device_complete(const DeviceConfig& device) {
    return std::visit([](const auto& d) { return check_complete(d); }, device);
}

ConfigCheck finish_config(VmConfig& config, bool require_kernel) {
    if (require_kernel && config.boot.kernel.empty() && config.restore.empty()) {
        return std::unexpected(ConfigIssue{"kernel", "missing required key (or set restore to resume a snapshot)"});
    }
    if (config.memory.hugepages == ConfigHugePages::Hugetlbfs2M && config.memory.size % kHugePage != 0) {
        return std::unexpected(ConfigIssue{
            "memory.size", format_size(config.memory.size) + " is not a multiple of 2 MiB (hugepages: hugetlbfs)"});
    }
    std::map<std::string, size_t> block_ids, fs_tags;
    for (size_t i = 0; i < config.devices.size(); ++i) {
        const DeviceConfig& device = config.devices[i];
        if (auto check = check_device_complete(device); !check) {
            return std::unexpected(ConfigIssue{device_key(i, device, check.error().key), check.error().message});
        }
        const auto* block = std::get_if<BlockConfig>(&device);
        if (block && !block->id.empty() && !block_ids.emplace(block->id, i).second) {
            return std::unexpected(ConfigIssue{device_key(i, device, "id"),
                "duplicate id " + quote_value(block->id) + " (also devices[" + std::to_string(block_ids[block->id]) + "])"});
        }
        const auto* fs = std::get_if<VhostUserFsConfig>(&device);
        if (fs && !fs_tags.emplace(fs->tag, i).second) {
            return std::unexpected(ConfigIssue{device_key(i, device, "tag"),
                "duplicate tag " + quote_value(fs->tag) + " (also devices[" + std::to_string(fs_tags[fs->tag]) + "])"});
        }
    }
    return {};
}

ConfigCheck check_config_files(const VmConfig& config) {
    struct Wanted { std::string key; const std::string* path; };
    std::vector<Wanted> files = {{"kernel", &config.boot.kernel}, {"initrd", &config.boot.initrd},
                                 {"restore", &config.restore}};
    for (const auto& [key, path] : files) {
        if (path->empty()) continue;
        if (std::string problem = file_problem(*path, false, false); !problem.empty()) {
            return std::unexpected(ConfigIssue{key, problem});
        }
    }
    for (size_t i = 0; i < config.devices.size(); ++i) {
        const auto* block = std::get_if<BlockConfig>(&config.devices[i]);
        if (!block) continue;
        if (std::string problem = file_problem(block->path, true, !block->readonly); !problem.empty()) {
            return std::unexpected(ConfigIssue{device_key(i, config.devices[i], "path"), problem});
        }
    }
    return {};
}

}  // namespace kite

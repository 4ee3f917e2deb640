// The config key table (see vmm/config/keys.h) and the lists derived from it.
#include "vmm/config/keys.h"

#include <array>
#include <vector>

namespace kite {

namespace {

using enum KeyScope;

constexpr ConfigKey kKeys[] = {
    {Top, "vcpus", "--vcpus", "N", "1", "number of vCPUs, 1 to 254"},
    {Top, "memory", "--memory", "SIZE", "512M", "guest RAM; or a map of the memory keys below"},
    {Memory, "size", "", "SIZE", "512M", "guest RAM, a multiple of 4K (of 2M with hugetlbfs)"},
    {Memory, "hugepages", "--hugepages", "auto|none|transparent|hugetlbfs", "auto",
     "page size of guest RAM (auto: transparent huge pages when the host gives them, else 4K)"},
    {Top, "kernel", "--kernel", "PATH", "", "kernel image, bzImage or PVH ELF; required unless restore is set"},
    {Top, "initrd", "--initrd", "PATH", "", "initial ramdisk"},
    {Top, "cmdline", "--cmdline", "TEXT", "", "kernel command line"},
    {Top, "boot-protocol", "--boot-protocol", "auto|bzimage|pvh", "auto", "how the kernel is entered"},
    {Top, "virtio-discovery", "--virtio-discovery", "acpi|cmdline", "acpi",
     "virtio-mmio devices in the ACPI DSDT, or as virtio_mmio.device= on the command line"},
    {Top, "serial", "--serial", "stdio|off|file:PATH", "stdio",
     "8250 serial port output (YAML also takes {file: PATH})"},
    {Top, "log-level", "--log-level", "trace|debug|info|warn|error|critical|off", "warn", "Kite's log"},
    {Top, "vhost-trace", "--vhost-trace", "BOOL", "false", "print every vhost-user message, decoded"},
    {Top, "seccomp", "--seccomp", "on|log|off", "on",
     "system-call filter and Landlock sandbox Kite puts on itself (log: the kernel only logs calls outside "
     "the filter, no Landlock)"},
    {Top, "api-socket", "--api-socket", "PATH", "", "serve the JSON control API on this Unix socket"},
    {Top, "restore", "--restore", "PATH", "", "resume this snapshot instead of booting"},
    {Top, "devices", "", "list", "", "devices in order, each entry one device type (below)"},

    {Block, "path", "", "PATH", "", "disk image or block device", true},
    {Block, "readonly", "", "BOOL", "false", "open the image read-only; the guest sees a read-only disk"},
    {Block, "id", "", "ID", "", "serial the guest reads (VIRTIO_BLK_T_GET_ID), at most 20 bytes"},
    {Block, "engine", "", "auto|io_uring|sync", "auto", "how requests reach the image"},
    {Net, "tap", "", "NAME", "", "host tap interface, at most 15 bytes", true},
    {Net, "mac", "", "MAC", "", "unicast MAC address such as 52:54:00:12:34:56 (default: Kite picks one)"},
    {Console, "output", "", "stdio|off|file:PATH", "stdio", "where the console writes (YAML: or {file: PATH})"},
    {VhostUserBlk, "socket", "", "PATH", "", "the back-end's Unix socket", true},
    {VhostUserFs, "socket", "", "PATH", "", "the back-end's Unix socket (virtiofsd)", true},
    {VhostUserFs, "tag", "", "TAG", "", "mount tag the guest uses, 1 to 36 bytes", true},
    {VhostUserFs, "dax", "", "SIZE", "0", "DAX window, a multiple of 2M; 0 = none (needs transport mmio)"},
    {VhostUserFs, "queue-size", "", "N", "1024", "virtqueue size, a power of two up to 32768"},
    {VhostUser, "socket", "", "PATH", "", "the back-end's Unix socket", true},
    {VhostUser, "virtio-id", "", "N", "", "VIRTIO device ID (26 = virtio-fs, 2 = blk, ...)", true},
    {VhostUser, "queues", "", "N", "1", "number of virtqueues, 1 to 64"},
    {VhostUser, "queue-size", "", "N", "256", "virtqueue size, a power of two up to 32768"},
    {VhostUser, "shm", "", "SIZE[:SIZE...]", "",
     "shared memory regions, multiples of 4K (YAML: or a list); none = ask GET_SHMEM_CONFIG"},
    {VhostUser, "config-size", "", "N", "256", "bytes of device config space to read, 0 to 256 (0 = none)"},
    {VhostUserAny, "reconnect-timeout-ms", "", "N", "5000", "how long to wait for the back-end's socket"},
    {VhostUserAny, "peer-uid", "", "UID", "",
     "the uid the back-end must run as (checked at every connect); default: Kite's own user or root"},
    {VhostUserAny, "transport", "", "mmio|pci", "mmio",
     "virtio-mmio, or virtio-pci with MSI-X (pci: no shared memory regions)"},
};

constexpr size_t kScopes = static_cast<size_t>(VhostUserAny) + 1;

bool is_vhost_user(KeyScope scope) { return scope == VhostUserBlk || scope == VhostUserFs || scope == VhostUser; }

std::array<std::vector<std::string_view>, kScopes> build_names() {
    std::array<std::vector<std::string_view>, kScopes> names;
    for (const ConfigKey& key : kKeys) names[static_cast<size_t>(key.scope)].push_back(key.key);
    for (const ConfigKey& key : kKeys) {
        if (key.scope != VhostUserAny) continue;
        for (KeyScope scope : {VhostUserBlk, VhostUserFs, VhostUser}) names[static_cast<size_t>(scope)].push_back(key.key);
    }
    return names;
}

}  // namespace

std::span<const ConfigKey> config_keys() { return kKeys; }
std::span<const DeviceKind> device_kind_table() { return kDeviceKinds; }

std::span<const std::string_view> device_kind_names() {
    static const std::vector<std::string_view> names = [] {
        std::vector<std::string_view> list;
        for (const DeviceKind& kind : kDeviceKinds) list.push_back(kind.name);
        return list;
    }();
    return names;
}

std::span<const std::string_view> key_names(KeyScope scope) {
    static const auto names = build_names();  // thread-safe once, then read-only
    return names[static_cast<size_t>(scope)];
}

const ConfigKey* find_key(KeyScope scope, std::string_view key) {
    for (const ConfigKey& row : kKeys) {
        bool in_scope = row.scope == scope || (row.scope == VhostUserAny && is_vhost_user(scope));
        if (in_scope && row.key == key) return &row;
    }
    return nullptr;
}

std::string flag_key(const ConfigKey& key) {
    return key.scope == Memory ? "memory." + std::string(key.key) : std::string(key.key);
}

std::string device_flag_syntax(const DeviceKind& kind) {
    std::string text;
    auto add = [&](const ConfigKey& key) {
        // The first key may be given bare; so may a boolean, which then means true.
        if (text.empty()) text = key.syntax;
        else if (is_switch(key)) text += "[," + std::string(key.key) + "]";
        else if (key.required) text += "," + std::string(key.key) + "=" + std::string(key.syntax);
        else text += "[," + std::string(key.key) + "=" + std::string(key.syntax) + "]";
    };
    for (const ConfigKey& key : kKeys) {
        if (key.scope == kind.scope || (key.scope == VhostUserAny && is_vhost_user(kind.scope))) add(key);
    }
    return text;
}

}  // namespace kite

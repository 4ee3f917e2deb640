// The one table of config keys: the YAML parser takes its known keys (and unknown-key messages) from it,
// the command line its flags and their help, and config_reference() / config_reference_markdown() render
// it for `kite run --help`, `kite keys` and README.md. A key the table lacks is refused everywhere
// (fields.cpp checks the table before any setter runs), so the docs cannot miss a key the parser takes.
// The setters in vmm/config/fields.cpp hold what each value means; tests/unit/config/keys_test.cpp checks
// that both sides agree and that README.md's block is today's rendering.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace kite {

// Where a key is written: at the top level, inside `memory:`, inside one device kind's map, or in every
// vhost-user kind's map (VhostUserAny).
enum class KeyScope { Top, Memory, Block, Net, Rng, Console, VhostUserBlk, VhostUserFs, VhostUser, VhostUserAny };

struct ConfigKey {
    KeyScope scope;
    std::string_view key;            // the config-file name inside its scope
    std::string_view flag;           // `kite run` flag that sets it, "" = none (device keys: see DeviceKind)
    std::string_view syntax;         // the value as written: SIZE, PATH, BOOL, N, a|b|c, ...
    std::string_view default_value;  // as shown to users; "" = none
    std::string_view meaning;        // one line
    bool required = false;           // a device's key that must be given
};

// A device type of `devices:` and the flag that adds one.
struct DeviceKind {
    KeyScope scope;
    std::string_view name;  // as in the config file: block, net, ...
    std::string_view flag;  // --disk, --net, ...
    std::string_view meaning;  // what `--flag` adds: "a virtio-blk disk", "any VIRTIO device type ..."
};

// Every key, in the order the docs list them. Within a device kind the first key is the one a shorthand
// sets ("- block: disk.img", "--disk disk.img").
std::span<const ConfigKey> config_keys();
// Every device kind, in DeviceConfig's variant order (fields.cpp checks the count at compile time).
inline constexpr DeviceKind kDeviceKinds[] = {
    {KeyScope::Block, "block", "--disk", "a virtio-blk disk"},
    {KeyScope::Net, "net", "--net", "a virtio-net NIC on a tap"},
    {KeyScope::Rng, "rng", "--rng", "a virtio entropy device (no settings)"},
    {KeyScope::Console, "console", "--console", "a virtio console (hvc0)"},
    {KeyScope::VhostUserBlk, "vhost-user-blk", "--vhost-user-blk", "a disk served by a vhost-user back-end"},
    {KeyScope::VhostUserFs, "vhost-user-fs", "--vhost-user-fs", "virtio-fs served by a vhost-user back-end"},
    {KeyScope::VhostUser, "vhost-user", "--vhost-user", "any VIRTIO device type served by a vhost-user back-end"},
};
std::span<const DeviceKind> device_kind_table();
// The kinds' names, in the same order.
std::span<const std::string_view> device_kind_names();
// The names of the keys written in a scope, in table order; a vhost-user kind's list ends with the
// VhostUserAny keys. Top's list includes "memory" and "devices".
std::span<const std::string_view> key_names(KeyScope scope);
// The row of `key` as written in `scope` (a vhost-user kind finds the VhostUserAny keys too), or nullptr.
const ConfigKey* find_key(KeyScope scope, std::string_view key);
// A BOOL key: on the command line its bare name means true ("--disk d.img,readonly", "--vhost-trace").
inline bool is_switch(const ConfigKey& key) { return key.syntax == "BOOL"; }
// The key a `kite run` flag sets, as set_vm_field takes it ("memory.hugepages" for --hugepages).
std::string flag_key(const ConfigKey& key);
// A device flag's value syntax, from its kind's keys: "PATH[,readonly][,id=ID][,engine=...]".
std::string device_flag_syntax(const DeviceKind& kind);

// The config file format with every key, as plain text (kite run --help, kite keys).
std::string_view config_reference();
// The same table as Markdown, for README.md (kite keys --markdown).
std::string_view config_reference_markdown();

}  // namespace kite

// The rules for every config value, shared by the YAML parser and the command line so the two cannot
// drift apart: each key is set from its text form ("512M", "true", "52:54:00:12:34:56", "file:out.log")
// by one function, and the cross-field rules run once on the finished VmConfig.
//
// Keys are the config-file names. Errors carry a message without the key; the caller prefixes the key
// (YAML: "file:line:col: key: ", CLI: "--flag: ").
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>

#include "base/error.h"
#include "vmm/config/config.h"

namespace kite {

// Where values come from: relative paths are joined to base_dir (empty = leave them relative to the
// current directory, as on the command line).
struct FieldContext {
    std::string base_dir;
};

// A rule a finished config breaks, with the key path it concerns ("kernel", "devices[2].block.path").
struct ConfigIssue {
    std::string key;
    std::string message;
};
using ConfigCheck = std::expected<void, ConfigIssue>;

// Top-level keys and the keys of the memory map (size, hugepages), from the key table (vmm/config/keys.h).
std::span<const std::string_view> vm_keys();
std::span<const std::string_view> memory_keys();
// Sets one scalar top-level key ("memory" takes a size; the memory map's keys are "memory.size" and
// "memory.hugepages"). A key the table lacks is refused whatever the setters know. "devices" is not a
// scalar key: use make_device and set_device_field.
Result<void> set_vm_field(VmConfig& config, std::string_view key, std::string_view value,
                          const FieldContext& context);

// Device kinds (block, net, rng, console, vhost-user-blk, vhost-user-fs, vhost-user) and each kind's keys,
// from the key table.
std::span<const std::string_view> device_kinds();
Result<DeviceConfig> make_device(std::string_view kind);
std::span<const std::string_view> device_keys(const DeviceConfig& device);
// Sets one key of a device; a key the table lacks for its kind is refused. Lists (vhost-user "shm") take
// one or more sizes separated by ':' per call and append.
Result<void> set_device_field(DeviceConfig& device, std::string_view key, std::string_view value,
                              const FieldContext& context);
// Fails naming the first required key the device lacks (block.path, net.tap, vhost-user*.socket, ...).
// The issue's key is relative to the device ("path").
ConfigCheck check_device_complete(const DeviceConfig& device);

// The cross-field rules, once every value is set: kernel present unless restoring (when require_kernel),
// memory size a multiple of 2 MiB with hugetlbfs, block ids and vhost-user-fs tags unique.
ConfigCheck finish_config(VmConfig& config, bool require_kernel);
// Files the VM reads at start must exist now: kernel, initrd, restore (readable regular files) and disk
// images (readable; writable too unless readonly).
ConfigCheck check_config_files(const VmConfig& config);

// " (did you mean 'X'?)" for the candidate closest to word by edit distance, or "" when none is close.
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);
// "unknown key" / "unknown device type" messages with a suggestion.
std::string unknown_name_message(std::string_view what, std::string_view word,
                                 std::span<const std::string_view> candidates);

// 'text' for messages, cut after 80 bytes.
std::string quote_value(std::string_view text);
// text with control bytes written as \xNN, so a message cannot drive the terminal.
std::string printable(std::string_view text);

// path joined to context.base_dir unless it is absolute or base_dir is empty.
std::string resolve_path(std::string_view path, const FieldContext& context);

// Value parsers shared by both front-ends.
Result<std::array<uint8_t, 6>> parse_mac(std::string_view text);
Result<OutputConfig> parse_output(std::string_view text, const FieldContext& context);  // stdio|off|file:PATH
Result<bool> parse_bool(std::string_view text);  // true|false|yes|no|on|off, any case
Result<uint64_t> parse_uint(std::string_view text, uint64_t min, uint64_t max);
Result<void> check_tap_name(std::string_view name);

}  // namespace kite

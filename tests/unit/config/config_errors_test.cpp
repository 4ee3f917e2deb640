// Bad config files: every error names the file, the line and column where the problem is, and the key.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include "tests/unit/config/temp_dir.h"
#include "vmm/config/yaml.h"

using namespace kite;

namespace {

std::string error_of(std::string_view yaml) {
    auto config = parse_config(yaml, "vm.yaml", "/vm", ParseOptions{.check_files = false});
    INFO(yaml);
    REQUIRE_FALSE(config.has_value());
    return config.error().message;
}

}  // namespace

TEST_CASE("an unknown key is reported where it is written, with the closest known key") {
    CHECK(error_of("vcpus: 1\nkernal: k\n") == "vm.yaml:2:1: kernal: unknown key (did you mean 'kernel'?)");
    CHECK(error_of("kernel: k\nmemory: {size: 1G, hugepage: none}\n") ==
          "vm.yaml:2:20: memory.hugepage: unknown key (did you mean 'hugepages'?)");
    CHECK(error_of("kernel: k\ndevices:\n  - block: {path: d, redonly: true}\n") ==
          "vm.yaml:3:22: devices[0].block.redonly: unknown key (did you mean 'readonly'?)");
}

TEST_CASE("an unknown key with no close match lists the valid keys") {
    CHECK(error_of("kernel: k\nzzzzzz: 1\n").starts_with("vm.yaml:2:1: zzzzzz: unknown key (one of: vcpus memory"));
}

TEST_CASE("a value of the wrong type names the key and what was expected") {
    CHECK(error_of("kernel: [a, b]\n") == "vm.yaml:1:9: kernel: expected a value, got a list");
    CHECK(error_of("kernel: k\nvcpus: {n: 2}\n") == "vm.yaml:2:8: vcpus: expected a value, got a map");
    CHECK(error_of("kernel: k\ndevices: {block: d}\n") ==
          "vm.yaml:2:10: devices: expected a list of devices, got a map");
    CHECK(error_of("kernel: k\nvhost-trace: maybe\n") ==
          "vm.yaml:2:14: vhost-trace: expected true or false, got 'maybe'");
    CHECK(error_of("- kernel: k\n") == "vm.yaml:1:1: expected a map of settings at the top level, got a list");
}

TEST_CASE("bad sizes are rejected with the reason") {
    CHECK(error_of("kernel: k\nmemory: 12Q\n") ==
          "vm.yaml:2:9: memory: '12Q' is not a size: unknown unit (use K, M, G or T, powers of 1024; KiB, MiB, "
          "GiB, TiB also work)");
    CHECK(error_of("kernel: k\nmemory: -512M\n") == "vm.yaml:2:9: memory: '-512M' is not a size: must not be negative");
    CHECK(error_of("kernel: k\nmemory: 0\n") == "vm.yaml:2:9: memory: must not be zero");
    CHECK(error_of("kernel: k\nmemory: 99999999999999999999\n") ==
          "vm.yaml:2:9: memory: '99999999999999999999' is not a size: too large");
    CHECK(error_of("kernel: k\nmemory: 2T\n") == "vm.yaml:2:9: memory: 2T is more than 1 TiB");
    CHECK(error_of("kernel: k\nmemory: 1000\n") == "vm.yaml:2:9: memory: 1000 is not a multiple of 4 KiB");
    CHECK(error_of("kernel: k\nmemory: {size: 3M, hugepages: hugetlbfs}\n") ==
          "vm.yaml:2:10: memory.size: 3 MiB is not a multiple of 2 MiB (hugepages: hugetlbfs)");
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user-fs: {socket: s, tag: t, dax: 1M}\n") ==
          "vm.yaml:3:45: devices[0].vhost-user-fs.dax: 1M is not a multiple of 2 MiB");
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user: {socket: s, virtio-id: 1, shm: [64M, 0]}\n") ==
          "vm.yaml:3:54: devices[0].vhost-user.shm: must not be zero");
}

TEST_CASE("a missing kernel is reported unless restore is set") {
    CHECK(error_of("vcpus: 2\n") == "vm.yaml:1:1: kernel: missing required key (or set restore to resume a snapshot)");
    CHECK(error_of("") == "vm.yaml:1:1: kernel: missing required key (or set restore to resume a snapshot)");
    CHECK(error_of("kernel: \"\"\n") == "vm.yaml:1:9: kernel: must not be empty");
}

TEST_CASE("vcpus outside 1 to 254 is rejected") {
    CHECK(error_of("kernel: k\nvcpus: 0\n") == "vm.yaml:2:8: vcpus: expected a whole number from 1 to 254, got 0");
    CHECK(error_of("kernel: k\nvcpus: 255\n") == "vm.yaml:2:8: vcpus: expected a whole number from 1 to 254, got 255");
    CHECK(error_of("kernel: k\nvcpus: two\n") ==
          "vm.yaml:2:8: vcpus: expected a whole number from 1 to 254, got 'two'");
    CHECK(error_of("kernel: k\nvcpus: -1\n") == "vm.yaml:2:8: vcpus: expected a whole number from 1 to 254, got '-1'");
}

TEST_CASE("device entries must name exactly one known device type") {
    CHECK(error_of("kernel: k\ndevices:\n  - blok: {path: d}\n") ==
          "vm.yaml:3:5: devices[0].blok: unknown device type (did you mean 'block'?)");
    CHECK(error_of("kernel: k\ndevices:\n  - rng: {}\n  - {rng: {}, net: tap0}\n") ==
          "vm.yaml:4:5: devices[1]: a device entry names exactly one device type, got 2");
    CHECK(error_of("kernel: k\ndevices:\n  - [rng]\n") ==
          "vm.yaml:3:5: devices[0]: expected a device such as '- block: {path: disk.img}', got a list");
    CHECK(error_of("kernel: k\ndevices:\n  - rng: {seed: 1}\n") ==
          "vm.yaml:3:11: devices[0].rng.seed: unknown key (rng has no settings)");
}

TEST_CASE("a device without its required key names the missing key") {
    CHECK(error_of("kernel: k\ndevices:\n  - rng\n  - block: {readonly: true}\n") ==
          "vm.yaml:4:5: devices[1].block.path: missing required key");
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user-fs: {socket: /s}\n") ==
          "vm.yaml:3:5: devices[0].vhost-user-fs.tag: missing required key");
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user: {socket: /s}\n") ==
          "vm.yaml:3:5: devices[0].vhost-user.virtio-id: missing required key");
}

TEST_CASE("bad MAC addresses are rejected") {
    CHECK(error_of("kernel: k\ndevices:\n  - net: {tap: t, mac: \"52:54:00:12:34\"}\n") ==
          "vm.yaml:3:24: devices[0].net.mac: expected a MAC address like 52:54:00:12:34:56, got '52:54:00:12:34'");
    CHECK(error_of("kernel: k\ndevices:\n  - net: {tap: t, mac: \"52:54:00:12:34:zz\"}\n") ==
          "vm.yaml:3:24: devices[0].net.mac: expected a MAC address like 52:54:00:12:34:56, got '52:54:00:12:34:zz'");
    CHECK(error_of("kernel: k\ndevices:\n  - net: {tap: t, mac: \"01:00:5e:00:00:01\"}\n") ==
          "vm.yaml:3:24: devices[0].net.mac: '01:00:5e:00:00:01' is a multicast address (the first byte must be even)");
}

TEST_CASE("tap names longer than IFNAMSIZ-1 or with invalid characters are rejected") {
    CHECK(error_of("kernel: k\ndevices:\n  - net: {tap: tap0123456789abcd}\n") ==
          "vm.yaml:3:16: devices[0].net.tap: 'tap0123456789abcd' is longer than 15 bytes (IFNAMSIZ)");
    CHECK(error_of("kernel: k\ndevices:\n  - net: {tap: \"a/b\"}\n") ==
          "vm.yaml:3:16: devices[0].net.tap: 'a/b' contains a character interface names cannot have");
}

TEST_CASE("queue sizes must be powers of two within the split ring limit") {
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user-fs: {socket: s, tag: t, queue-size: 1000}\n") ==
          "vm.yaml:3:52: devices[0].vhost-user-fs.queue-size: must be a power of two, got 1000");
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user: {socket: s, virtio-id: 2, queue-size: 65536}\n") ==
          "vm.yaml:3:55: devices[0].vhost-user.queue-size: expected a whole number from 1 to 32768, got 65536");
}

TEST_CASE("duplicate keys, block ids and fs tags are rejected") {
    CHECK(error_of("kernel: k\nvcpus: 1\nvcpus: 2\n") == "vm.yaml:3:1: vcpus: given twice");
    CHECK(error_of("kernel: k\ndevices:\n  - block: {path: a, id: d}\n  - block: {path: b, id: d}\n") ==
          "vm.yaml:4:22: devices[1].block.id: duplicate id 'd' (also devices[0])");
    CHECK(error_of("kernel: k\ndevices:\n  - block: {path: a, id: abcdefghijklmnopqrstu}\n") ==
          "vm.yaml:3:26: devices[0].block.id: longer than 20 bytes");
}

TEST_CASE("malformed YAML is reported with its line") {
    CHECK(error_of("kernel: k\nvcpus: [1, 2\n").starts_with("vm.yaml:3:1: malformed YAML: "));
    CHECK(error_of("kernel: k\n  vcpus: 2\n").starts_with("vm.yaml:2:8: malformed YAML: "));
    CHECK(error_of("kernel: k\n---\nvcpus: 2\n") == "vm.yaml:2:1: more than one YAML document (remove the '---')");
}

TEST_CASE("a stray comma at document level is an error, not an endless parse") {
    CHECK(error_of(",kernel: k\n") == "vm.yaml:1:1: malformed YAML: unexpected ',' outside a [list] or {map}");
    CHECK(error_of("\"kernel\",") == "vm.yaml:1:9: malformed YAML: unexpected ',' outside a [list] or {map}");
    CHECK(error_of("&x ,") == "vm.yaml:1:4: malformed YAML: unexpected ',' outside a [list] or {map}");
}

TEST_CASE("a NUL byte inside a value is rejected") {
    CHECK(error_of("kernel: \"vm\\0linuz\"\n") == "vm.yaml:1:9: kernel: must not contain a NUL byte");
}

TEST_CASE("files named by the config must exist when checked") {
    test::TempDir dir;
    dir.write("vmlinuz", "kernel");
    dir.write("initrd.gz", "initrd");
    ParseOptions check{.check_files = true};

    auto no_kernel = parse_config("vcpus: 1\nkernel: missing.bin\n", "vm.yaml", dir.path(), check);
    auto no_initrd = parse_config("kernel: vmlinuz\ninitrd: nope.gz\n", "vm.yaml", dir.path(), check);
    auto no_disk = parse_config("kernel: vmlinuz\ndevices:\n  - block: {path: gone.img}\n", "vm.yaml", dir.path(), check);
    auto dir_kernel = parse_config("kernel: .\n", "vm.yaml", dir.path(), check);

    CHECK(no_kernel.error().message == "vm.yaml:2:1: kernel: " + dir.path() + "/missing.bin: No such file or directory");
    CHECK(no_initrd.error().message == "vm.yaml:2:1: initrd: " + dir.path() + "/nope.gz: No such file or directory");
    CHECK(no_disk.error().message ==
          "vm.yaml:3:13: devices[0].block.path: " + dir.path() + "/gone.img: No such file or directory");
    CHECK(dir_kernel.error().message == "vm.yaml:1:1: kernel: " + dir.path() + "/.: not a regular file");
}

TEST_CASE("a missing config file is reported with its path") {
    auto config = load_config_file("/nonexistent/kite.yaml");

    CHECK(config.error().message == "/nonexistent/kite.yaml: No such file or directory");
}

TEST_CASE("messages escape control bytes and shorten very long values") {
    std::string long_value(200, 'x');

    CHECK(error_of("kernel: k\nlog-level: \"\\e[31m\"\n") ==
          "vm.yaml:2:12: log-level: unknown log level '\\x1b[31m' (one of: trace debug info warn error critical off)");
    CHECK(error_of("kernel: k\nvcpus: " + long_value + "\n") ==
          "vm.yaml:2:8: vcpus: expected a whole number from 1 to 254, got '" + std::string(80, 'x') + "...'");
}

TEST_CASE("virtio-discovery takes acpi or cmdline") {
    auto config = parse_config("kernel: k\nvirtio-discovery: cmdline\n", "vm.yaml", "/vm", ParseOptions{.check_files = false});
    REQUIRE(config.has_value());
    CHECK(config->boot.virtio_discovery == VirtioDiscovery::Cmdline);
    CHECK(error_of("kernel: k\nvirtio-discovery: dsdt\n") == "vm.yaml:2:19: virtio-discovery: expected acpi or cmdline, got 'dsdt'");
}

TEST_CASE("seccomp takes on, log or off") {
    auto config = parse_config("kernel: k\nseccomp: off\n", "vm.yaml", "/vm", ParseOptions{.check_files = false});
    REQUIRE(config.has_value());
    CHECK(config->seccomp == SeccompMode::Off);
    CHECK(error_of("kernel: k\nseccomp: yes\n") == "vm.yaml:2:10: seccomp: expected on, log or off, got 'yes'");
}

TEST_CASE("memory.shared is not a key: guest RAM is always shared") {
    CHECK(error_of("kernel: k\nmemory: {size: 1G, shared: true}\n").starts_with("vm.yaml:2:20: memory.shared: unknown key"));
}

TEST_CASE("a vhost-user transport other than mmio or pci, and pci with shared memory, are refused") {
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user-blk: {socket: s, transport: usb}\n") ==
          "vm.yaml:3:44: devices[0].vhost-user-blk.transport: expected mmio or pci, got 'usb'");
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user-fs: {socket: s, tag: t, dax: 2M, transport: pci}\n") ==
          "vm.yaml:3:49: devices[0].vhost-user-fs.transport: pci has no shared memory regions: a DAX window needs mmio");
    CHECK(error_of("kernel: k\ndevices:\n  - vhost-user: {socket: s, virtio-id: 1, shm: [64M], transport: pci}\n") ==
          "vm.yaml:3:55: devices[0].vhost-user.transport: pci has no shared memory regions: shm needs mmio");
    auto fs = parse_config("kernel: k\ndevices:\n  - vhost-user-fs: {socket: s, tag: t, transport: pci}\n", "vm.yaml",
                           "/vm", ParseOptions{.check_files = false});
    CHECK(fs.has_value());
}

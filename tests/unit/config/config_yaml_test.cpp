// Well-formed config files produce the expected VmConfig.
#include <doctest/doctest.h>

#include "tests/unit/config/temp_dir.h"
#include "vmm/config/fields.h"
#include "vmm/config/yaml.h"

using namespace kite;

namespace {

constexpr ParseOptions kNoFiles{.check_files = false, .require_kernel = true};

VmConfig parse_ok(std::string_view yaml, const std::string& base_dir = "/vm") {
    auto config = parse_config(yaml, "vm.yaml", base_dir, kNoFiles);
    INFO(yaml);
    REQUIRE_MESSAGE(config.has_value(), config.error().message);
    return *config;
}

}  // namespace

TEST_CASE("a file with only a kernel gets the documented defaults") {
    VmConfig config = parse_ok("kernel: /boot/vmlinuz\n");

    CHECK(config.boot.kernel == "/boot/vmlinuz");
    CHECK(config.vcpus == 1);
    CHECK(config.memory.size == 512ull << 20);
    CHECK(config.memory.hugepages == ConfigHugePages::Auto);
    CHECK(config.boot.protocol == BootProtocol::Auto);
    CHECK(config.serial.mode == OutputConfig::Mode::Stdio);
    CHECK(config.devices.empty());
    CHECK(config.log_level == "warn");
    CHECK_FALSE(config.vhost_trace);
    CHECK(config.control_socket.empty());
    CHECK(config.restore.empty());
}

TEST_CASE("top-level scalar keys fill their fields and relative paths start at the file's folder") {
    VmConfig config = parse_ok(R"(
vcpus: 2
memory: 1G
kernel: ../assets/vmlinuz
initrd: /abs/initrd.gz
cmdline: "console=ttyS0 quiet"
boot-protocol: pvh
serial: off
log-level: info
vhost-trace: true
api-socket: kite.sock
restore: snap.bin
)");

    CHECK(config.vcpus == 2);
    CHECK(config.memory.size == 1ull << 30);
    CHECK(config.boot.kernel == "/vm/../assets/vmlinuz");
    CHECK(config.boot.initrd == "/abs/initrd.gz");
    CHECK(config.boot.cmdline == "console=ttyS0 quiet");
    CHECK(config.boot.protocol == BootProtocol::Pvh);
    CHECK(config.serial.mode == OutputConfig::Mode::Off);
    CHECK(config.log_level == "info");
    CHECK(config.vhost_trace);
    CHECK(config.control_socket == "/vm/kite.sock");
    CHECK(config.restore == "/vm/snap.bin");
}

TEST_CASE("memory as a map sets size and huge pages") {
    CHECK(parse_ok("kernel: k\nmemory: {size: 1G, hugepages: auto}\n").memory.hugepages == ConfigHugePages::Auto);
    CHECK(parse_ok("kernel: k\nmemory: {size: 1G, hugepages: none}\n").memory.hugepages == ConfigHugePages::None);
    VmConfig config = parse_ok("kernel: k\nmemory: {size: 2G, hugepages: hugetlbfs}\n");

    CHECK(config.memory.size == 2ull << 30);
    CHECK(config.memory.hugepages == ConfigHugePages::Hugetlbfs2M);
}

TEST_CASE("booleans accept the usual YAML spellings in any case") {
    for (const char* spelling : {"Yes", "ON", "true", "TRUE"})
        CHECK_MESSAGE(parse_ok(std::string("kernel: k\nvhost-trace: ") + spelling + "\n").vhost_trace, spelling);
    for (const char* spelling : {"FALSE", "off", "no", "No"})
        CHECK_MESSAGE(!parse_ok(std::string("kernel: k\nvhost-trace: ") + spelling + "\n").vhost_trace, spelling);
}

TEST_CASE("serial to a file resolves the path against the file's folder") {
    VmConfig map_form = parse_ok("kernel: k\nserial: {file: serial.log}\n");
    VmConfig string_form = parse_ok("kernel: k\nserial: file:/var/log/serial.log\n");

    CHECK(map_form.serial.mode == OutputConfig::Mode::File);
    CHECK(map_form.serial.path == "/vm/serial.log");
    CHECK(string_form.serial.path == "/var/log/serial.log");
}

TEST_CASE("every device type is read in order with its settings") {
    VmConfig config = parse_ok(R"(
kernel: k
devices:
  - block: {path: disk.img, readonly: true, id: disk0, engine: io_uring}
  - net: {tap: tap0, mac: "52:54:00:12:34:56"}
  - rng: {}
  - console: {output: {file: console.log}}
  - vhost-user-blk: {socket: /tmp/vub.sock, reconnect-timeout-ms: 100}
  - vhost-user-fs: {socket: /tmp/vfs.sock, tag: hostfs, dax: 1G}
  - vhost-user: {socket: /tmp/x.sock, virtio-id: 26, queues: 2, queue-size: 128, shm: [64M, 4K]}
)");

    REQUIRE(config.devices.size() == 7);
    const auto& block = std::get<BlockConfig>(config.devices[0]);
    CHECK(block.path == "/vm/disk.img");
    CHECK(block.readonly);
    CHECK(block.id == "disk0");
    CHECK(block.engine == BlockConfig::Engine::IoUring);
    const auto& net = std::get<NetConfig>(config.devices[1]);
    CHECK(net.tap == "tap0");
    CHECK(net.mac == std::array<uint8_t, 6>{0x52, 0x54, 0x00, 0x12, 0x34, 0x56});
    CHECK(std::holds_alternative<RngConfig>(config.devices[2]));
    const auto& console = std::get<ConsoleConfig>(config.devices[3]);
    CHECK(console.output.mode == OutputConfig::Mode::File);
    CHECK(console.output.path == "/vm/console.log");
    const auto& vub = std::get<VhostUserBlkConfig>(config.devices[4]);
    CHECK(vub.socket == "/tmp/vub.sock");
    CHECK(vub.common.reconnect_timeout_ms == 100);
    const auto& fs = std::get<VhostUserFsConfig>(config.devices[5]);
    CHECK(fs.tag == "hostfs");
    CHECK(fs.dax_size == 1ull << 30);
    CHECK(fs.queue_size == 1024);
    CHECK(fs.common.reconnect_timeout_ms == 5000);
    const auto& generic = std::get<VhostUserGenericConfig>(config.devices[6]);
    CHECK(generic.virtio_id == 26);
    CHECK(generic.num_queues == 2);
    CHECK(generic.queue_size == 128);
    CHECK(generic.shm_sizes == std::vector<uint64_t>{64ull << 20, 4096});
}

TEST_CASE("device shorthands set the device's main key") {
    VmConfig config = parse_ok(R"(
kernel: k
devices:
  - block: /disks/a.img
  - net: tap1
  - rng
  - console: off
  - vhost-user-blk: /tmp/vub.sock
)");

    REQUIRE(config.devices.size() == 5);
    CHECK(std::get<BlockConfig>(config.devices[0]).path == "/disks/a.img");
    CHECK(std::get<NetConfig>(config.devices[1]).tap == "tap1");
    CHECK_FALSE(std::get<NetConfig>(config.devices[1]).mac.has_value());
    CHECK(std::holds_alternative<RngConfig>(config.devices[2]));
    CHECK(std::get<ConsoleConfig>(config.devices[3]).output.mode == OutputConfig::Mode::Off);
    CHECK(std::get<VhostUserBlkConfig>(config.devices[4]).socket == "/tmp/vub.sock");
}

TEST_CASE("restore replaces the kernel requirement") {
    VmConfig config = parse_ok("restore: /snapshots/vm.snap\n");

    CHECK(config.restore == "/snapshots/vm.snap");
    CHECK(config.boot.kernel.empty());
}

TEST_CASE("an empty base folder leaves relative paths relative to the current directory") {
    VmConfig config = parse_ok("kernel: vmlinuz\ndevices: [block: d.img]\n", "");

    CHECK(config.boot.kernel == "vmlinuz");
    CHECK(std::get<BlockConfig>(config.devices[0]).path == "d.img");
}

TEST_CASE("load_config_file resolves paths against the file's folder and checks they exist") {
    test::TempDir dir;
    dir.write("vmlinuz", "kernel bytes");
    dir.write("disk.img", "disk bytes");
    std::string path = dir.write("vm.yaml", "kernel: vmlinuz\ndevices:\n  - block: {path: disk.img}\n");

    auto config = load_config_file(path);

    REQUIRE_MESSAGE(config.has_value(), config.error().message);
    CHECK(config->boot.kernel == dir.path() + "/vmlinuz");
    CHECK(std::get<BlockConfig>(config->devices[0]).path == dir.path() + "/disk.img");
}

TEST_CASE("config_reference documents every top-level key") {
    std::string_view reference = config_reference();

    for (std::string_view key : vm_keys()) {
        CHECK_MESSAGE(reference.find(std::string(key) + ":") != std::string_view::npos, key);
    }
    for (std::string_view kind : device_kinds()) {
        CHECK_MESSAGE(reference.find("- " + std::string(kind)) != std::string_view::npos, kind);
    }
}

TEST_CASE("peer-uid names the only user a vhost-user back-end may run as; unset leaves the default") {
    VmConfig config = parse_ok(R"(
kernel: k
devices:
  - vhost-user-blk: {socket: /tmp/a.sock, peer-uid: 1000}
  - vhost-user-fs: {socket: /tmp/b.sock, tag: t}
)");
    auto bad = parse_config("kernel: k\ndevices:\n  - vhost-user-blk: {socket: /s, peer-uid: 4294967295}\n", "vm.yaml",
                            "/vm", kNoFiles);

    CHECK(std::get<VhostUserBlkConfig>(config.devices[0]).common.peer_uid == 1000u);
    CHECK_FALSE(std::get<VhostUserFsConfig>(config.devices[1]).common.peer_uid.has_value());
    CHECK_FALSE(bad.has_value());
}

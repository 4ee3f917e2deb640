// The command line: subcommands, flags over the config file, device flags, errors naming the flag.
#include <doctest/doctest.h>

#include <filesystem>
#include <vector>

#include "tests/unit/config/temp_dir.h"
#include "vmm/config/cli.h"

using namespace kite;

namespace {

Result<CliCommand> cli(std::vector<std::string> args) {
    args.insert(args.begin(), "kite");
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    return parse_cli(static_cast<int>(args.size()), argv.data());
}

CliCommand cli_ok(std::vector<std::string> args) {
    auto command = cli(std::move(args));
    REQUIRE_MESSAGE(command.has_value(), command.error().message);
    return *command;
}

std::string cli_error(std::vector<std::string> args) {
    auto command = cli(std::move(args));
    REQUIRE_FALSE(command.has_value());
    return command.error().message;
}

// A folder with a kernel and a disk image that the checks accept.
struct Assets {
    test::TempDir dir;
    std::string kernel = dir.write("vmlinuz", "kernel");
    std::string disk = dir.write("disk.img", "disk");
};

}  // namespace

TEST_CASE("--version prints the program name and version") {
    CliCommand command = cli_ok({"--version"});

    CHECK(command.kind == CliCommand::Kind::Version);
    CHECK(command.output.starts_with("kite "));
    CHECK(command.output.size() > 5);
}

TEST_CASE("--help lists the subcommands and run --help documents flags and the file format") {
    CliCommand top = cli_ok({"--help"});
    CliCommand run = cli_ok({"run", "--help"});

    CHECK(top.kind == CliCommand::Kind::Help);
    CHECK(top.output.find("validate") != std::string::npos);
    CHECK(top.output.find("snapshot") != std::string::npos);
    CHECK(run.kind == CliCommand::Kind::Help);
    CHECK(run.output.find("--vhost-user-fs") != std::string::npos);
    CHECK(run.output.find("Config file (YAML)") != std::string::npos);
}

TEST_CASE("no subcommand and unknown flags are errors naming the problem") {
    CHECK(cli_error({}).starts_with("a subcommand is required"));
    CHECK(cli_error({"run", "--bogus"}).find("--bogus") != std::string::npos);
    CHECK(cli_error({"frobnicate"}).starts_with("unknown command 'frobnicate' (one of: run validate"));
    CHECK(cli_error({"valdate", "x.yaml"}) == "unknown command 'valdate' (did you mean 'validate'?)");
}

TEST_CASE("run from flags alone fills every scalar field") {
    Assets assets;

    CliCommand command = cli_ok({"run", "--kernel", assets.kernel, "--memory", "1G", "--vcpus", "4", "--serial", "off",
                                 "--cmdline", "console=ttyS0", "--log-level", "debug", "--boot-protocol", "bzimage",
                                 "--hugepages", "transparent", "--vhost-trace", "--api-socket", "/tmp/k.sock"});

    CHECK(command.kind == CliCommand::Kind::Run);
    CHECK(command.config_path.empty());
    CHECK(command.config.boot.kernel == assets.kernel);
    CHECK(command.config.memory.size == 1ull << 30);
    CHECK(command.config.vcpus == 4);
    CHECK(command.config.serial.mode == OutputConfig::Mode::Off);
    CHECK(command.config.boot.cmdline == "console=ttyS0");
    CHECK(command.config.log_level == "debug");
    CHECK(command.config.boot.protocol == BootProtocol::BzImage);
    CHECK(command.config.memory.hugepages == ConfigHugePages::Transparent);
    CHECK(command.config.vhost_trace);
    CHECK(command.config.control_socket == "/tmp/k.sock");
}

TEST_CASE("flags override the file's values and device flags append to its devices") {
    Assets assets;
    std::string file = assets.dir.write("vm.yaml", "kernel: vmlinuz\nvcpus: 2\nmemory: 256M\ncmdline: quiet\n"
                                                   "devices:\n  - rng\n");

    CliCommand command = cli_ok({"run", file, "--vcpus", "4", "--disk", assets.disk + ",readonly,id=d0",
                                 "--net", "tap=tap0,mac=52:54:00:00:00:01"});

    CHECK(command.config_path == file);
    CHECK(command.config.vcpus == 4);
    CHECK(command.config.memory.size == 256ull << 20);
    CHECK(command.config.boot.cmdline == "quiet");
    REQUIRE(command.config.devices.size() == 3);
    CHECK(std::holds_alternative<RngConfig>(command.config.devices[0]));
    const auto& block = std::get<BlockConfig>(command.config.devices[1]);
    CHECK(block.path == assets.disk);
    CHECK(block.readonly);
    CHECK(block.id == "d0");
    const auto& net = std::get<NetConfig>(command.config.devices[2]);
    CHECK(net.tap == "tap0");
    CHECK(net.mac == std::array<uint8_t, 6>{0x52, 0x54, 0, 0, 0, 1});
}

TEST_CASE("device flags keep their command-line order across kinds") {
    Assets assets;

    CliCommand command = cli_ok({"run", "--kernel", assets.kernel, "--net", "tap1", "--disk", assets.disk + ",readonly",
                                 "--rng", "--console", "file:/tmp/console.log", "--disk", assets.disk + ",readonly"});

    REQUIRE(command.config.devices.size() == 5);
    CHECK(std::holds_alternative<NetConfig>(command.config.devices[0]));
    CHECK(std::holds_alternative<BlockConfig>(command.config.devices[1]));
    CHECK(std::holds_alternative<RngConfig>(command.config.devices[2]));
    CHECK(std::get<ConsoleConfig>(command.config.devices[3]).output.path == "/tmp/console.log");
    CHECK(std::holds_alternative<BlockConfig>(command.config.devices[4]));
}

TEST_CASE("vhost-user flags parse their settings") {
    Assets assets;

    CliCommand command = cli_ok({"run", "--kernel", assets.kernel, "--vhost-user-blk", "socket=/tmp/vub.sock",
                                 "--vhost-user-fs", "socket=/tmp/vfs.sock,tag=hostfs,dax=1G",
                                 "--vhost-user", "socket=/tmp/x.sock,virtio-id=26,queues=2,queue-size=64,shm=64M:128M,config-size=40"});

    REQUIRE(command.config.devices.size() == 3);
    CHECK(std::get<VhostUserBlkConfig>(command.config.devices[0]).socket == "/tmp/vub.sock");
    const auto& fs = std::get<VhostUserFsConfig>(command.config.devices[1]);
    CHECK(fs.tag == "hostfs");
    CHECK(fs.dax_size == 1ull << 30);
    const auto& generic = std::get<VhostUserGenericConfig>(command.config.devices[2]);
    CHECK(generic.virtio_id == 26);
    CHECK(generic.num_queues == 2);
    CHECK(generic.queue_size == 64);
    CHECK(generic.shm_sizes == std::vector<uint64_t>{64ull << 20, 128ull << 20});
    CHECK(generic.config_size == 40);
}

TEST_CASE("vhost-user config-size is bounded by vhost-user's 256-byte config payload") {
    Assets assets;
    CHECK(cli_ok({"run", "--kernel", assets.kernel, "--vhost-user", "socket=/tmp/x.sock,virtio-id=9"})
              .config.devices.size() == 1);
    auto too_big = cli({"run", "--kernel", assets.kernel, "--vhost-user", "socket=/tmp/x.sock,virtio-id=9,config-size=257"});
    REQUIRE_FALSE(too_big.has_value());
    CHECK(too_big.error().message.find("config-size") != std::string::npos);
}

TEST_CASE("bad flag values are errors naming the flag and key") {
    Assets assets;
    std::string kernel = assets.kernel;

    CHECK(cli_error({"run", "--kernel", kernel, "--vcpus", "0"}) == "--vcpus: expected a whole number from 1 to 254, got 0");
    CHECK(cli_error({"run", "--kernel", kernel, "--memory", "1.5G"}) ==
          "--memory: '1.5G' is not a size: fractions are not supported (write 1536M, not 1.5G)");
    CHECK(cli_error({"run", "--kernel", kernel, "--disk", assets.disk + ",redonly"}) ==
          "--disk: redonly: unknown key (did you mean 'readonly'?)");
    CHECK(cli_error({"run", "--kernel", kernel, "--net", "mac=52:54:00:00:00:01"}) == "--net: tap: missing required key");
    CHECK(cli_error({"run", "--kernel", kernel, "--net", "tap=t,mac=ff:ff:ff:ff:ff:ff"}) ==
          "--net: mac: 'ff:ff:ff:ff:ff:ff' is a multicast address (the first byte must be even)");
    CHECK(cli_error({"run", "--kernel", kernel, "--vhost-user-fs", "socket=/s,tag"}) == "--vhost-user-fs: tag: expected tag=VALUE");
    CHECK(cli_error({"run", "--kernel", kernel, "--disk", assets.disk + ",,readonly"}) ==
          "--disk: empty item in '" + assets.disk + ",,readonly'");
    CHECK(cli_error({"run", "--kernel", kernel, "--serial", "tty"}).starts_with("--serial: expected stdio, off or a file"));
    CHECK(cli_error({"run", "--kernel", kernel, "--hugepages", "huge"}) ==
          "--hugepages: expected auto, none, transparent or hugetlbfs, got 'huge'");
}

TEST_CASE("run without a kernel or with a missing file fails before anything starts") {
    Assets assets;

    CHECK(cli_error({"run", "--vcpus", "2"}).starts_with("no kernel: give one in the config file or with --kernel"));
    CHECK(cli_error({"run", "--kernel", "/nonexistent/vmlinuz"}) ==
          "kernel: /nonexistent/vmlinuz: No such file or directory");
    CHECK(cli_error({"run", "--kernel", assets.kernel, "--disk", "/nonexistent.img"}) ==
          "devices[0].block.path: /nonexistent.img: No such file or directory");
}

TEST_CASE("--kernel replaces a file's kernel that does not exist") {
    Assets assets;
    std::string file = assets.dir.write("vm.yaml", "kernel: missing-vmlinuz\n");

    CliCommand command = cli_ok({"run", file, "--kernel", assets.kernel});

    CHECK(command.config.boot.kernel == assets.kernel);
}

TEST_CASE("run with a bad config file reports the file's line") {
    Assets assets;
    std::string file = assets.dir.write("vm.yaml", "kernel: vmlinuz\nvcpus: 300\n");

    CHECK(cli_error({"run", file}) == file + ":2:8: vcpus: expected a whole number from 1 to 254, got 300");
}

TEST_CASE("restore runs without a kernel") {
    Assets assets;
    std::string snapshot = assets.dir.write("vm.snap", "snapshot");

    CliCommand command = cli_ok({"run", "--restore", snapshot});

    CHECK(command.config.restore == snapshot);
}

TEST_CASE("validate reports ok for a good file and the located error for a bad one") {
    Assets assets;
    std::string good = assets.dir.write("good.yaml", "kernel: vmlinuz\ndevices: [block: disk.img]\n");
    std::string bad = assets.dir.write("bad.yaml", "kernel: vmlinuz\ndevices: [block: nodisk.img]\n");

    CliCommand command = cli_ok({"validate", good});

    CHECK(command.kind == CliCommand::Kind::Validate);
    CHECK(command.output == good + ": ok");
    CHECK(command.config_path == good);
    CHECK(cli_error({"validate", bad}) ==
          bad + ":2:11: devices[0].block.path: " + assets.dir.path() + "/nodisk.img: No such file or directory");
    CHECK(cli_error({"validate"}).find("config") != std::string::npos);
}

TEST_CASE("control commands carry their arguments and the API socket") {
    CliCommand pause = cli_ok({"pause", "--api-socket", "/tmp/k.sock"});
    CliCommand snapshot = cli_ok({"snapshot", "vm.snap", "--api-socket", "/tmp/k.sock"});
    CliCommand status = cli_ok({"status", "--api-socket", "/tmp/k.sock"});

    CHECK(pause.kind == CliCommand::Kind::Control);
    CHECK(pause.control_args == std::vector<std::string>{"pause"});
    CHECK(pause.config.control_socket == "/tmp/k.sock");
    CHECK(snapshot.control_args ==
          std::vector<std::string>{"snapshot", (std::filesystem::current_path() / "vm.snap").string()});
    CHECK(status.control_args == std::vector<std::string>{"status"});
    CHECK(cli_error({"shutdown"}).find("--api-socket") != std::string::npos);
    CHECK(cli_error({"snapshot", "--api-socket", "/tmp/k.sock"}).find("file") != std::string::npos);
}

TEST_CASE("--virtio-discovery picks ACPI or command-line discovery and refuses anything else") {
    Assets assets;
    CHECK(cli_ok({"run", "--kernel", assets.kernel}).config.boot.virtio_discovery == VirtioDiscovery::Acpi);
    CHECK(cli_ok({"run", "--kernel", assets.kernel, "--virtio-discovery", "cmdline"}).config.boot.virtio_discovery ==
          VirtioDiscovery::Cmdline);
    auto bad = cli({"run", "--kernel", assets.kernel, "--virtio-discovery", "pci"});
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("expected acpi or cmdline") != std::string::npos);
}

TEST_CASE("--seccomp is on by default, takes log or off, and refuses anything else") {
    Assets assets;
    CHECK(cli_ok({"run", "--kernel", assets.kernel}).config.seccomp == SeccompMode::On);
    CHECK(cli_ok({"run", "--kernel", assets.kernel, "--seccomp", "log"}).config.seccomp == SeccompMode::Log);
    CHECK(cli_ok({"run", "--kernel", assets.kernel, "--seccomp", "off"}).config.seccomp == SeccompMode::Off);
    auto bad = cli({"run", "--kernel", assets.kernel, "--seccomp", "strict"});
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("expected on, log or off") != std::string::npos);
}

TEST_CASE("vhost-user devices pick virtio-mmio unless transport=pci") {
    Assets assets;
    CliCommand command = cli_ok({"run", "--kernel", assets.kernel, "--vhost-user-blk", "socket=/tmp/a.sock",
                                 "--vhost-user-blk", "socket=/tmp/b.sock,transport=pci", "--vhost-user",
                                 "socket=/tmp/x.sock,virtio-id=9,transport=mmio"});
    REQUIRE(command.config.devices.size() == 3);
    CHECK(std::get<VhostUserBlkConfig>(command.config.devices[0]).common.transport == VhostUserCommon::Transport::Mmio);
    CHECK(std::get<VhostUserBlkConfig>(command.config.devices[1]).common.transport == VhostUserCommon::Transport::Pci);
    CHECK(std::get<VhostUserGenericConfig>(command.config.devices[2]).common.transport ==
          VhostUserCommon::Transport::Mmio);
}

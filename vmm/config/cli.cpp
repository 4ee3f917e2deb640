// Command-line parsing with CLI11. CLI11 only collects strings here; every value goes through the shared
// setters of vmm/config/fields.h, so the rules and messages match the YAML file's.
#include "vmm/config/cli.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <map>

#include "vmm/config/fields.h"
#include "vmm/config/yaml.h"

namespace kite {

namespace {

#ifdef KITE_VERSION
constexpr std::string_view kVersion = KITE_VERSION;
#else
constexpr std::string_view kVersion = "0.1.0";
#endif

struct ScalarFlag {
    const char* flag;
    const char* key;  // config key set from it
    const char* type;
    const char* help;
};
constexpr ScalarFlag kScalarFlags[] = {
    {"--kernel", "kernel", "PATH", "Kernel image (bzImage or PVH ELF)"},
    {"--initrd", "initrd", "PATH", "Initial ramdisk"},
    {"--cmdline", "cmdline", "TEXT", "Kernel command line"},
    {"--memory", "memory", "SIZE", "Guest RAM: 512M, 1G, ..."},
    {"--hugepages", "memory.hugepages", "MODE", "auto | none | transparent | hugetlbfs"},
    {"--vcpus", "vcpus", "N", "Number of vCPUs, 1 to 254"},
    {"--serial", "serial", "OUTPUT", "Serial port output: stdio | off | file:PATH"},
    {"--boot-protocol", "boot-protocol", "PROTOCOL", "auto | bzimage | pvh"},
    {"--virtio-discovery", "virtio-discovery", "MODE", "acpi | cmdline (virtio_mmio.device= parameters)"},
    {"--api-socket", "api-socket", "PATH", "Serve the JSON control API on this socket"},
    {"--restore", "restore", "FILE", "Resume this snapshot instead of booting"},
    {"--log-level", "log-level", "LEVEL", "trace | debug | info | warn | error | critical | off"},
    {"--seccomp", "seccomp", "MODE", "on | log | off: the system-call filter (default on)"},
};

struct DeviceFlag {
    const char* flag;
    const char* kind;  // device type, as in the config file
    const char* help;
    const char* type = "SPEC";
};
constexpr DeviceFlag kDeviceFlags[] = {
    {"--disk", "block", "Add a disk: PATH[,readonly][,id=ID][,engine=auto|io_uring|sync]"},
    {"--net", "net", "Add a NIC: tap=NAME[,mac=52:54:00:12:34:56]"},
    {"--console", "console", "Add a virtio console: stdio | off | file:PATH"},
    {"--vhost-user-blk", "vhost-user-blk", "Add a vhost-user disk: socket=PATH"},
    {"--vhost-user-fs", "vhost-user-fs", "Add virtio-fs: socket=PATH,tag=TAG[,dax=1G][,queue-size=N]"},
    {"--vhost-user", "vhost-user",
     "Add any vhost-user device: socket=PATH,virtio-id=N[,queues=N][,queue-size=N][,shm=64M:128M][,config-size=N]"},
};
constexpr DeviceFlag kRngFlag = {"--rng", "rng", "Add a virtio entropy device"};

constexpr std::string_view kControlCommands[] = {"pause", "resume", "snapshot", "shutdown", "status"};
constexpr std::string_view kCommands[] = {"run", "validate", "pause", "resume", "snapshot", "shutdown", "status"};

// A device flag as given, in command-line order.
struct DeviceArg {
    const DeviceFlag* flag;
    std::string value;
};

std::string flag_error(std::string_view flag, std::string_view key, std::string_view message) {
    std::string text(flag);
    text += ": ";
    if (!key.empty()) {
        text += key;
        text += ": ";
    }
    text += message;
    return text;
}

// "PATH,readonly,id=x": items are KEY=VALUE; a bare first item is the device's main key (path, tap,
// output, socket), a bare later item is a boolean set to true (readonly).
Result<DeviceConfig> device_from_flag(const DeviceArg& arg) {
    auto device = make_device(arg.flag->kind);
    if (!device) return device;
    std::span<const std::string_view> keys = device_keys(*device);
    std::string_view text = arg.value;
    for (size_t start = 0; !text.empty() && start <= text.size();) {
        size_t comma = std::min(text.find(',', start), text.size());
        std::string_view item = text.substr(start, comma - start);
        bool first = start == 0;
        start = comma + 1;
        if (item.empty()) return fail(flag_error(arg.flag->flag, "", "empty item in " + quote_value(arg.value)));
        size_t equals = item.find('=');
        std::string_view key = item.substr(0, equals);
        std::string_view value = equals == std::string_view::npos ? std::string_view() : item.substr(equals + 1);
        if (equals == std::string_view::npos && first && !keys.empty()) {
            key = keys[0];
            value = item;
        } else if (equals == std::string_view::npos) {
            bool known = std::find(keys.begin(), keys.end(), key) != keys.end();
            if (known && key != "readonly") {
                return fail(flag_error(arg.flag->flag, key, "expected " + std::string(key) + "=VALUE"));
            }
            value = "true";
        }
        if (auto ok = set_device_field(*device, key, value, {}); !ok) {
            return fail(flag_error(arg.flag->flag, key, ok.error().message));
        }
    }
    if (auto check = check_device_complete(*device); !check) {
        return fail(flag_error(arg.flag->flag, check.error().key, check.error().message));
    }
    return device;
}

// The config file (if any), then scalar flags over it, then device flags appended, then the final rules.
Result<VmConfig> build_run_config(const std::string& config_path, const std::map<std::string, std::string>& scalars,
                                  const std::map<std::string, CLI::Option*>& options, bool vhost_trace,
                                  const std::vector<DeviceArg>& devices) {
    VmConfig config;
    if (!config_path.empty()) {
        // Files are checked once the flags are in, so a --kernel override does not need the file's kernel.
        auto loaded = load_config_file(config_path, ParseOptions{.check_files = false, .require_kernel = false});
        if (!loaded) return loaded;
        config = std::move(*loaded);
    }
    for (const ScalarFlag& flag : kScalarFlags) {
        if (options.at(flag.flag)->count() == 0) continue;
        if (auto ok = set_vm_field(config, flag.key, scalars.at(flag.flag), {}); !ok) {
            return fail(flag_error(flag.flag, "", ok.error().message));
        }
    }
    if (vhost_trace) config.vhost_trace = true;
    for (const DeviceArg& arg : devices) {
        auto device = device_from_flag(arg);
        if (!device) return std::unexpected(device.error());
        config.devices.push_back(std::move(*device));
    }
    if (config.boot.kernel.empty() && config.restore.empty()) {
        return fail("no kernel: give one in the config file or with --kernel (or resume a snapshot with --restore)");
    }
    if (auto check = finish_config(config, true); !check) return fail(check.error().key + ": " + check.error().message);
    if (auto check = check_config_files(config); !check) return fail(check.error().key + ": " + check.error().message);
    return config;
}

Result<CliCommand> parse_command(int argc, char** argv) {
    std::string version = "kite " + std::string(kVersion);
    CLI::App app{"Kite: a minimal KVM virtual machine monitor", "kite"};
    app.set_version_flag("--version", version);
    app.require_subcommand(1);
    app.footer("Run 'kite run --help' for the VM flags and the config file format.");

    CLI::App* run = app.add_subcommand("run", "Boot a VM from a config file and/or flags (flags win)");
    std::string config_path;
    run->add_option("config", config_path, "YAML config file")->type_name("FILE");
    std::map<std::string, std::string> scalars;
    std::map<std::string, CLI::Option*> options;
    for (const ScalarFlag& flag : kScalarFlags) options[flag.flag] = run->add_option(flag.flag, scalars[flag.flag], flag.help)->type_name(flag.type);
    bool vhost_trace = false;
    run->add_flag("--vhost-trace", vhost_trace, "Print every vhost-user message, decoded");
    std::vector<DeviceArg> devices;
    for (const DeviceFlag& flag : kDeviceFlags) {
        run->add_option_function<std::string>(flag.flag, [&devices, &flag](const std::string& value) {
               devices.push_back({&flag, value});
           }, flag.help)->type_name(flag.type)->trigger_on_parse();  // keep the devices in command-line order
    }
    run->add_flag_function(kRngFlag.flag, [&devices](int64_t) { devices.push_back({&kRngFlag, ""}); }, kRngFlag.help)
        ->trigger_on_parse();
    run->footer(std::string(config_reference()));

    CLI::App* validate = app.add_subcommand("validate", "Check a config file and the files it names");
    std::string validate_path;
    validate->add_option("config", validate_path, "YAML config file")->type_name("FILE")->required();

    std::string api_socket, snapshot_path, snapshot_via, snapshot_then;
    std::map<std::string, CLI::App*> controls;
    for (std::string_view name : kControlCommands) {
        std::string help = "Ask a running VM to " + std::string(name);
        if (name == "status") help = "Show a running VM's state";
        if (name == "snapshot") help = "Save a running VM's state to FILE (resume it with run --restore)";
        CLI::App* command = app.add_subcommand(std::string(name), help);
        command->add_option("--api-socket", api_socket, "The VM's control API socket")->type_name("PATH")->required();
        if (name == "snapshot") {
            command->add_option("file", snapshot_path, "Snapshot file to write")->type_name("FILE")->required();
            command->add_option("--via", snapshot_via, "How memory is saved: direct (default) or mirror (sealed by "
                                "the mirror VM's helper; the key goes to FILE.key)")->type_name("MODE");
            command->add_option("--then", snapshot_then, "Afterwards: resume, pause or stop (default: as before)")
                ->type_name("STATE");
        }
        controls[std::string(name)] = command;
    }

    CliCommand result;
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        result.kind = CliCommand::Kind::Help;
        result.output = app.help();
        return result;
    } catch (const CLI::CallForVersion&) {
        result.kind = CliCommand::Kind::Version;
        result.output = version;
        return result;
    } catch (const CLI::RequiredError& e) {
        if (app.get_subcommands().empty() && argc > 1 && argv[1][0] != '-') {
            return fail(unknown_name_message("command " + quote_value(argv[1]), argv[1], kCommands));
        }
        if (app.get_subcommands().empty()) {
            return fail("a subcommand is required: run, validate, pause, resume, snapshot, shutdown or status "
                        "(see kite --help)");
        }
        return fail(std::string(e.what()));
    } catch (const CLI::ParseError& e) {
        return fail(std::string(e.what()) + " (see kite --help)");
    }

    if (run->parsed()) {
        auto config = build_run_config(config_path, scalars, options, vhost_trace, devices);
        if (!config) return std::unexpected(config.error());
        result.kind = CliCommand::Kind::Run;
        result.config = std::move(*config);
        result.config_path = config_path;
        return result;
    }
    if (validate->parsed()) {
        auto config = load_config_file(validate_path);
        if (!config) return std::unexpected(config.error());
        result.kind = CliCommand::Kind::Validate;
        result.config = std::move(*config);
        result.config_path = validate_path;
        result.output = validate_path + ": ok";
        return result;
    }
    for (const auto& [name, command] : controls) {
        if (!command->parsed()) continue;
        if (auto ok = set_vm_field(result.config, "api-socket", api_socket, {}); !ok) {
            return fail(flag_error("--api-socket", "", ok.error().message));
        }
        result.kind = CliCommand::Kind::Control;
        result.control_args.push_back(name);
        if (name == "snapshot") {
            std::error_code error;
            std::filesystem::path absolute = std::filesystem::absolute(snapshot_path, error);
            if (error) return fail(snapshot_path + ": " + error.message());
            result.control_args.push_back(absolute.string());
            if (!snapshot_via.empty()) result.control_args.push_back("via=" + snapshot_via);
            if (!snapshot_then.empty()) result.control_args.push_back("then=" + snapshot_then);
        }
        return result;
    }
    return fail("a subcommand is required (see kite --help)");
}

}  // namespace

Result<CliCommand> parse_cli(int argc, char** argv) {
    auto command = parse_command(argc, argv);
    // Messages quote what the user typed; keep control bytes from reaching the terminal raw.
    if (!command) return fail(printable(command.error().message));
    return command;
}

}  // namespace kite

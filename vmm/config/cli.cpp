// Command-line parsing with CLI11. CLI11 only collects strings here; every value goes through the shared
// setters of vmm/config/fields.h, so the rules and messages match the YAML file's.
#include "vmm/config/cli.h"
#include "vmm/config/exit_status.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <map>

#include "vmm/config/fields.h"
#include "vmm/config/keys.h"
#include "vmm/config/yaml.h"

namespace kite {

namespace {

#ifdef KITE_VERSION
constexpr std::string_view kVersion = KITE_VERSION;
#else
constexpr std::string_view kVersion = "0.1.0";
#endif

// A flag's help: the key's meaning and default, from the key table.
std::string flag_help(const ConfigKey& key) {
    std::string help(key.meaning);
    if (!key.default_value.empty()) help += " (default " + std::string(key.default_value) + ")";
    return help;
}

constexpr std::string_view kControlCommands[] = {"pause", "resume", "snapshot", "shutdown", "status"};
constexpr std::string_view kCommands[] = {"run", "validate", "pause", "resume", "snapshot", "shutdown", "status", "keys"};

// A device flag as given, in command-line order.
struct DeviceArg {
    const DeviceKind* kind;
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
// output, socket), a bare later item is a switch set to true (readonly; is_switch in keys.h).
Result<DeviceConfig> device_from_flag(const DeviceArg& arg) {
    auto device = make_device(arg.kind->name);
    if (!device) return device;
    std::span<const std::string_view> keys = device_keys(*device);
    std::string_view text = arg.value;
    for (size_t start = 0; !text.empty() && start <= text.size();) {
        size_t comma = std::min(text.find(',', start), text.size());
        std::string_view item = text.substr(start, comma - start);
        bool first = start == 0;
        start = comma + 1;
        if (item.empty()) return fail(flag_error(arg.kind->flag, "", "empty item in " + quote_value(arg.value)));
        size_t equals = item.find('=');
        std::string_view key = item.substr(0, equals);
        std::string_view value = equals == std::string_view::npos ? std::string_view() : item.substr(equals + 1);
        if (equals == std::string_view::npos && first && !keys.empty()) {
            key = keys[0];
            value = item;
        } else if (equals == std::string_view::npos) {
            const ConfigKey* known = find_key(arg.kind->scope, key);
            if (known && !is_switch(*known)) {
                return fail(flag_error(arg.kind->flag, key, "expected " + std::string(key) + "=VALUE"));
            }
            value = "true";
        }
        if (auto ok = set_device_field(*device, key, value, {}); !ok) {
            return fail(flag_error(arg.kind->flag, key, ok.error().message));
        }
    }
    if (auto check = check_device_complete(*device); !check) {
        return fail(flag_error(arg.kind->flag, check.error().key, check.error().message));
    }
    return device;
}

// The config file (if any), then scalar flags over it, then device flags appended, then the final rules.
Result<VmConfig> build_run_config(const std::string& config_path, const std::map<std::string_view, std::string>& scalars,
                                  const std::map<std::string_view, CLI::Option*>& options,
                                  const std::vector<DeviceArg>& devices) {
    VmConfig config;
    if (!config_path.empty()) {
        // Files are checked once the flags are in, so a --kernel override does not need the file's kernel.
        auto loaded = load_config_file(config_path, ParseOptions{.check_files = false, .require_kernel = false});
        if (!loaded) return loaded;
        config = std::move(*loaded);
    }
    for (const ConfigKey& key : config_keys()) {
        if (key.flag.empty() || options.at(key.flag)->count() == 0) continue;
        std::string value = is_switch(key) ? "true" : scalars.at(key.flag);
        if (auto ok = set_vm_field(config, flag_key(key), value, {}); !ok) {
            return fail(flag_error(key.flag, "", ok.error().message));
        }
    }
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
    std::map<std::string_view, std::string> scalars;
    std::map<std::string_view, CLI::Option*> options;
    for (const ConfigKey& key : config_keys()) {
        if (key.flag.empty()) continue;
        std::string flag(key.flag);
        if (is_switch(key)) options[key.flag] = run->add_flag(flag)->description(flag_help(key));
        else options[key.flag] = run->add_option(flag, scalars[key.flag], flag_help(key))->type_name(std::string(key.syntax));
    }
    std::vector<DeviceArg> devices;
    for (const DeviceKind& kind : device_kind_table()) {
        std::string flag(kind.flag), help = "Add " + std::string(kind.meaning);
        auto add = [&devices, &kind](const std::string& value) { devices.push_back({&kind, value}); };
        if (key_names(kind.scope).empty()) {
            run->add_flag_function(flag, [add](int64_t) { add(""); }, help)->trigger_on_parse();
        } else {
            // trigger_on_parse keeps the devices in command-line order.
            run->add_option_function<std::string>(flag, add, help)->type_name(device_flag_syntax(kind))->trigger_on_parse();
        }
    }
    run->footer(exit_status_help() + "\n" + std::string(config_reference()));

    CLI::App* keys = app.add_subcommand("keys", "Print every config key and flag (--markdown: README.md's table)");
    bool markdown = false;
    keys->add_flag("--markdown", markdown, "As the Markdown table README.md carries");

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
            return fail("a subcommand is required: run, validate, pause, resume, snapshot, shutdown, status or keys "
                        "(see kite --help)");
        }
        return fail(std::string(e.what()));
    } catch (const CLI::ParseError& e) {
        return fail(std::string(e.what()) + " (see kite --help)");
    }

    if (run->parsed()) {
        auto config = build_run_config(config_path, scalars, options, devices);
        if (!config) return std::unexpected(config.error());
        result.kind = CliCommand::Kind::Run;
        result.config = std::move(*config);
        result.config_path = config_path;
        return result;
    }
    if (keys->parsed()) {
        result.kind = CliCommand::Kind::Help;
        result.output = std::string(markdown ? config_reference_markdown() : config_reference());
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

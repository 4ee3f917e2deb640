// The key table (vmm/config/keys.h) against the parser that uses it, the CLI, and README.md's copy.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "vmm/config/cli.h"
#include "vmm/config/fields.h"
#include "vmm/config/keys.h"
#include "vmm/config/yaml.h"

using namespace kite;

namespace {

constexpr std::string_view kBegin = "<!-- keys:begin -->\n";
constexpr std::string_view kEnd = "<!-- keys:end -->";

// The text between README.md's marker lines, or "" when a marker is missing.
std::string readme_block() {
    std::ifstream in(std::filesystem::path(KITE_SOURCE_DIR) / "README.md");
    std::stringstream text;
    text << in.rdbuf();
    std::string readme = text.str();
    size_t begin = readme.find(kBegin);
    size_t end = readme.find(kEnd);
    if (begin == std::string::npos || end == std::string::npos || end < begin) return "";
    return readme.substr(begin + kBegin.size(), end - begin - kBegin.size());
}

ParseOptions no_checks() { return ParseOptions{.check_files = false, .require_kernel = false}; }

// The YAML that sets `key` (with a placeholder value) where its scope puts it.
std::string yaml_setting(const DeviceKind* kind, const ConfigKey& key) {
    std::string setting = std::string(key.key) + ": x";
    if (key.scope == KeyScope::Memory) return "memory: {" + setting + "}\n";
    if (kind == nullptr) return setting + "\n";
    return "devices:\n  - " + std::string(kind->name) + ": {" + setting + "}\n";
}

// Every (device kind or none, key) pair the table says is written somewhere.
std::vector<std::pair<const DeviceKind*, const ConfigKey*>> table_settings() {
    std::vector<std::pair<const DeviceKind*, const ConfigKey*>> settings;
    for (const ConfigKey& key : config_keys()) {
        if (key.scope == KeyScope::Top || key.scope == KeyScope::Memory) settings.push_back({nullptr, &key});
        for (const DeviceKind& kind : device_kind_table()) {
            if (find_key(kind.scope, key.key) == &key) settings.push_back({&kind, &key});
        }
    }
    return settings;
}

}  // namespace

TEST_CASE("README.md's key block is the rendering of the key table") {
    std::string block = readme_block();

    CHECK_MESSAGE(block == config_reference_markdown(),
                  "README.md's block between '<!-- keys:begin -->' and '<!-- keys:end -->' is not the rendering "
                  "of vmm/config/keys.h: run scripts/update-readme-keys.sh (it uses build/vmm/kite keys --markdown)");
}

TEST_CASE("every key of the table is taken by the YAML parser") {
    for (const auto& [kind, key] : table_settings()) {
        auto config = parse_config(yaml_setting(kind, *key), "t.yaml", "", no_checks());

        std::string error = config ? "" : config.error().message;
        CHECK_MESSAGE(error.find("unknown key") == std::string::npos, yaml_setting(kind, *key), ": ", error);
    }
}

TEST_CASE("an unknown key is refused with exactly the table's keys of its scope") {
    auto top = parse_config("bogus-key-name: 1\n", "t.yaml", "", no_checks());
    auto memory = parse_config("memory: {bogus-key-name: 1}\n", "t.yaml", "", no_checks());

    REQUIRE_FALSE(top.has_value());
    REQUIRE_FALSE(memory.has_value());
    CHECK(top.error().message.ends_with(unknown_name_message("key", "bogus-key-name", key_names(KeyScope::Top))));
    CHECK(memory.error().message.ends_with(unknown_name_message("key", "bogus-key-name", key_names(KeyScope::Memory))));
}

TEST_CASE("an unknown device key is refused with exactly the table's keys of its kind") {
    for (const DeviceKind& kind : device_kind_table()) {
        auto config = parse_config("devices:\n  - " + std::string(kind.name) + ": {bogus-key-name: 1}\n", "t.yaml", "",
                                   no_checks());

        REQUIRE_FALSE(config.has_value());
        std::string expected = key_names(kind.scope).empty()
                                   ? "unknown key (" + std::string(kind.name) + " has no settings)"
                                   : unknown_name_message("key", "bogus-key-name", key_names(kind.scope));
        CHECK_MESSAGE(config.error().message.ends_with(expected), config.error().message);
    }
}

TEST_CASE("the setters refuse a key the table does not list, even one another scope has") {
    VmConfig config;
    DeviceConfig block = BlockConfig{};

    CHECK_FALSE(set_vm_field(config, "memory.path", "x", {}).has_value());
    CHECK_FALSE(set_device_field(block, "tag", "x", {}).has_value());
    CHECK_FALSE(set_device_field(block, "transport", "pci", {}).has_value());
}

TEST_CASE("the device kinds of the table are the parser's, in DeviceConfig's order") {
    for (const DeviceKind& kind : device_kind_table()) {
        auto device = make_device(kind.name);

        REQUIRE(device.has_value());
        CHECK(std::string_view(device_kind_name(*device)) == kind.name);
    }
}

TEST_CASE("kite run --help lists every flag of the table with its meaning") {
    std::vector<std::string> args = {"kite", "run", "--help"};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());

    auto help = parse_cli(static_cast<int>(args.size()), argv.data());

    REQUIRE(help.has_value());
    for (const ConfigKey& key : config_keys()) {
        if (key.flag.empty()) continue;
        CHECK_MESSAGE(help->output.find(std::string(key.flag)) != std::string::npos, key.flag);
        CHECK_MESSAGE(help->output.find(std::string(key.meaning)) != std::string::npos, key.meaning);
    }
    for (const DeviceKind& kind : device_kind_table()) {
        CHECK_MESSAGE(help->output.find(std::string(kind.flag)) != std::string::npos, kind.flag);
    }
}

TEST_CASE("kite keys prints the text reference and --markdown the README table") {
    std::vector<std::string> text_args = {"kite", "keys"}, markdown_args = {"kite", "keys", "--markdown"};
    std::vector<char*> text_argv = {text_args[0].data(), text_args[1].data()};
    std::vector<char*> markdown_argv = {markdown_args[0].data(), markdown_args[1].data(), markdown_args[2].data()};

    auto text = parse_cli(2, text_argv.data());
    auto markdown = parse_cli(3, markdown_argv.data());

    REQUIRE(text.has_value());
    REQUIRE(markdown.has_value());
    CHECK(text->output == config_reference());
    CHECK(markdown->output == config_reference_markdown());
}

TEST_CASE("the rendered reference names every key of the table") {
    std::string_view text = config_reference();
    std::string_view markdown = config_reference_markdown();

    for (const ConfigKey& key : config_keys()) {
        CHECK_MESSAGE(text.find(std::string(key.key) + ": ") != std::string_view::npos, key.key);
        CHECK_MESSAGE(markdown.find(std::string(key.key) + "`") != std::string_view::npos, key.key);
    }
}

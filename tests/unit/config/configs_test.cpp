// Every ready-made config in configs/ parses (without the guest assets, which tests do not need).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "vmm/config/yaml.h"

using namespace kite;

namespace {

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The parse error for a config file, or "" when it parses; failures then show the message.
std::string parse_problem(const std::filesystem::path& path) {
    auto config = parse_config(read_text(path), path.filename().string(), path.parent_path().string(),
                               ParseOptions{.check_files = false});
    if (config) return "";
    return config.error().message;
}

}  // namespace

TEST_CASE("every file in configs/ parses") {
    std::filesystem::path dir = std::filesystem::path(KITE_SOURCE_DIR) / "configs";
    size_t count = 0;

    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        CHECK(parse_problem(entry.path()) == "");
        ++count;
    }

    CHECK(count >= 6);
}

TEST_CASE("the demo config boots two vCPUs with 512M from the assets folder") {
    std::filesystem::path dir = std::filesystem::path(KITE_SOURCE_DIR) / "configs";

    auto config = parse_config(read_text(dir / "demo.yaml"), "demo.yaml", dir.string(), ParseOptions{.check_files = false});

    REQUIRE(config.has_value());
    CHECK(config->vcpus == 2);
    CHECK(config->memory.size == 512ull << 20);
    CHECK(config->boot.kernel == dir.string() + "/../assets/vmlinuz");
    CHECK(config->boot.initrd == dir.string() + "/../assets/initrd.gz");
}

TEST_CASE("the vhost-user-fs config has a DAX window and the CI config logs serial to a file") {
    std::filesystem::path dir = std::filesystem::path(KITE_SOURCE_DIR) / "configs";

    auto fs = parse_config(read_text(dir / "vhost-user-fs.yaml"), "vhost-user-fs.yaml", dir.string(),
                           ParseOptions{.check_files = false});
    auto ci = parse_config(read_text(dir / "ci.yaml"), "ci.yaml", dir.string(), ParseOptions{.check_files = false});

    REQUIRE(fs.has_value());
    REQUIRE(ci.has_value());
    CHECK(std::get<VhostUserFsConfig>(fs->devices.at(0)).dax_size == 1ull << 30);
    CHECK(ci->serial.mode == OutputConfig::Mode::File);
}

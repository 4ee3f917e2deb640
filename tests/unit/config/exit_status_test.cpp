// The exit status table (vmm/config/exit_status.h) against README.md's copy and `kite run --help`.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "vmm/config/exit_status.h"

using namespace kite;

namespace {

// The text between README.md's exit-status marker lines, or "" when a marker is missing.
std::string readme_block() {
    std::ifstream in(std::filesystem::path(KITE_SOURCE_DIR) / "README.md");
    std::stringstream text;
    text << in.rdbuf();
    const std::string readme = text.str(), begin = "<!-- exit-status:begin -->\n", end = "<!-- exit-status:end -->";
    size_t b = readme.find(begin), e = readme.find(end);
    if (b == std::string::npos || e == std::string::npos || e < b) return "";
    return readme.substr(b + begin.size(), e - b - begin.size());
}

}  // namespace

TEST_CASE("README.md's exit status table is the rendering of the table") {
    const std::string want = exit_status_markdown();
    INFO("README.md's exit-status block should read:\n", want);
    CHECK(readme_block() == want);
}

TEST_CASE("every exit status is listed once, the ways a VM ends each with its own") {
    std::set<std::string> seen;
    for (const ExitStatusRow& row : exit_status_table()) CHECK(seen.insert(std::string(row.status)).second);
    for (int status : {kExitOk, kExitFailure, kExitBadInput, kExitGuestPanicked, kExitGuestRebooted})
        CHECK(seen.count(std::to_string(status)) == 1);
    CHECK(kExitGuestPanicked != kExitGuestRebooted);
    CHECK(exit_status_help().find("  3      the guest kernel panicked") != std::string::npos);
}

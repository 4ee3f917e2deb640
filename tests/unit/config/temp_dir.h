// A temporary folder for tests that need real files (kernel images, disks, config files); removed with
// everything in it when the test ends.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace kite::test {

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "kite-config-test-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }

    // Writes `content` to `name` inside the folder and returns the file's full path.
    std::string write(std::string_view name, std::string_view content) const {
        std::string full = path_ + "/" + std::string(name);
        std::ofstream out(full, std::ios::binary);
        out << content;
        REQUIRE(out.good());
        return full;
    }

private:
    std::string path_;
};

}  // namespace kite::test

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "vmm/snapshot/key_file.h"
#include "vmm/snapshot/vm_snapshot.h"

using namespace kite;

namespace {

std::string temp_path(const char* name) { return "/tmp/kite-keyfile-" + std::to_string(::getpid()) + "-" + name; }

}  // namespace

TEST_CASE("a key file reads back the same key and is private to its owner") {
    MirrorKey key;
    for (size_t i = 0; i < key.cipher.size(); ++i) key.cipher[i] = static_cast<uint8_t>(i + 1);
    for (size_t i = 0; i < key.mac.size(); ++i) key.mac[i] = static_cast<uint8_t>(0xf0 - i);
    std::string path = temp_path("ok");
    REQUIRE(write_key_file(path, key).has_value());
    auto back = read_key_file(path);
    struct stat st {};
    ::stat(path.c_str(), &st);
    ::unlink(path.c_str());
    REQUIRE(back.has_value());
    CHECK(*back == key);
    CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a key file of the wrong size or a missing one is refused with its path") {
    std::string path = temp_path("short");
    std::ofstream(path) << "too short";
    auto short_key = read_key_file(path);
    ::unlink(path.c_str());
    auto missing = read_key_file(temp_path("missing"));
    REQUIRE_FALSE(short_key.has_value());
    REQUIRE_FALSE(missing.has_value());
    CHECK(short_key.error().message.find(path) != std::string::npos);
    CHECK(missing.error().message.find("missing") != std::string::npos);
}

TEST_CASE("the key of snapshot FILE lives in FILE.key") { CHECK(key_file_path("/x/vm.snap") == "/x/vm.snap.key"); }

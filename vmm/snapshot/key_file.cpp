#include "vmm/snapshot/key_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "base/fd.h"
#include "vmm/snapshot/snapshot.h"

namespace kite {

namespace {

constexpr size_t kKeyFileSize = 48;  // cipher key (32 bytes), then MAC key (16)

}  // namespace

std::string key_file_path(const std::string& snapshot_path) { return snapshot_path + ".key"; }

Result<void> write_key_file(const std::string& path, const MirrorKey& key) {
    uint8_t bytes[kKeyFileSize];
    std::memcpy(bytes, key.cipher.data(), 32);
    std::memcpy(bytes + 32, key.mac.data(), 16);
    return write_file_atomically(path, bytes, "key file");
}

Result<MirrorKey> read_key_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("cannot open key file " + path));
    uint8_t bytes[kKeyFileSize + 1];
    ssize_t n = ::read(fd.get(), bytes, sizeof bytes);
    if (n < 0) return std::unexpected(errno_error("cannot read key file " + path));
    if (n != static_cast<ssize_t>(kKeyFileSize))
        return fail("key file " + path + ": " + std::to_string(n) + " bytes, want " + std::to_string(kKeyFileSize));
    MirrorKey key;
    std::memcpy(key.cipher.data(), bytes, 32);
    std::memcpy(key.mac.data(), bytes + 32, 16);
    return key;
}

}  // namespace kite

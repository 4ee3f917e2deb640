// Helpers for the vhost tests: open-fd counting through /proc/self/fd (to check ownership without
// trusting the code under test), memfds with known content, and eventfds.
#pragma once

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "base/fd.h"

namespace kite::test {

inline size_t count_open_fds() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

// A memfd of `size` bytes whose byte i is (i * 7 + seed) & 0xff.
inline UniqueFd pattern_memfd(size_t size, uint8_t seed) {
    UniqueFd fd(::memfd_create("kite-test", MFD_CLOEXEC));
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + seed);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0 || ::pwrite(fd.get(), bytes.data(), size, 0) != static_cast<ssize_t>(size))
        return UniqueFd();
    return fd;
}

inline UniqueFd make_eventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

inline std::string temp_socket_path(const std::string& tag) {
    return "/tmp/kite-vhost-test-" + std::to_string(::getpid()) + "-" + tag + ".sock";
}

}  // namespace kite::test

// Test helpers that look at this process through /proc/self: how many fds are open, and how an
// address is mapped. They let tests check leaks and protections without trusting the code under test.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kite::test {

inline size_t open_fd_count() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

// The permission field of the /proc/self/maps line that contains addr ("rw-s", "---p", ...), or ""
// if nothing is mapped there.
inline std::string mapping_perms(const void* addr) {
    auto target = reinterpret_cast<uintptr_t>(addr);
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range, perms;
        fields >> range >> perms;
        auto dash = range.find('-');
        uintptr_t start = std::stoull(range.substr(0, dash), nullptr, 16);
        uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
        if (target >= start && target < end) return perms;
    }
    return "";
}

// The path column of the /proc/self/maps line that contains addr ("/memfd:name (deleted)", "" for
// anonymous memory).
inline std::string mapping_path(const void* addr) {
    auto target = reinterpret_cast<uintptr_t>(addr);
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range, perms, offset, dev, inode, path;
        fields >> range >> perms >> offset >> dev >> inode;
        std::getline(fields >> std::ws, path);
        auto dash = range.find('-');
        uintptr_t start = std::stoull(range.substr(0, dash), nullptr, 16);
        uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
        if (target >= start && target < end) return path;
    }
    return "";
}

// The VmFlags of the /proc/self/smaps entry that contains addr ("rd wr sh mr mw me ms hg", ...), or ""
// if nothing is mapped there.
inline std::string mapping_vmflags(const void* addr) {
    auto target = reinterpret_cast<uintptr_t>(addr);
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    while (std::getline(smaps, line)) {
        auto dash = line.find('-');
        auto space = line.find(' ');
        bool header = dash != std::string::npos && space != std::string::npos && dash < space &&
                      line.find_first_not_of("0123456789abcdef") == dash;
        if (header) {
            uintptr_t start = std::stoull(line.substr(0, dash), nullptr, 16);
            uintptr_t end = std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
            inside = target >= start && target < end;
        } else if (inside && line.starts_with("VmFlags:")) {
            return line.substr(line.find_first_not_of(' ', 8));
        }
    }
    return "";
}

}  // namespace kite::test

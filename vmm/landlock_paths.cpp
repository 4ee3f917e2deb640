#include "vmm/landlock_paths.h"

namespace kite {

LandlockPaths landlock_paths(const VmConfig& config) {
    LandlockPaths paths;
    if (!config.control_socket.empty()) {
        const std::string& socket = config.control_socket;
        size_t slash = socket.rfind('/');
        paths.writable_dirs.push_back(slash == std::string::npos ? "." : slash == 0 ? "/" : socket.substr(0, slash));
    }
    return paths;
}

}  // namespace kite

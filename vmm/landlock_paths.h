// Which paths a running Kite still needs after Landlock (vmm/landlock.h) goes in. Everything the
// config names (kernel, initrd, disks, output files, tap, /dev/kvm, the control socket) is open before
// then, and an open descriptor keeps its access; connecting to vhost-user sockets again is not a file
// access Landlock controls. What is left is what Kite creates and removes while running: snapshot files
// (and their keys) and, at exit, the control socket. Both live in the control socket's directory, so
// snapshots can only be written there.
#pragma once

#include <string>
#include <vector>

#include "vmm/config/config.h"

namespace kite {

struct LandlockPaths {
    // Directories beneath which Kite may create, write, rename and remove regular files.
    std::vector<std::string> writable_dirs;
};

LandlockPaths landlock_paths(const VmConfig& config);

}  // namespace kite

// Landlock: the file-system sandbox Kite puts on itself just before the seccomp filter (which does not
// see paths: it must allow openat). Once in, Kite opens no file and creates, renames or removes nothing
// outside LandlockPaths (vmm/landlock_paths.h); with a recent enough kernel it also cannot signal
// processes outside its sandbox, reach abstract Unix sockets, or bind or connect TCP ports. Descriptors
// opened before keep working. Best effort: a kernel without Landlock (or with it disabled) is noted in
// the log and Kite goes on with the seccomp filter alone.
//
// Landlock restricts the calling thread and the threads it creates later: it goes in on the main thread
// before the vCPU threads start.
#pragma once

#include "base/error.h"
#include "vmm/landlock_paths.h"

namespace kite {

// The Landlock ABI version the kernel offers, 0 if none.
int landlock_abi();

// Sandboxes this thread (and its future threads) as above; false when the kernel has no Landlock (the
// reason logged at info level). An error when Landlock is there but refuses the ruleset.
Result<bool> install_landlock(const LandlockPaths& paths);

}  // namespace kite

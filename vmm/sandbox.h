// The sandbox Kite puts on itself just before the guest runs, after everything that opens files or
// creates the VM: Landlock (vmm/landlock.h) and then the seccomp filter (vmm/seccomp.h), which does
// not allow Landlock's own calls. The `seccomp` key chooses: on, both; log, the filter in log mode and
// no Landlock (it has no log-only mode); off, neither. Sanitizer builds get neither (their runtimes
// read /proc and ptrace at exit).
#pragma once

#include "base/error.h"
#include "vmm/config/config.h"

namespace kite {

Result<void> install_sandbox(const VmConfig& config);

}  // namespace kite

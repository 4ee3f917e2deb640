// Wires the control API (vmm/control/server.h) to a Vm: status, pause, resume, snapshot (direct or
// through the mirror VM) and shutdown, all on the VMM thread's event loop.
#pragma once

#include "base/error.h"
#include "vmm/config/config.h"
#include "vmm/vm.h"

namespace kite {

// Starts serving config.control_socket (nothing when it is empty). The server lives as long as the Vm.
Result<void> attach_control(Vm& vm, const VmConfig& config);

}  // namespace kite

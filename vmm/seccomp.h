// The system-call filter Kite puts on itself before the guest runs (libseccomp). A guest that takes over
// a device emulation path gets a VMM that cannot start programs, trace or read other processes, load
// kernel modules or BPF, mount, change namespaces, credentials or the clock: the allowlist holds what a
// running VMM does (file and socket I/O, memory, threads, timers, signals, KVM and io_uring), nothing
// more. Some calls are allowed with given arguments only: ioctl with the requests Kite sends (KVM's, the
// tap's offloads, the console's terminal modes, FIONBIO: no TIOCSTI), socket and socketpair with AF_UNIX,
// clone with pthread_create's thread flags (no process, no CLONE_NEW*); clone3, whose flags the filter
// cannot see, answers ENOSYS (glibc then uses clone). What io_uring may do is limited on the ring itself
// (devices/virtio/block_ring.h). Set up (opening files, creating the VM) happens before, unfiltered.
//
// A call outside the list raises SIGSYS; the handler names the call on stderr and ends Kite with status
// 1 (a VMM failure), so a missing entry is a clear bug report rather than a silent kill.
#pragma once

#include "base/error.h"
#include "vmm/config/config.h"

namespace kite {

// Installs the filter on every thread of the process (SECCOMP_FILTER_FLAG_TSYNC); threads created
// later inherit it. Off does nothing. Fails if the kernel refuses the filter.
Result<void> install_seccomp(SeccompMode mode);

// Whether install_seccomp(On) is refused in this build: sanitizer runtimes need calls a VMM does not
// (LeakSanitizer stops the process with ptrace at exit), so those builds run unfiltered and say so.
bool seccomp_unavailable_in_this_build();

}  // namespace kite

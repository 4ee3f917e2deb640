// Taking a running VM's snapshot and applying one to a freshly built VM (vmm/snapshot/snapshot.h is the
// file format, vmm/arch/x86_64/vm_state.h the KVM state). Memory moves either directly (the host reads the pages) or
// through the mirror VM (the helper seals every page; the VMM only sees records).
//
// The mirror's transport key never goes into the snapshot file: a sealed snapshot FILE has its key in
// FILE.key (mode 0600), which restore reads. Both run on the VMM thread with the vCPUs paused (capture)
// or not yet started (apply).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "vmm/config/config.h"
#include "vmm/mirror/mirror_vm.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/vm.h"

namespace kite {

enum class MemoryVia { Direct, Mirror };

// Why a VM configured like this cannot be snapshotted or restored, or "" if it can. Built-in virtio
// devices save their transport state; vhost-user devices cannot (their back-end holds the queue state).
std::string snapshot_refusal(const VmConfig& config);

// Reads everything from a paused VM. `mirror` is created on first use (and recreated after a failure)
// with `key`; Direct leaves it alone. Direct borrows guest RAM instead of copying it
// (MemoryBlockState::borrowed): the VM must then stay paused until the snapshot is written. (A copy would
// let the guest run during the write, but costs a second guest RAM's worth of host memory and, where
// fresh memory is slow to get, more time than the write.)
Result<SnapshotData> capture_snapshot(Vm& vm, MemoryVia via, std::unique_ptr<MirrorVm>& mirror, const MirrorKey& key);

// read_snapshot's target for restoring into `vm` (built, not yet run): the file's RAM blocks must match
// the VM's in order, and their pages go straight into its RAM. `vm` must outlive the read.
MemoryTarget restore_target(Vm& vm);

// Checks that `data` fits `vm` (vCPU count, RAM blocks, devices), then writes memory, VM-level state,
// vCPU state and device state. `key` is required for a sealed snapshot. The vCPUs must not be running.
Result<void> apply_snapshot(Vm& vm, const SnapshotData& data, const std::optional<MirrorKey>& key);

}  // namespace kite

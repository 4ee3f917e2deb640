// Makes the mappings of VIRTIO shared memory windows visible to the guest: one KVM memslot per mapping
// (read-only mappings as KVM_MEM_READONLY slots), installed when a vhost-user back-end maps something
// with SHMEM_MAP and deleted before the host mapping goes (SHMEM_UNMAP, reset, disconnect). Holes in a
// window have no memslot: a guest access there is an MMIO exit that reads all-ones and drops writes, so a
// guest touching a hole cannot stop Kite.
//
// Threads: observers run on the VMM thread (the backend channel) and during device destruction after the
// vCPUs stopped; the slot table is under a mutex anyway so the order of teardown never matters.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "memory/address.h"
#include "memory/error.h"
#include "memory/shm_window.h"
#include "vmm/kvm.h"

namespace kite {

class ShmMemslots : public std::enable_shared_from_this<ShmMemslots> {
public:
    // Slots [first_slot, slot_limit) are this object's; RAM uses the ones below.
    ShmMemslots(const VmFd& vm, uint32_t first_slot, uint32_t slot_limit, bool readonly_supported)
        : vm_(vm), next_slot_(first_slot), slot_limit_(slot_limit), readonly_supported_(readonly_supported) {}

    // Installs the observer on `window`, whose offset 0 the guest sees at `guest_base`. The observer holds
    // this object alive, so windows may outlive the VM builder's reference to it.
    void watch(ShmWindow& window, GuestAddress guest_base);

private:
    void added(GuestAddress gpa, const ShmWindow::Mapping& mapping);
    void removed(GuestAddress gpa);

    const VmFd& vm_;
    mutable std::mutex mutex_;
    std::map<uint64_t, uint32_t> slot_of_gpa_;  // guest address of a mapping -> its memslot
    std::vector<uint32_t> free_slots_;
    uint32_t next_slot_;
    uint32_t slot_limit_;
    bool readonly_supported_;
};

}  // namespace kite

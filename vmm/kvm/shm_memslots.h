// Makes the mappings of VIRTIO shared memory windows visible to the guest through KVM memslots: one per
// mapping, read-only mappings as KVM_MEM_READONLY slots, installed when a vhost-user back-end maps
// something with SHMEM_MAP.
//
// SHMEM_UNMAP keeps the slot: the window puts read-only zero-filled memory under it (ShmWindow::unmap),
// so the back-end's file is gone from the guest at once, and a later mapping of the same range and
// protection (a DAX window remapping its chunks, say) reuses the slot without a memslot change. Creating
// or deleting a memslot costs far more than the mmap that replaces the pages (KVM 6.1 drops every guest
// mapping of the VM when a slot is deleted). A kept slot goes when a new mapping overlaps it differently,
// when slots run short, when the window is released (reset, disconnect, destruction), and when the
// guest writes to it (below).
//
// Parts of a window that never held a mapping have no memslot: a guest access there is an MMIO exit that
// reads all-ones and drops writes. A range that held one reads zeroes while its slot is kept. Either way
// a guest touching a hole cannot stop Kite.
//
// Faults: KVM_RUN fails with EFAULT when a guest access reaches host memory that cannot back it: a write
// to a kept writable slot (its zero-filled memory is read-only, so that unmapped ranges cost no memory),
// or any access to a mapping whose file the back-end shrank after mapping it. KVM does not say where, so
// the vCPU asks repair() to fix whatever can fault: such slots are deleted (the range becomes a hole) and
// a shrunk file's range is replaced by zero-filled memory, then the vCPU runs again.
//
// Threads: observers run on the VMM thread (the backend channel) and during device destruction after the
// vCPUs stopped; the slot table is under a mutex anyway so the order of teardown never matters.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/log_limit.h"
#include "memory/address.h"
#include "memory/shm_window.h"
#include "vmm/kvm/kvm.h"

namespace kite {

class ShmMemslots : public std::enable_shared_from_this<ShmMemslots> {
public:
    // KVM_SET_USER_MEMORY_REGION; size 0 deletes the slot.
    using SetSlot = std::function<Result<void>(uint32_t slot, uint64_t gpa, uint64_t size, void* host, uint32_t flags)>;

    // Slots [first_slot, slot_limit) are this object's; RAM uses the ones below.
    ShmMemslots(const VmFd& vm, uint32_t first_slot, uint32_t slot_limit, bool readonly_supported);
    ShmMemslots(SetSlot set_slot, uint32_t first_slot, uint32_t slot_limit, bool readonly_supported)
        : set_slot_(std::move(set_slot)), next_slot_(first_slot), slot_limit_(slot_limit),
          readonly_supported_(readonly_supported) {}

    // What repair() tells about a range it turned into a hole (a vhost-user trace line, say).
    using Note = std::function<void(std::string_view)>;

    // Installs the observer on `window`, whose offset 0 the guest sees at `guest_base`. The observer holds
    // this object alive, so windows may outlive the VM builder's reference to it. `note` (optional) hears
    // of every repair in this window.
    void watch(ShmWindow& window, GuestAddress guest_base, Note note = {});

    // After KVM_RUN failed with EFAULT (any vCPU thread): deletes every kept writable slot and every slot
    // whose mapping the host can no longer read (the file shrank), putting zero-filled memory under the
    // latter. Returns how many slots it deleted; 0 means the fault was not in a shared-memory window.
    size_t repair();

    // Memslots in use, mapped or kept (for tests and logs).
    size_t slot_count() const;

private:
    struct Slot {
        uint32_t id;
        uint64_t len;
        bool writable;
        bool mapped;  // false: kept over zero-filled memory after an unmap
        std::byte* host;
        std::shared_ptr<const Note> note;  // the window's
        bool fits(const ShmWindow::Mapping& m) const;  // same length and protection
    };
    void mapping(GuestAddress gpa, const ShmWindow::Mapping& mapping);
    void mapped(GuestAddress gpa, const ShmWindow::Mapping& mapping, std::shared_ptr<const Note> note);
    void unmapped(GuestAddress gpa);
    void released(uint64_t gpa, uint64_t len);
    // Deletes the slot at `it` and returns the next entry.
    std::map<uint64_t, Slot>::iterator drop(std::map<uint64_t, Slot>::iterator it);
    // A free slot number: unused, never used, or taken from a kept slot. nullopt when every slot maps.
    std::optional<uint32_t> take_slot();

    SetSlot set_slot_;
    mutable std::mutex mutex_;
    std::map<uint64_t, Slot> slots_;  // by guest address
    std::vector<uint32_t> free_slots_;
    uint32_t next_slot_;
    uint32_t slot_limit_;
    bool readonly_supported_;
    LogLimit log_;  // every message here follows a back-end's SHMEM_MAP or SHMEM_UNMAP
};

}  // namespace kite

#include "vmm/shm_memslots.h"

#include <linux/kvm.h>
#include <spdlog/spdlog.h>

namespace kite {

void ShmMemslots::watch(ShmWindow& window, GuestAddress guest_base) {
    std::shared_ptr<ShmMemslots> self = shared_from_this();
    window.set_observer([self, guest_base](const ShmWindow::Mapping& mapping, bool added) {
        GuestAddress gpa(guest_base.value() + mapping.offset);
        if (added)
            self->added(gpa, mapping);
        else
            self->removed(gpa);
    });
}

void ShmMemslots::added(GuestAddress gpa, const ShmWindow::Mapping& mapping) {
    std::lock_guard lock(mutex_);
    uint32_t slot;
    if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
    } else if (next_slot_ < slot_limit_) {
        slot = next_slot_++;
    } else {
        // The window caps its mappings well below KVM's slot count, so this is a configuration limit, not
        // a guest-visible state: the mapping stays host-only and the guest sees a hole.
        spdlog::error("shared memory at {:#x}: no KVM memslot left; the guest sees a hole there", gpa.value());
        return;
    }
    uint32_t flags = 0;
    if (!mapping.writable) {
        if (readonly_supported_) {
            flags = KVM_MEM_READONLY;
        } else {
            spdlog::error("shared memory at {:#x}: read-only mapping but KVM lacks KVM_CAP_READONLY_MEM; "
                          "the guest sees a hole there", gpa.value());
            free_slots_.push_back(slot);
            return;
        }
    }
    if (auto ok = vm_.set_user_memory_region(slot, gpa.value(), mapping.len, mapping.host, flags); !ok) {
        spdlog::error("shared memory at {:#x} (+{:#x}): {}; the guest sees a hole there", gpa.value(), mapping.len,
                      ok.error().message);
        free_slots_.push_back(slot);
        return;
    }
    slot_of_gpa_[gpa.value()] = slot;
}

void ShmMemslots::removed(GuestAddress gpa) {
    std::lock_guard lock(mutex_);
    auto it = slot_of_gpa_.find(gpa.value());
    if (it == slot_of_gpa_.end()) return;  // never became a memslot (see added())
    // Size 0 deletes the slot; KVM then zaps the guest's mappings of it before the host range goes.
    if (auto ok = vm_.set_user_memory_region(it->second, gpa.value(), 0, nullptr); !ok)
        spdlog::error("shared memory at {:#x}: deleting memslot {}: {}", gpa.value(), it->second, ok.error().message);
    free_slots_.push_back(it->second);
    slot_of_gpa_.erase(it);
}

}  // namespace kite

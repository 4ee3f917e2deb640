#include "vmm/kvm/shm_memslots.h"

#include <linux/kvm.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif

namespace kite {

namespace {

// Whether the host can read the last page of [host, host + len): a file mapped there that shrank below
// it cannot. (Shrinking takes pages off the end; a file's holes read zeroes.) MADV_POPULATE_READ faults
// the page in as a read would, but reports EFAULT instead of raising SIGBUS.
bool readable(std::byte* host, uint64_t len) {
    const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    return ::madvise(host + len - page, page, MADV_POPULATE_READ) == 0 || errno != EFAULT;
}

}  // namespace

ShmMemslots::ShmMemslots(const VmFd& vm, uint32_t first_slot, uint32_t slot_limit, bool readonly_supported)
    : ShmMemslots(
          [&vm](uint32_t slot, uint64_t gpa, uint64_t size, void* host, uint32_t flags) {
              return vm.set_user_memory_region(slot, gpa, size, host, flags);
          },
          first_slot, slot_limit, readonly_supported) {}

void ShmMemslots::watch(ShmWindow& window, GuestAddress guest_base, Note note) {
    std::shared_ptr<ShmMemslots> self = shared_from_this();
    auto shared_note = std::make_shared<const Note>(std::move(note));
    window.set_observer([self, guest_base, shared_note](const ShmWindow::Mapping& mapping, ShmWindow::Change change) {
        GuestAddress gpa(guest_base.value() + mapping.offset);
        switch (change) {
            case ShmWindow::Change::kMapping: self->mapping(gpa, mapping); break;
            case ShmWindow::Change::kMapped: self->mapped(gpa, mapping, shared_note); break;
            case ShmWindow::Change::kUnmapped: self->unmapped(gpa); break;
            case ShmWindow::Change::kReleased: self->released(gpa.value(), mapping.len); break;
        }
    });
}

size_t ShmMemslots::slot_count() const {
    std::lock_guard lock(mutex_);
    return slots_.size();
}

std::map<uint64_t, ShmMemslots::Slot>::iterator ShmMemslots::drop(std::map<uint64_t, Slot>::iterator it) {
    // Size 0 deletes the slot; KVM then zaps the guest's mappings of it before the host range changes.
    if (auto ok = set_slot_(it->second.id, it->first, 0, nullptr, 0); !ok)
        log_.error("shared memory at {:#x}: deleting memslot {}: {}", it->first, it->second.id, ok.error().message);
    free_slots_.push_back(it->second.id);
    return slots_.erase(it);
}

std::optional<uint32_t> ShmMemslots::take_slot() {
    if (!free_slots_.empty()) {
        uint32_t slot = free_slots_.back();
        free_slots_.pop_back();
        return slot;
    }
    if (next_slot_ < slot_limit_) return next_slot_++;
    for (auto it = slots_.begin(); it != slots_.end(); ++it) {
        if (it->second.mapped) continue;
        drop(it);
        return take_slot();
    }
    return std::nullopt;
}

bool ShmMemslots::Slot::fits(const ShmWindow::Mapping& m) const { return len == m.len && writable == m.writable; }

void ShmMemslots::mapping(GuestAddress gpa, const ShmWindow::Mapping& mapping) {
    std::lock_guard lock(mutex_);
    const uint64_t start = gpa.value(), end = start + mapping.len;
    // Kept slots the new mapping overlaps, but for one of exactly its range and protection, go before the
    // pages change under them (a kept writable slot over a new read-only page would fault the vCPU). The
    // window refuses overlaps with live mappings, so these are all kept ones.
    auto it = slots_.lower_bound(start);
    if (it != slots_.begin()) {
        auto prev = std::prev(it);
        if (prev->first + prev->second.len > start) it = prev;
    }
    while (it != slots_.end() && it->first < end) {
        if (it->first == start && it->second.fits(mapping)) ++it;
        else it = drop(it);
    }
}

void ShmMemslots::mapped(GuestAddress gpa, const ShmWindow::Mapping& mapping, std::shared_ptr<const Note> note) {
    std::lock_guard lock(mutex_);
    const uint64_t start = gpa.value();
    if (auto it = slots_.find(start); it != slots_.end() && it->second.fits(mapping)) {
        // The slot kept since an unmap of this very range already points at it, and the new pages
        // replaced the zero-filled ones atomically: nothing for KVM to change.
        it->second.mapped = true;
        return;
    }
    if (!mapping.writable && !readonly_supported_) {
        log_.error("shared memory at {:#x}: read-only mapping but KVM lacks KVM_CAP_READONLY_MEM; "
                      "the guest sees a hole there", start);
        return;
    }
    auto slot = take_slot();
    if (!slot) {
        // The window caps its mappings well below KVM's slot count, so this is a configuration limit, not
        // a guest-visible state: the mapping stays host-only and the guest sees a hole.
        log_.error("shared memory at {:#x}: no KVM memslot left; the guest sees a hole there", start);
        return;
    }
    uint32_t flags = mapping.writable ? 0 : KVM_MEM_READONLY;
    if (auto ok = set_slot_(*slot, start, mapping.len, mapping.host, flags); !ok) {
        log_.error("shared memory at {:#x} (+{:#x}): {}; the guest sees a hole there", start, mapping.len,
                      ok.error().message);
        free_slots_.push_back(*slot);
        return;
    }
    slots_[start] = Slot{*slot, mapping.len, mapping.writable, true, mapping.host, std::move(note)};
}

void ShmMemslots::unmapped(GuestAddress gpa) {
    std::lock_guard lock(mutex_);
    auto it = slots_.find(gpa.value());
    if (it != slots_.end()) it->second.mapped = false;  // absent: the mapping never became a memslot
}

void ShmMemslots::released(uint64_t gpa, uint64_t len) {
    std::lock_guard lock(mutex_);
    for (auto it = slots_.lower_bound(gpa); it != slots_.end() && it->first < gpa + len;) it = drop(it);
}

size_t ShmMemslots::repair() {
    std::lock_guard lock(mutex_);
    size_t repaired = 0;
    for (auto it = slots_.begin(); it != slots_.end();) {
        const Slot& slot = it->second;
        const char* why = nullptr;
        if (!slot.mapped && slot.writable) why = "the guest wrote to an unmapped range";
        else if (slot.mapped && !readable(slot.host, slot.len)) why = "the back-end's file no longer covers the mapping";
        if (!why) {
            ++it;
            continue;
        }
        std::string line = fmt::format("shared memory at {:#x} (+{:#x}): {}; the guest sees a hole there now",
                                       it->first, slot.len, why);
        log_.warn("{}", line);
        if (slot.note && *slot.note) (*slot.note)(line);
        std::byte* host = slot.host;
        uint64_t len = slot.len;
        bool shrunk = slot.mapped;
        it = drop(it);
        // Kite's own reads of the window must not SIGBUS either; the window's books still name the
        // mapping, and its unmap or clear() replaces this memory like any other.
        if (shrunk) ShmWindow::zero_fill(host, len);
        ++repaired;
    }
    return repaired;
}

}  // namespace kite

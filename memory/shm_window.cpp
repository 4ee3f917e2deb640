#include "memory/shm_window.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "base/size.h"
#include "memory/address.h"

namespace kite {

namespace {

constexpr uint64_t kHostHugePage = 2 << 20;

uint64_t page_size() {
    static const uint64_t size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    return size;
}

bool page_aligned(uint64_t value) { return value % page_size() == 0; }

// Turns [at, at + len) back into an inaccessible reservation, atomically replacing what is there.
bool reserve_fixed(std::byte* at, uint64_t len) {
    return ::mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != MAP_FAILED;
}

}  // namespace

// Read-only so that it costs no memory whatever happens: reads share the kernel's zero page, and a guest
// write faults (ShmMemslots::repair then turns the range into a hole) instead of allocating pages the
// guest's memory limit does not count. Atomic: a KVM memslot over the range sees the old pages or the new.
bool ShmWindow::zero_fill(std::byte* at, uint64_t len) {
    return ::mmap(at, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != MAP_FAILED;
}

Result<ShmWindow> ShmWindow::reserve(uint64_t size, size_t max_mappings) {
    if (size == 0) return fail("shared-memory window of size 0");
    if (!page_aligned(size)) return fail("shared-memory window size " + hex_text(size) + " is not page aligned");
    // Reserve 2 MiB more and trim, so the window starts on a 2 MiB boundary and the guest can get huge
    // page mappings when a back-end maps huge-page-backed memory.
    uint64_t align = size >= kHostHugePage ? kHostHugePage : page_size();
    uint64_t padded;
    if (__builtin_add_overflow(size, align - page_size(), &padded))
        return fail("shared-memory window size " + hex_text(size) + " is too large");
    void* raw = ::mmap(nullptr, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return std::unexpected(errno_error("cannot reserve a " + format_size(size) + " shared-memory window"));
    auto start = reinterpret_cast<uintptr_t>(raw);
    uintptr_t aligned = (start + align - 1) & ~(uintptr_t{align} - 1);
    uint64_t head = aligned - start;
    uint64_t tail = padded - head - size;
    if (head != 0) ::munmap(raw, head);
    if (tail != 0) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
    return ShmWindow(HostMapping(reinterpret_cast<void*>(aligned), size), max_mappings);
}

ShmWindow::ShmWindow(ShmWindow&& other) noexcept
    : reservation_(std::move(other.reservation_)),
      mappings_(std::exchange(other.mappings_, {})),
      max_mappings_(other.max_mappings_),
      used_(std::exchange(other.used_, false)),
      observer_(std::exchange(other.observer_, nullptr)) {}

ShmWindow& ShmWindow::operator=(ShmWindow&& other) noexcept {
    if (this != &other) {
        clear();
        reservation_ = std::move(other.reservation_);
        mappings_ = std::exchange(other.mappings_, {});
        max_mappings_ = other.max_mappings_;
        used_ = std::exchange(other.used_, false);
        observer_ = std::exchange(other.observer_, nullptr);
    }
    return *this;
}

ShmWindow::~ShmWindow() { clear(); }

Result<void> ShmWindow::check_range(const char* what, uint64_t shm_offset, uint64_t len) const {
    std::string request = std::string(what) + " " + range_text(shm_offset, len);
    if (len == 0) return fail(request + " refused: length 0");
    if (!page_aligned(shm_offset)) return fail(request + " refused: offset is not page aligned");
    if (!page_aligned(len)) return fail(request + " refused: length is not page aligned");
    uint64_t end;
    if (__builtin_add_overflow(shm_offset, len, &end)) return fail(request + " refused: offset + length overflows");
    if (end > size())
        return fail(request + " refused: extends beyond the " + hex_text(size()) + "-byte window");
    return {};
}

Result<void> ShmWindow::map(uint64_t shm_offset, int fd, uint64_t fd_offset, uint64_t len, bool writable) {
    // guest-controlled: every parameter comes from a vhost-user back-end's SHMEM_MAP request.
    std::string request = "shared-memory map " + range_text(shm_offset, len);
    if (!reservation_) return fail(request + " refused: the window has been moved away");
    if (fd < 0) return fail(request + " refused: no file descriptor");
    if (auto ok = check_range("shared-memory map", shm_offset, len); !ok) return ok;
    if (!page_aligned(fd_offset)) return fail(request + " refused: fd offset " + hex_text(fd_offset) + " is not page aligned");
    // mmap takes the file offset as a signed off_t, and the kernel wants the end to fit in one too.
    uint64_t fd_end;
    if (__builtin_add_overflow(fd_offset, len, &fd_end) || fd_end > static_cast<uint64_t>(INT64_MAX))
        return fail(request + " refused: fd offset " + hex_text(fd_offset) + " + length overflows");
    // Pages past the end of a file SIGBUS whoever touches them: Kite itself when it reads the window.
    // Where the size is knowable (regular files, memfds) such a request is refused here. (A back-end
    // can still shrink its own file later; that is between it and the pages it maps.)
    struct stat st {};
    if (::fstat(fd, &st) != 0) return std::unexpected(errno_error(request + " refused: fstat of the fd"));
    if (S_ISREG(st.st_mode) && fd_end > static_cast<uint64_t>(st.st_size))
        return fail(request + " refused: fd range " + range_text(fd_offset, len) + " (" + format_size(len) +
                    ") runs past the end of the " + format_size(static_cast<uint64_t>(st.st_size)) + " file");

    // The only mappings that can overlap are the last one starting below the end of the new range and,
    // since mappings do not overlap each other, nothing earlier than it.
    auto next = std::lower_bound(mappings_.begin(), mappings_.end(), shm_offset + len,
                                 [](const Mapping& m, uint64_t end) { return m.offset < end; });
    if (next != mappings_.begin()) {
        const Mapping& prev = *std::prev(next);
        if (ranges_overlap(shm_offset, len, prev.offset, prev.len))
            return fail(request + " refused: overlaps the existing mapping " + range_text(prev.offset, prev.len));
    }

    if (mappings_.size() >= max_mappings_)
        return fail(request + " refused: the window already holds " + std::to_string(max_mappings_) + " mappings");

    std::byte* at = host_base() + shm_offset;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    // Mapped where the kernel likes first, then moved over the range: a failed MAP_FIXED could leave a
    // hole in the reservation (until it is filled again) where another thread's mmap may land, and a
    // mmap that fails here leaves the window exactly as it was. mremap replaces the range atomically.
    void* placed = ::mmap(nullptr, len, prot, MAP_SHARED, fd, static_cast<off_t>(fd_offset));
    if (placed == MAP_FAILED) return std::unexpected(errno_error(request + " failed: mmap of fd offset " + hex_text(fd_offset)));
    notify(Mapping{shm_offset, len, at, writable}, Change::kMapping);
    if (::mremap(placed, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, at) == MAP_FAILED) {
        Error error = errno_error(request + " failed: cannot move the mapping into the window");
        ::munmap(placed, len);
        // mremap may have removed what was underneath before failing (out of memory for the map): fill
        // the range again so nothing else lands in the window and a guest view kept over it finds memory.
        zero_fill(at, len);
        used_ = true;
        return std::unexpected(std::move(error));
    }
    used_ = true;
    auto inserted = mappings_.insert(next, Mapping{shm_offset, len, at, writable});
    notify(*inserted, Change::kMapped);
    return {};
}

Result<void> ShmWindow::unmap(uint64_t shm_offset, uint64_t len) {
    // guest-controlled: both parameters come from a vhost-user back-end's SHMEM_UNMAP request.
    std::string request = "shared-memory unmap " + range_text(shm_offset, len);
    if (!reservation_) return fail(request + " refused: the window has been moved away");
    if (auto ok = check_range("shared-memory unmap", shm_offset, len); !ok) return ok;
    auto it = std::lower_bound(mappings_.begin(), mappings_.end(), shm_offset,
                               [](const Mapping& m, uint64_t offset) { return m.offset < offset; });
    if (it == mappings_.end() || it->offset != shm_offset)
        return fail(request + " refused: no mapping starts at " + hex_text(shm_offset));
    if (it->len != len)
        return fail(request + " refused: the mapping there is " + range_text(it->offset, it->len) +
                    ", not exactly this range");

    Mapping gone = *it;
    notify(gone, Change::kUnmapped);
    if (!zero_fill(gone.host, gone.len)) {
        Error error = errno_error(request + " failed: cannot replace the range");
        notify(gone, Change::kMapped);  // the file is still mapped there: keep the books and the observer honest
        return std::unexpected(std::move(error));
    }
    mappings_.erase(it);
    return {};
}

void ShmWindow::clear() {
    if (!used_) return;
    notify(Mapping{0, size(), host_base(), false}, Change::kReleased);
    // One mapping over the whole window: no VMA splitting, so this does not run into map-count limits.
    // If it fails anyway, the files stay mapped but no longer guest-visible, and the reservation
    // (released by ~HostMapping) still covers them.
    reserve_fixed(host_base(), size());
    mappings_.clear();
    used_ = false;
}

}  // namespace kite

#include "memory/ram_block.h"

#include <linux/memfd.h>  // MFD_HUGE_2MB (glibc only has MFD_HUGETLB)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "base/size.h"

namespace kite {

namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kHugePageSize = 2 << 20;
// memfd names are limited to 249 bytes by the kernel; keep well inside.
constexpr size_t kMaxMemfdName = 200;

}  // namespace

Result<RamBlock> RamBlock::create(uint64_t size, RamOffset offset, HugePages mode, std::string_view name) {
    std::string label = "RAM block '" + std::string(name) + "'";
    bool hugetlb = mode == HugePages::Hugetlbfs2M;
    if (size == 0) return fail(label + " has size 0");
    if (size % kPageSize != 0) return fail(label + " size " + format_size(size) + " is not a multiple of 4 KiB");
    if (hugetlb && size % kHugePageSize != 0)
        return fail(label + " size " + format_size(size) + " is not a multiple of 2 MiB, as 2 MiB huge pages need");
    // ftruncate takes an off_t; RAM offsets must not wrap.
    if (size > static_cast<uint64_t>(INT64_MAX) || !offset.checked_add(size))
        return fail(label + " size " + format_size(size) + " is too large");

    // Sealable, so the size can be fixed before the fd reaches a vhost-user back-end (below).
    unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    if (hugetlb) flags |= MFD_HUGETLB | MFD_HUGE_2MB;
    std::string memfd_name(name.substr(0, kMaxMemfdName));
    UniqueFd fd(::memfd_create(memfd_name.c_str(), flags));
    if (!fd) {
        if (hugetlb) return std::unexpected(errno_error("2 MiB huge pages are not supported by this host for " + label));
        return std::unexpected(errno_error("cannot create a memfd for " + label));
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
        return std::unexpected(errno_error("cannot size " + label + " to " + format_size(size)));
    // Every vhost-user back-end gets this fd. One that shrank the file would make Kite's own accesses to
    // the block SIGBUS; with the size sealed (and the seals themselves), ftruncate fails with EPERM.
    // hugetlbfs memfds take these seals too (Linux 4.16 and later); a kernel that refuses is an error,
    // not an unsealed block.
    if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return std::unexpected(errno_error("cannot seal the size of " + label));

    // hugetlbfs pages are reserved at mmap time unless MAP_NORESERVE is given; we want that
    // reservation, so a shortage is this clear error now instead of a SIGBUS when the guest first
    // touches the page. Ordinary shmem is not reserved either way (memfds are VM_NORESERVE).
    int map_flags = MAP_SHARED;
    if (!hugetlb) map_flags |= MAP_NORESERVE;
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, map_flags, fd.get(), 0);
    if (addr == MAP_FAILED) {
        if (hugetlb)
            return std::unexpected(errno_error("no 2 MiB huge pages available for a " + format_size(size) +
                                               " RAM block (reserve them in /proc/sys/vm/nr_hugepages)"));
        return std::unexpected(errno_error("cannot map " + format_size(size) + " for " + label));
    }
    HostMapping mapping(addr, size);

    // Whether shmem gets huge pages is the host's choice (/sys/kernel/mm/transparent_hugepage/shmem_enabled:
    // advise or always). Where it does, a guest touches 512 times fewer pages into its nested page tables.
    // Auto takes 4 KiB pages when the kernel has no transparent huge pages; Transparent is an error then.
    if (mode == HugePages::Transparent || mode == HugePages::Auto) {
        if (::madvise(addr, size, MADV_HUGEPAGE) != 0 && mode == HugePages::Transparent)
            return std::unexpected(errno_error("transparent huge pages are not available for " + label));
    }

    return RamBlock(std::move(fd), std::move(mapping), offset, mode);
}

}  // namespace kite

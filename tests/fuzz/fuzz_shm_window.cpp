// Drives ShmWindow::map/unmap/clear with parameters a hostile vhost-user back-end chooses (its
// SHMEM_MAP/SHMEM_UNMAP requests) on a small window and a small memfd. Checks, after every request,
// that the window agrees with a simple model of the rules, that mappings stay sorted, inside the window
// and never overlap, that the observer saw exactly the current mappings, and, per input, that every page
// of the window is mapped the way the books say (/proc/self/maps).
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "base/fd.h"
#include "memory/shm_window.h"

using namespace kite;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kWindowPages = 16;
constexpr uint64_t kFilePages = 8;

void check(bool ok, const char* what) {
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\n", what);
        std::abort();
    }
}

// A memfd whose page n is filled with the byte n + 1.
int test_memfd() {
    static UniqueFd fd = [] {
        UniqueFd f(::memfd_create("fuzz-shm", MFD_CLOEXEC));
        check(f.valid() && ::ftruncate(f.get(), kFilePages * kPage) == 0, "memfd setup");
        for (uint64_t page = 0; page < kFilePages; ++page) {
            std::string bytes(kPage, static_cast<char>(page + 1));
            check(::pwrite(f.get(), bytes.data(), kPage, static_cast<off_t>(page * kPage)) == kPage, "memfd fill");
        }
        return f;
    }();
    return fd.get();
}

// Offsets and lengths, one byte each in the common case so that short inputs already hold several
// requests: mostly small page multiples (so requests often succeed and collide), sometimes unaligned
// or huge values so the alignment, overflow and range checks are hit.
uint64_t pick(FuzzedDataProvider& in) {
    uint8_t b = in.ConsumeIntegral<uint8_t>();
    if (b < 0xE0) return (b % (kWindowPages + 3)) * kPage;
    switch (b & 3) {
        case 0: return in.ConsumeIntegral<uint64_t>();
        case 1: return UINT64_MAX - (b >> 2 & 3) * kPage + 1;
        case 2: return (b >> 2 & 7) * 512;
        default: return static_cast<uint64_t>(INT64_MAX) - (b >> 2 & 3) * kPage + 1;
    }
}

struct Shadow {
    uint64_t len;
    uint64_t fd_offset;
    bool writable;
};

bool model_accepts_map(const std::map<uint64_t, Shadow>& model, uint64_t off, uint64_t fd_off, uint64_t len) {
    uint64_t end, fd_end;
    if (len == 0 || off % kPage || fd_off % kPage || len % kPage) return false;
    if (__builtin_add_overflow(off, len, &end) || end > kWindowPages * kPage) return false;
    if (__builtin_add_overflow(fd_off, len, &fd_end) || fd_end > static_cast<uint64_t>(INT64_MAX)) return false;
    if (fd_end > kFilePages * kPage) return false;  // past the end of the memfd
    for (const auto& [o, m] : model)
        if (off < o + m.len && o < end) return false;
    return true;
}

// Permissions of each window page according to /proc/self/maps.
std::map<uint64_t, std::string> page_perms(const std::byte* base) {
    std::map<uint64_t, std::string> perms;
    auto lo = reinterpret_cast<uintptr_t>(base);
    auto hi = lo + kWindowPages * kPage;
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range, p;
        fields >> range >> p;
        auto dash = range.find('-');
        uintptr_t start = std::stoull(range.substr(0, dash), nullptr, 16);
        uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
        for (uintptr_t a = std::max(start, lo); a < std::min(end, hi); a += kPage) perms[(a - lo) / kPage] = p;
    }
    return perms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int fd = test_memfd();
    std::map<uint64_t, Shadow> model;
    // What the observer was told is mapped (offset -> len). Declared before the window: the window's
    // destructor tells the observer about the mappings it removes.
    std::map<uint64_t, uint64_t> observed;
    std::set<uint64_t> held;  // pages that held a mapping since the last clear
    auto window = ShmWindow::reserve(kWindowPages * kPage);
    check(window.has_value(), "reserve");
    window->set_observer([&](const ShmWindow::Mapping& m, ShmWindow::Change change) {
        switch (change) {
            case ShmWindow::Change::kMapping:
                for (const auto& [off, len] : observed)
                    check(m.offset + m.len <= off || off + len <= m.offset, "observer told of an overlapping mapping");
                break;
            case ShmWindow::Change::kMapped:
                check(observed.emplace(m.offset, m.len).second, "observer told of a mapping twice");
                break;
            case ShmWindow::Change::kUnmapped:
                check(observed.erase(m.offset) == 1, "observer told of removing an unknown mapping");
                break;
            case ShmWindow::Change::kReleased:
                check(m.offset == 0 && m.len == kWindowPages * kPage, "release is not the whole window");
                observed.clear();
                break;
        }
    });

    for (int steps = 0; steps < 64 && in.remaining_bytes() > 0; ++steps) {
        int op = in.ConsumeIntegralInRange<int>(0, 9);
        if (op < 6) {
            uint64_t off = pick(in), fd_off = pick(in), len = pick(in);
            bool writable = in.ConsumeBool();
            bool expected = model_accepts_map(model, off, fd_off, len);
            bool ok = window->map(off, fd, fd_off, len, writable).has_value();
            check(ok == expected, "map result differs from the model");
            if (ok) {
                model.emplace(off, Shadow{len, fd_off, writable});
                for (uint64_t p = off / kPage; p < (off + len) / kPage; ++p) held.insert(p);
            }
        } else if (op < 9) {
            uint64_t off = pick(in), len = pick(in);
            auto it = model.find(off);
            bool expected = len != 0 && it != model.end() && it->second.len == len;
            bool ok = window->unmap(off, len).has_value();
            check(ok == expected, "unmap result differs from the model");
            if (ok) model.erase(it);
        } else {
            window->clear();
            model.clear();
            held.clear();
        }

        const auto& mappings = window->mappings();
        check(mappings.size() == model.size() && observed.size() == model.size(), "mapping count");
        uint64_t prev_end = 0;
        for (const auto& m : mappings) {
            check(m.offset >= prev_end, "mappings overlap or are unsorted");
            check(m.len > 0 && m.offset + m.len <= window->size(), "mapping outside the window");
            check(m.host == window->host_base() + m.offset, "mapping host address");
            check(observed.count(m.offset) == 1 && model.count(m.offset) == 1, "mapping unknown to the model");
            prev_end = m.offset + m.len;
            // Pages backed by the file must show its bytes (no mapping runs past its end).
            const Shadow& s = model.at(m.offset);
            check(static_cast<uint8_t>(*m.host) == s.fd_offset / kPage + 1, "mapped bytes differ from the file");
        }
    }

    auto perms = page_perms(window->host_base());
    for (uint64_t page = 0; page < kWindowPages; ++page) {
        // Never mapped since the last clear: reserved. Mapped once and unmapped: read-only zero-filled memory.
        std::string want = held.count(page) ? "r--p" : "---p";
        for (const auto& [o, s] : model)
            if (page * kPage >= o && page * kPage < o + s.len) want = s.writable ? "rw-s" : "r--s";
        check(perms[page] == want, "page protection differs from the books");
    }
    return 0;
}

// ShmMemslots against a real ShmWindow, with the KVM ioctl recorded instead of made: which memslot calls
// SHMEM_MAP / SHMEM_UNMAP sequences cost, and that a slot never points at a changed mapping it does not fit.
#include <doctest/doctest.h>
#include <linux/kvm.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "../log_capture.h"
#include "../memory/proc_self.h"
#include "base/fd.h"
#include "memory/shm_window.h"
#include "vmm/kvm/shm_memslots.h"

using namespace kite;

namespace {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t kBase = 0x100000000;  // where the guest sees the window

struct Call {
    uint32_t slot;
    uint64_t gpa;
    uint64_t size;  // 0: delete
    uint32_t flags;
    bool operator==(const Call&) const = default;
};

struct Fixture {
    explicit Fixture(uint32_t slots = 8, bool readonly = true)
        : memslots(std::make_shared<ShmMemslots>(
              [this](uint32_t slot, uint64_t gpa, uint64_t size, void*, uint32_t flags) -> Result<void> {
                  calls.push_back({slot, gpa, size, flags});
                  if (size == 0) perms_at_delete.push_back(test::mapping_perms(window.host_base() + (gpa - kBase)));
                  return {};
              },
              10, 10 + slots, readonly)),
          window(*ShmWindow::reserve(MiB)), fd(::memfd_create("shm-memslots-test", MFD_CLOEXEC)) {
        REQUIRE(fd);
        REQUIRE(::ftruncate(fd.get(), 64 * KiB) == 0);
        memslots->watch(window, GuestAddress(kBase));
    }
    bool map(uint64_t off, uint64_t len, bool writable = true) { return window.map(off, fd.get(), 0, len, writable).has_value(); }
    bool unmap(uint64_t off, uint64_t len) { return window.unmap(off, len).has_value(); }

    std::vector<Call> calls;  // before the window: its destructor still reports to the memslots
    std::vector<std::string> perms_at_delete;  // what the host range held when its slot was deleted
    std::shared_ptr<ShmMemslots> memslots;
    ShmWindow window;
    UniqueFd fd;
};

}  // namespace

TEST_CASE("a mapping gets a memslot at the window's guest address plus its offset") {
    Fixture f;
    REQUIRE(f.map(16 * KiB, 8 * KiB));
    REQUIRE(f.map(64 * KiB, 4 * KiB, false));
    CHECK(f.calls == std::vector<Call>{{10, kBase + 16 * KiB, 8 * KiB, 0}, {11, kBase + 64 * KiB, 4 * KiB, KVM_MEM_READONLY}});
    CHECK(f.memslots->slot_count() == 2u);
}

TEST_CASE("unmap and a new mapping of the same range and protection cost no memslot call") {
    Fixture f;
    REQUIRE(f.map(0, 8 * KiB));
    for (int round = 0; round < 5; ++round) {
        REQUIRE(f.unmap(0, 8 * KiB));
        REQUIRE(f.map(0, 8 * KiB));
    }
    CHECK(f.calls == std::vector<Call>{{10, kBase, 8 * KiB, 0}});
    CHECK(f.memslots->slot_count() == 1u);
}

TEST_CASE("a kept slot that does not fit a new mapping is deleted before the pages change") {
    Fixture f;
    REQUIRE(f.map(0, 8 * KiB));
    REQUIRE(f.unmap(0, 8 * KiB));
    SUBCASE("other protection") {
        REQUIRE(f.map(0, 8 * KiB, false));
        CHECK(f.calls == std::vector<Call>{{10, kBase, 8 * KiB, 0}, {10, kBase, 0, 0}, {10, kBase, 8 * KiB, KVM_MEM_READONLY}});
        // The writable slot went while zero-filled memory was still there, not over the read-only file.
        CHECK(f.perms_at_delete == std::vector<std::string>{"r--p"});
    }
    SUBCASE("other length") {
        REQUIRE(f.map(0, 4 * KiB));
        CHECK(f.calls == std::vector<Call>{{10, kBase, 8 * KiB, 0}, {10, kBase, 0, 0}, {10, kBase, 4 * KiB, 0}});
    }
    SUBCASE("overlapping from above") {
        REQUIRE(f.map(4 * KiB, 8 * KiB));
        CHECK(f.calls ==
              std::vector<Call>{{10, kBase, 8 * KiB, 0}, {10, kBase, 0, 0}, {10, kBase + 4 * KiB, 8 * KiB, 0}});
    }
    CHECK(f.memslots->slot_count() == 1u);
}

TEST_CASE("a kept slot next to a new mapping stays") {
    Fixture f;
    REQUIRE(f.map(0, 8 * KiB));
    REQUIRE(f.unmap(0, 8 * KiB));
    REQUIRE(f.map(8 * KiB, 8 * KiB));
    CHECK(f.calls == std::vector<Call>{{10, kBase, 8 * KiB, 0}, {11, kBase + 8 * KiB, 8 * KiB, 0}});
    CHECK(f.memslots->slot_count() == 2u);
}

TEST_CASE("kept slots give way when slots run short; mapped ones never do") {
    Fixture f(2);
    REQUIRE(f.map(0, 4 * KiB));
    REQUIRE(f.map(4 * KiB, 4 * KiB));
    REQUIRE(f.unmap(0, 4 * KiB));
    REQUIRE(f.map(16 * KiB, 4 * KiB));  // takes the kept slot 10
    CHECK(f.calls == std::vector<Call>{{10, kBase, 4 * KiB, 0},
                                       {11, kBase + 4 * KiB, 4 * KiB, 0},
                                       {10, kBase, 0, 0},
                                       {10, kBase + 16 * KiB, 4 * KiB, 0}});
    f.calls.clear();
    REQUIRE(f.map(32 * KiB, 4 * KiB));  // every slot maps something: the guest sees a hole, Kite goes on
    CHECK(f.calls.empty());
    REQUIRE(f.unmap(32 * KiB, 4 * KiB));  // the mapping without a slot goes quietly
    CHECK(f.memslots->slot_count() == 2u);
}

TEST_CASE("clear deletes every slot of the window, mapped or kept") {
    Fixture f;
    REQUIRE(f.map(0, 4 * KiB));
    REQUIRE(f.map(8 * KiB, 4 * KiB));
    REQUIRE(f.unmap(8 * KiB, 4 * KiB));
    f.calls.clear();
    f.window.clear();
    CHECK(f.calls == std::vector<Call>{{10, kBase, 0, 0}, {11, kBase + 8 * KiB, 0, 0}});
    CHECK(f.memslots->slot_count() == 0u);
    REQUIRE(f.map(0, 4 * KiB));  // the freed slot numbers are used again
    CHECK(f.calls.back().slot == 11u);
}

TEST_CASE("a read-only mapping without KVM_CAP_READONLY_MEM stays a hole") {
    Fixture f(8, false);
    REQUIRE(f.map(0, 4 * KiB, false));
    CHECK(f.calls.empty());
    REQUIRE(f.unmap(0, 4 * KiB));
    CHECK(f.memslots->slot_count() == 0u);
}

TEST_CASE("repair deletes kept writable slots, whose read-only zero memory a guest write faults on") {
    Fixture f;
    REQUIRE(f.map(0, 8 * KiB));
    REQUIRE(f.map(16 * KiB, 4 * KiB, false));
    REQUIRE(f.map(32 * KiB, 4 * KiB));
    REQUIRE(f.unmap(0, 8 * KiB));
    REQUIRE(f.unmap(16 * KiB, 4 * KiB));
    f.calls.clear();
    CHECK(f.memslots->repair() == 1u);
    // The writable kept slot goes; a kept read-only slot cannot be written (KVM exits to Kite) and a
    // mapped one is backed by the file.
    CHECK(f.calls == std::vector<Call>{{10, kBase, 0, 0}});
    CHECK(f.memslots->slot_count() == 2u);
    CHECK(f.memslots->repair() == 0u);
}

TEST_CASE("repair replaces a mapping whose file shrank under it, and tells the window's note") {
    Fixture f;
    std::vector<std::string> notes;
    f.memslots->watch(f.window, GuestAddress(kBase), [&](std::string_view line) { notes.emplace_back(line); });
    REQUIRE(f.map(0, 16 * KiB));
    REQUIRE(f.map(32 * KiB, 4 * KiB));  // offset 0 of the file: still covered after the shrink
    REQUIRE(::ftruncate(f.fd.get(), 8 * KiB) == 0);
    f.calls.clear();
    CHECK(f.memslots->repair() == 1u);
    CHECK(f.calls == std::vector<Call>{{10, kBase, 0, 0}});
    REQUIRE(notes.size() == 1u);
    CHECK(notes[0].find("no longer covers") != std::string::npos);
    // Kite can read the whole range again (zeroes) instead of taking SIGBUS past the file's end.
    auto* host = reinterpret_cast<volatile uint8_t*>(f.window.host_base());
    CHECK(host[12 * KiB] == 0);
    CHECK(test::mapping_path(f.window.host_base()) == "");
    // The window's books still hold the mapping; its unmap goes through as usual.
    CHECK(f.unmap(0, 16 * KiB));
    CHECK(f.memslots->slot_count() == 1u);
}

// Issue 12 item 14: every SHMEM_MAP the memslots cannot give the guest is the back-end's doing, and a
// back-end can send them in a loop.
TEST_CASE("a back-end mapping in a loop what the guest cannot see logs a bounded number of lines") {
    Fixture f(8, false);  // no read-only memslots
    test::LogCapture log;

    for (int i = 0; i < 200; ++i) {
        REQUIRE(f.map(0, 4 * KiB, false));
        REQUIRE(f.unmap(0, 4 * KiB));
    }

    CHECK(f.memslots->slot_count() == 0u);
    CHECK(log.lines() <= 11);  // LogLimit's burst, and one "suppressed" line
}

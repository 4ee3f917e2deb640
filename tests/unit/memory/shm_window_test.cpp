#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/fd.h"
#include "memory/shm_window.h"
#include "proc_self.h"

using namespace kite;

namespace {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1 << 20;

// A memfd of `size` bytes whose page n starts with the text "page<n>".
UniqueFd make_memfd(uint64_t size) {
    UniqueFd fd(::memfd_create("shm-test", MFD_CLOEXEC));
    REQUIRE(fd.valid());
    REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
    for (uint64_t page = 0; page < size / 4096; ++page) {
        std::string text = "page" + std::to_string(page);
        REQUIRE(::pwrite(fd.get(), text.data(), text.size(), static_cast<off_t>(page * 4096)) ==
                static_cast<ssize_t>(text.size()));
    }
    return fd;
}

std::string text_at(const std::byte* at, size_t len) { return std::string(reinterpret_cast<const char*>(at), len); }

std::string map_error(ShmWindow& window, uint64_t shm_offset, int fd, uint64_t fd_offset, uint64_t len) {
    auto result = window.map(shm_offset, fd, fd_offset, len, true);
    REQUIRE_FALSE(result.has_value());
    return result.error().message;
}

std::string unmap_error(ShmWindow& window, uint64_t shm_offset, uint64_t len) {
    auto result = window.unmap(shm_offset, len);
    REQUIRE_FALSE(result.has_value());
    return result.error().message;
}

using Change = ShmWindow::Change;
struct Event {
    uint64_t offset;
    uint64_t len;
    Change change;
    bool operator==(const Event&) const = default;
};
auto recorder(std::vector<Event>& events) {
    return [&events](const ShmWindow::Mapping& m, Change change) { events.push_back({m.offset, m.len, change}); };
}

}  // namespace

TEST_CASE("a reserved window is inaccessible anonymous memory on a 2 MiB boundary") {
    auto window = ShmWindow::reserve(4 * MiB);
    REQUIRE(window.has_value());
    CHECK(window->size() == 4 * MiB);
    CHECK(reinterpret_cast<uintptr_t>(window->host_base()) % (2 * MiB) == 0);
    CHECK(test::mapping_perms(window->host_base()) == "---p");
    CHECK(test::mapping_perms(window->host_base() + 4 * MiB - 1) == "---p");
    CHECK(test::mapping_path(window->host_base()) == "");
    CHECK(window->mappings().empty());
}

TEST_CASE("reserving a window of size 0 or not page aligned is refused") {
    CHECK(ShmWindow::reserve(0).error().message == "shared-memory window of size 0");
    CHECK(ShmWindow::reserve(4097).error().message == "shared-memory window size 0x1001 is not page aligned");
    CHECK(ShmWindow::reserve(UINT64_MAX - 4095).error().message.starts_with("shared-memory window size"));
}

TEST_CASE("mapped memfd bytes are visible at host_base plus the offset") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(8 * KiB, fd.get(), 16 * KiB, 8 * KiB, false).has_value());
    CHECK(text_at(window->host_base() + 8 * KiB, 5) == "page4");
    CHECK(text_at(window->host_base() + 12 * KiB, 5) == "page5");
    CHECK(test::mapping_perms(window->host_base() + 4 * KiB) == "---p");
    CHECK(test::mapping_perms(window->host_base() + 16 * KiB) == "---p");
}

TEST_CASE("writes through a writable mapping reach the file") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 4 * KiB, 4 * KiB, true).has_value());
    std::memcpy(window->host_base() + 100, "kite", 4);
    char back[4] = {};
    REQUIRE(::pread(fd.get(), back, 4, 4 * KiB + 100) == 4);
    CHECK(std::string(back, 4) == "kite");
    CHECK(test::mapping_perms(window->host_base()) == "rw-s");
}

TEST_CASE("a read-only mapping is mapped without write permission") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 0, 4 * KiB, false).has_value());
    CHECK(test::mapping_perms(window->host_base()) == "r--s");
    CHECK_FALSE(window->mappings()[0].writable);
}

TEST_CASE("a mapping stays readable after the caller closes its fd") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 8 * KiB, 4 * KiB, false).has_value());
    fd.reset();
    CHECK(text_at(window->host_base(), 5) == "page2");
}

TEST_CASE("unmap replaces the range with read-only zero-filled memory, not the file") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(16 * KiB, fd.get(), 0, 8 * KiB, true).has_value());
    REQUIRE(window->unmap(16 * KiB, 8 * KiB).has_value());
    // Read-only: no write can make the range cost memory (issue 12 item 8).
    CHECK(test::mapping_perms(window->host_base() + 16 * KiB) == "r--p");
    CHECK(test::mapping_perms(window->host_base() + 20 * KiB) == "r--p");
    CHECK(test::mapping_path(window->host_base() + 16 * KiB) == "");
    CHECK(text_at(window->host_base() + 16 * KiB, 5) == std::string(5, '\0'));
    CHECK(test::mapping_perms(window->host_base() + 24 * KiB) == "---p");  // never mapped: still reserved
    CHECK(window->mappings().empty());
    // The zero-filled range takes a new mapping like a reserved one.
    REQUIRE(window->map(16 * KiB, fd.get(), 4 * KiB, 4 * KiB, false).has_value());
    CHECK(text_at(window->host_base() + 16 * KiB, 5) == "page1");
}

TEST_CASE("mappings are kept sorted by offset with their host addresses") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(64 * KiB, fd.get(), 0, 4 * KiB, true).has_value());
    REQUIRE(window->map(0, fd.get(), 0, 4 * KiB, false).has_value());
    REQUIRE(window->map(32 * KiB, fd.get(), 0, 8 * KiB, true).has_value());
    const auto& m = window->mappings();
    REQUIRE(m.size() == 3u);
    CHECK(m[0].offset == 0);
    CHECK(m[1].offset == 32 * KiB);
    CHECK(m[1].len == 8 * KiB);
    CHECK(m[1].host == window->host_base() + 32 * KiB);
    CHECK(m[2].offset == 64 * KiB);
}

TEST_CASE("adjacent mappings are accepted") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(8 * KiB, fd.get(), 0, 8 * KiB, true).has_value());
    CHECK(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
    CHECK(window->map(16 * KiB, fd.get(), 0, 8 * KiB, true).has_value());
    CHECK(window->map(MiB - 4 * KiB, fd.get(), 0, 4 * KiB, true).has_value());
    CHECK(window->mappings().size() == 4u);
}

TEST_CASE("map refuses a missing fd and a zero length") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    CHECK(map_error(*window, 0, -1, 0, 4 * KiB) == "shared-memory map [0, +0x1000) refused: no file descriptor");
    CHECK(map_error(*window, 0, fd.get(), 0, 0) == "shared-memory map [0, +0) refused: length 0");
    CHECK(window->mappings().empty());
}

TEST_CASE("map refuses offsets and lengths that are not page aligned") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    CHECK(map_error(*window, 512, fd.get(), 0, 4 * KiB) ==
          "shared-memory map [0x200, +0x1000) refused: offset is not page aligned");
    CHECK(map_error(*window, 0, fd.get(), 0, 4 * KiB + 1) ==
          "shared-memory map [0, +0x1001) refused: length is not page aligned");
    CHECK(map_error(*window, 0, fd.get(), 100, 4 * KiB) ==
          "shared-memory map [0, +0x1000) refused: fd offset 0x64 is not page aligned");
    CHECK(window->mappings().empty());
}

TEST_CASE("map refuses ranges that overflow or leave the window") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    CHECK(map_error(*window, UINT64_MAX - 4095, fd.get(), 0, 8 * KiB) ==
          "shared-memory map [0xfffffffffffff000, +0x2000) refused: offset + length overflows");
    CHECK(map_error(*window, MiB - 4 * KiB, fd.get(), 0, 8 * KiB) ==
          "shared-memory map [0xff000, +0x2000) refused: extends beyond the 0x100000-byte window");
    CHECK(map_error(*window, MiB, fd.get(), 0, 4 * KiB) ==
          "shared-memory map [0x100000, +0x1000) refused: extends beyond the 0x100000-byte window");
    CHECK(map_error(*window, 0, fd.get(), 0x7fff'ffff'ffff'f000, 8 * KiB) ==
          "shared-memory map [0, +0x2000) refused: fd offset 0x7ffffffffffff000 + length overflows");
    CHECK(map_error(*window, 0, fd.get(), 0x7fff'ffff'ffff'e000, 8 * KiB) ==
          "shared-memory map [0, +0x2000) refused: fd offset 0x7fffffffffffe000 + length overflows");
    CHECK(map_error(*window, 0, fd.get(), UINT64_MAX - 4095, 8 * KiB) ==
          "shared-memory map [0, +0x2000) refused: fd offset 0xfffffffffffff000 + length overflows");
    CHECK(window->mappings().empty());
}

TEST_CASE("map refuses any overlap with an existing mapping") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(16 * KiB, fd.get(), 0, 8 * KiB, true).has_value());
    CHECK(map_error(*window, 12 * KiB, fd.get(), 0, 8 * KiB) ==
          "shared-memory map [0x3000, +0x2000) refused: overlaps the existing mapping [0x4000, +0x2000)");
    CHECK(map_error(*window, 20 * KiB, fd.get(), 0, 8 * KiB) ==
          "shared-memory map [0x5000, +0x2000) refused: overlaps the existing mapping [0x4000, +0x2000)");
    CHECK(map_error(*window, 0, fd.get(), 0, 64 * KiB).ends_with("overlaps the existing mapping [0x4000, +0x2000)"));
    CHECK(map_error(*window, 16 * KiB, fd.get(), 0, 8 * KiB).ends_with("overlaps the existing mapping [0x4000, +0x2000)"));
    CHECK(window->mappings().size() == 1u);
    CHECK(text_at(window->host_base() + 16 * KiB, 5) == "page0");
}

TEST_CASE("map refuses a mapping beyond the window's mapping limit") {
    auto window = ShmWindow::reserve(MiB, 2);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 0, 4 * KiB, true).has_value());
    REQUIRE(window->map(8 * KiB, fd.get(), 0, 4 * KiB, true).has_value());
    CHECK(map_error(*window, 16 * KiB, fd.get(), 0, 4 * KiB) ==
          "shared-memory map [0x4000, +0x1000) refused: the window already holds 2 mappings");
    REQUIRE(window->unmap(0, 4 * KiB).has_value());
    CHECK(window->map(16 * KiB, fd.get(), 0, 4 * KiB, true).has_value());
}

TEST_CASE("a failed mmap leaves the range as it was (reserved, never a hole or fresh memory), and no mapping") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    auto result = window->map(0, read_end.get(), 0, 8 * KiB, false);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message.starts_with("shared-memory map [0, +0x2000) failed: mmap of fd offset 0: "));
    CHECK(test::mapping_perms(window->host_base()) == "---p");
    CHECK(test::mapping_perms(window->host_base() + 4 * KiB) == "---p");
    CHECK(window->mappings().empty());
}

TEST_CASE("a writable mapping of a read-only fd is refused by mmap") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    std::string path = "/proc/self/fd/" + std::to_string(fd.get());
    UniqueFd read_only(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(read_only.valid());
    auto result = window->map(0, read_only.get(), 0, 4 * KiB, true);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == EACCES);
    CHECK(test::mapping_perms(window->host_base()) == "---p");  // still reserved, like after any failed map
    CHECK(window->map(0, read_only.get(), 0, 4 * KiB, false).has_value());
}

TEST_CASE("unmap refuses zero, unaligned, overflowing and out-of-window ranges") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    CHECK(unmap_error(*window, 0, 0) == "shared-memory unmap [0, +0) refused: length 0");
    CHECK(unmap_error(*window, 1, 4 * KiB) == "shared-memory unmap [0x1, +0x1000) refused: offset is not page aligned");
    CHECK(unmap_error(*window, 0, 1) == "shared-memory unmap [0, +0x1) refused: length is not page aligned");
    CHECK(unmap_error(*window, UINT64_MAX - 4095, 4 * KiB) ==
          "shared-memory unmap [0xfffffffffffff000, +0x1000) refused: offset + length overflows");
    CHECK(unmap_error(*window, MiB, 4 * KiB) ==
          "shared-memory unmap [0x100000, +0x1000) refused: extends beyond the 0x100000-byte window");
}

TEST_CASE("unmap refuses a range that is not exactly one existing mapping") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
    REQUIRE(window->map(8 * KiB, fd.get(), 0, 8 * KiB, true).has_value());
    CHECK(unmap_error(*window, 32 * KiB, 4 * KiB) ==
          "shared-memory unmap [0x8000, +0x1000) refused: no mapping starts at 0x8000");
    CHECK(unmap_error(*window, 4 * KiB, 4 * KiB) ==
          "shared-memory unmap [0x1000, +0x1000) refused: no mapping starts at 0x1000");
    CHECK(unmap_error(*window, 0, 4 * KiB) ==
          "shared-memory unmap [0, +0x1000) refused: the mapping there is [0, +0x2000), not exactly this range");
    CHECK(unmap_error(*window, 0, 16 * KiB) ==
          "shared-memory unmap [0, +0x4000) refused: the mapping there is [0, +0x2000), not exactly this range");
    CHECK(window->mappings().size() == 2u);
    CHECK(test::mapping_perms(window->host_base()) == "rw-s");
}

TEST_CASE("the observer is told before and after a mapping goes in, and before it goes") {
    std::vector<Event> events;
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    window->set_observer(recorder(events));
    REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
    REQUIRE_FALSE(window->map(4 * KiB, fd.get(), 0, 8 * KiB, true).has_value());  // refused: nothing told
    REQUIRE(window->unmap(0, 8 * KiB).has_value());
    CHECK(events == std::vector<Event>{
                        {0, 8 * KiB, Change::kMapping}, {0, 8 * KiB, Change::kMapped}, {0, 8 * KiB, Change::kUnmapped}});
}

TEST_CASE("the observer sees what the range holds at each change") {
    std::vector<std::string> seen;
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    window->set_observer([&](const ShmWindow::Mapping& m, Change) { seen.push_back(test::mapping_perms(m.host)); });
    REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
    REQUIRE(window->unmap(0, 8 * KiB).has_value());
    REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, false).has_value());
    CHECK(seen == std::vector<std::string>{"---p", "rw-s", "rw-s", "r--p", "r--s"});
}

TEST_CASE("clear removes every mapping, releases the whole window to the observer and reserves it again") {
    std::vector<Event> events;  // declared first: the observer must outlive the window
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
    REQUIRE(window->map(64 * KiB, fd.get(), 0, 4 * KiB, false).has_value());
    REQUIRE(window->map(128 * KiB, fd.get(), 0, 4 * KiB, false).has_value());
    REQUIRE(window->unmap(128 * KiB, 4 * KiB).has_value());
    window->set_observer(recorder(events));
    window->clear();
    CHECK(events == std::vector<Event>{{0, MiB, Change::kReleased}});
    CHECK(window->mappings().empty());
    CHECK(test::mapping_perms(window->host_base()) == "---p");
    CHECK(test::mapping_perms(window->host_base() + 64 * KiB) == "---p");
    CHECK(test::mapping_perms(window->host_base() + 128 * KiB) == "---p");  // the unmapped range too
    window->clear();  // nothing mapped since: nothing to tell
    CHECK(events.size() == 1u);
    CHECK(window->map(0, fd.get(), 0, 64 * KiB, true).has_value());
}

TEST_CASE("a window that only ever held an unmapped mapping is still released by clear") {
    std::vector<Event> events;
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
    REQUIRE(window->unmap(0, 8 * KiB).has_value());
    window->set_observer(recorder(events));
    window->clear();
    CHECK(events == std::vector<Event>{{0, MiB, Change::kReleased}});
    CHECK(test::mapping_perms(window->host_base()) == "---p");
}

TEST_CASE("destroying a window releases it to the observer and gives back the address space") {
    std::vector<Event> events;
    std::byte* base = nullptr;
    {
        auto window = ShmWindow::reserve(MiB);
        REQUIRE(window.has_value());
        base = window->host_base();
        UniqueFd fd = make_memfd(64 * KiB);
        REQUIRE(window->map(4 * KiB, fd.get(), 0, 4 * KiB, true).has_value());
        window->set_observer(recorder(events));
    }
    CHECK(events == std::vector<Event>{{0, MiB, Change::kReleased}});
    CHECK(test::mapping_perms(base) == "");
}

TEST_CASE("map, unmap, clear and destruction leave the number of open fds unchanged") {
    UniqueFd fd = make_memfd(64 * KiB);
    size_t fds_before = test::open_fd_count();
    {
        auto window = ShmWindow::reserve(MiB);
        REQUIRE(window.has_value());
        REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
        REQUIRE(window->map(8 * KiB, fd.get(), 0, 8 * KiB, true).has_value());
        CHECK(test::open_fd_count() == fds_before);
        REQUIRE(window->unmap(0, 8 * KiB).has_value());
        window->clear();
        REQUIRE(window->map(0, fd.get(), 0, 8 * KiB, true).has_value());
    }
    CHECK(test::open_fd_count() == fds_before);
}

TEST_CASE("a moved window keeps its mappings and the moved-from window refuses requests") {
    auto window = ShmWindow::reserve(MiB);
    REQUIRE(window.has_value());
    UniqueFd fd = make_memfd(64 * KiB);
    REQUIRE(window->map(0, fd.get(), 4 * KiB, 4 * KiB, true).has_value());
    std::byte* base = window->host_base();
    ShmWindow moved = std::move(*window);
    CHECK(moved.host_base() == base);
    CHECK(moved.mappings().size() == 1u);
    CHECK(text_at(moved.host_base(), 5) == "page1");
    CHECK(window->size() == 0u);
    CHECK(window->map(0, fd.get(), 0, 4 * KiB, true).error().message ==
          "shared-memory map [0, +0x1000) refused: the window has been moved away");
}

TEST_CASE("a map past the end of a memfd is refused, naming both sizes, and changes nothing") {
    auto window = ShmWindow::reserve(64 * KiB);
    REQUIRE(window.has_value());
    auto fd = make_memfd(4 * KiB);

    auto whole = map_error(*window, 0, fd.get(), 0, 16 * KiB);
    auto shifted = map_error(*window, 0, fd.get(), 4 * KiB, 4 * KiB);

    CHECK(whole.find("past the end") != std::string::npos);
    CHECK(whole.find("16 KiB") != std::string::npos);
    CHECK(whole.find("4 KiB file") != std::string::npos);
    CHECK(shifted.find("past the end") != std::string::npos);
    CHECK(window->mappings().empty());
    CHECK(test::mapping_perms(window->host_base()) == "---p");
}

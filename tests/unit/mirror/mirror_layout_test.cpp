#include <doctest/doctest.h>

#include <vector>

#include "vmm/mirror/helper_abi.h"
#include "vmm/mirror/mirror_layout.h"

using namespace kite;

namespace {
constexpr uint64_t GiB = 1ull << 30;
constexpr uint64_t MiB = 1ull << 20;
}  // namespace

TEST_CASE("high base is half of the smaller physical address width") {
    auto base = mirror_high_base({.host = 48, .guest = 40, .sev_reduction = 0}, 16 * GiB);
    REQUIRE(base.has_value());
    CHECK(*base == (1ull << 39));
}

TEST_CASE("the SEV reduction lowers the high base") {
    auto base = mirror_high_base({.host = 48, .guest = 48, .sev_reduction = 5}, 16 * GiB);
    REQUIRE(base.has_value());
    CHECK(*base == (1ull << 42));
}

TEST_CASE("RAM that does not fit above the high base is refused") {
    auto base = mirror_high_base({.host = 36, .guest = 36, .sev_reduction = 0}, 33 * GiB);
    CHECK_FALSE(base.has_value());
}

TEST_CASE("a width too small to keep the high base above 4 GiB is refused") {
    CHECK_FALSE(mirror_high_base({.host = 33, .guest = 33, .sev_reduction = 0}, 1 * MiB).has_value());
}

TEST_CASE("page tables map the low 4 GiB identically and RAM at its virtual base to the high base") {
    std::vector<std::byte> area(64 * 4096);
    const uint64_t area_gpa = KITE_MIRROR_PAGE_TABLES_GPA;
    std::vector<PageRange> ranges{{0, 0, 4 * GiB}, {KITE_MIRROR_RAM_VA, 1ull << 39, 16 * MiB}};
    auto cr3 = build_page_tables(area, area_gpa, ranges, false);
    REQUIRE(cr3.has_value());
    CHECK(*cr3 == area_gpa);
    CHECK(translate(area, area_gpa, KITE_MIRROR_MAILBOX_GPA + 8) == KITE_MIRROR_MAILBOX_GPA + 8);
    CHECK(translate(area, area_gpa, KITE_MIRROR_RAM_VA + 5 * MiB + 17) == (1ull << 39) + 5 * MiB + 17);
    CHECK(translate(area, area_gpa, KITE_MIRROR_RAM_VA + 16 * MiB) == std::nullopt);
    CHECK(translate(area, area_gpa, 4 * GiB) == std::nullopt);
}

TEST_CASE("1 GiB page tables translate like 2 MiB ones") {
    std::vector<std::byte> area(8 * 4096);
    std::vector<PageRange> ranges{{0, 0, 4 * GiB}, {KITE_MIRROR_RAM_VA, 1ull << 39, 3 * GiB}};
    auto cr3 = build_page_tables(area, 0x20000, ranges, true);
    REQUIRE(cr3.has_value());
    CHECK(translate(area, 0x20000, 3 * GiB + 12345) == 3 * GiB + 12345);
    CHECK(translate(area, 0x20000, KITE_MIRROR_RAM_VA + 2 * GiB + 4096) == (1ull << 39) + 2 * GiB + 4096);
}

TEST_CASE("page tables that do not fit their area are refused") {
    std::vector<std::byte> area(4 * 4096);
    std::vector<PageRange> ranges{{0, 0, 4 * GiB}};
    CHECK_FALSE(build_page_tables(area, 0x20000, ranges, false).has_value());
}

TEST_CASE("a range beyond the canonical lower half is refused") {
    std::vector<std::byte> area(8 * 4096);
    std::vector<PageRange> ranges{{1ull << 47, 1ull << 47, 2 * MiB}};
    CHECK_FALSE(build_page_tables(area, 0x20000, ranges, false).has_value());
}

TEST_CASE("a range whose va and pa differ within a page is refused") {
    std::vector<std::byte> area(8 * 4096);
    std::vector<PageRange> ranges{{KITE_MIRROR_RAM_VA, (1ull << 39) + 4096, 2 * MiB}};
    CHECK_FALSE(build_page_tables(area, 0x20000, ranges, false).has_value());
}

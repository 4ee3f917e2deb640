#include <doctest/doctest.h>

#include <array>

#include "memory/heap_memory.h"

using namespace kite;

TEST_CASE("read across two adjacent regions returns bytes from both") {
    HeapMemory mem({{GuestAddress(0), 4096}, {GuestAddress(4096), 4096}});
    REQUIRE(mem.write_obj<uint32_t>(GuestAddress(4094), 0x11223344u));
    CHECK(mem.read_obj<uint32_t>(GuestAddress(4094)) == 0x11223344u);
}

TEST_CASE("access that ends past RAM fails and copies nothing") {
    HeapMemory mem(4096);
    std::array<std::byte, 8> buf{};
    CHECK_FALSE(mem.read(GuestAddress(4092), buf).has_value());
    CHECK_FALSE(mem.read(GuestAddress(UINT64_MAX - 2), buf).has_value());
    CHECK_FALSE(mem.contains(GuestAddress(8192), 1));
}

TEST_CASE("access across a hole between regions fails") {
    HeapMemory mem({{GuestAddress(0), 4096}, {GuestAddress(8192), 4096}});
    CHECK_FALSE(mem.contains(GuestAddress(4000), 200));
    CHECK(mem.contains(GuestAddress(8192), 4096));
}

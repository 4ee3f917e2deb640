#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "devices/pci/config_space.h"

using namespace kite::pci;

namespace {

constexpr DeviceIds kIds{
    .vendor = 0x1af4,
    .device = 0x1042,
    .revision = 0x01,
    .class_code = 0x010000,
    .subsystem_vendor = 0x1af4,
    .subsystem = 0x0002,
};

ConfigSpace with_memory_decode(ConfigSpace config) {
    config.write(kCommandOffset, 2, kCommandMemory);
    return config;
}

}  // namespace

TEST_CASE("pci config space: header fields are little-endian at their PCI 3.0 offsets") {
    ConfigSpace config(kIds);
    CHECK(config.read(0x00, 4) == 0x1042'1af4);
    CHECK(config.read(0x00, 2) == 0x1af4);
    CHECK(config.read(0x02, 2) == 0x1042);
    CHECK(config.read(0x04, 2) == 0);      // command
    CHECK(config.read(0x06, 2) == 0);      // status: no capabilities yet
    CHECK(config.read(0x08, 4) == 0x0100'0001);  // class 01 00 00, revision 1
    CHECK(config.read(0x0b, 1) == 0x01);   // base class
    CHECK(config.read(0x0e, 1) == 0);      // header type 0
    CHECK(config.read(0x2c, 4) == 0x0002'1af4);
    CHECK(config.read(0x34, 1) == 0);      // no capability list
    CHECK(config.read(0x3c, 4) == 0);      // interrupt line 0, pin 0: no INTx
    CHECK(config.word(0x02) == 0x1042);
    CHECK(config.byte(0x09) == 0x00);
}

TEST_CASE("pci config space: read-only header fields ignore writes") {
    ConfigSpace config(kIds);
    config.write(0x00, 4, 0xffff'ffff);
    config.write(0x08, 4, 0xffff'ffff);
    config.write(0x0c, 4, 0xffff'ffff);
    config.write(0x2c, 4, 0xffff'ffff);
    config.write(0x34, 1, 0x40);
    config.write(0x3d, 1, 0x01);
    CHECK(config.read(0x00, 4) == 0x1042'1af4);
    CHECK(config.read(0x08, 4) == 0x0100'0001);
    CHECK(config.read(0x0c, 4) == 0);
    CHECK(config.read(0x2c, 4) == 0x0002'1af4);
    CHECK(config.read(0x34, 1) == 0);
    CHECK(config.read(0x3d, 1) == 0);
}

TEST_CASE("pci config space: only memory, bus master and INTx disable are writable in the command register") {
    ConfigSpace config(kIds);
    config.write(kCommandOffset, 4, 0xffff'ffff);
    CHECK(config.command() == (kCommandMemory | kCommandBusMaster | kCommandIntxDisable));
    CHECK(config.read(0x06, 2) == 0);  // status stays read-only
    config.write(kCommandOffset, 2, 0);
    CHECK(config.command() == 0);
}

TEST_CASE("pci config space: the interrupt line byte is writable") {
    ConfigSpace config(kIds);
    config.write(0x3c, 1, 0x0b);
    CHECK(config.read(0x3c, 2) == 0x000b);
}

TEST_CASE("pci config space: a 32-bit BAR sizes and moves") {
    ConfigSpace config = with_memory_decode(ConfigSpace(kIds));
    REQUIRE(config.add_memory_bar(0, 0x8000, 0xc000'0000, false, false));
    CHECK(config.read(0x10, 4) == 0xc000'0000);
    CHECK(config.bar_size(0) == 0x8000);
    CHECK(config.bar_address(0) == 0xc000'0000);

    config.write(0x10, 4, 0xffff'ffff);
    CHECK(config.read(0x10, 4) == 0xffff'8000);
    CHECK(config.bar_address(0) == std::nullopt);  // holds the sizing pattern

    config.write(0x10, 4, 0xd000'1234);  // low bits below the size are not address bits
    CHECK(config.read(0x10, 4) == 0xd000'0000);
    CHECK(config.bar_address(0) == 0xd000'0000);
}

TEST_CASE("pci config space: a prefetchable 64-bit BAR sizes both dwords and combines them") {
    ConfigSpace config = with_memory_decode(ConfigSpace(kIds));
    REQUIRE(config.add_memory_bar(2, 0x4000, 0x1'2000'0000, true, true));
    CHECK(config.read(0x18, 4) == 0x2000'000c);  // 64-bit (0b10 << 1), prefetchable (bit 3)
    CHECK(config.read(0x1c, 4) == 0x1);
    CHECK(config.bar_size(2) == 0x4000);
    CHECK(config.bar_size(3) == 0);
    CHECK(config.bar_address(2) == 0x1'2000'0000);
    CHECK(config.bar_address(3) == std::nullopt);

    config.write(0x18, 4, 0xffff'ffff);
    config.write(0x1c, 4, 0xffff'ffff);
    CHECK(config.read(0x18, 4) == 0xffff'c00c);
    CHECK(config.read(0x1c, 4) == 0xffff'ffff);
    CHECK(config.bar_address(2) == std::nullopt);

    config.write(0x18, 4, 0x8000'0000);
    CHECK(config.bar_address(2) == std::nullopt);  // the upper half still holds the pattern
    config.write(0x1c, 4, 0x2);
    CHECK(config.bar_address(2) == 0x2'8000'0000);
}

TEST_CASE("pci config space: a 64-bit BAR of 8 GiB keeps its low dword address bits read-only") {
    ConfigSpace config = with_memory_decode(ConfigSpace(kIds));
    REQUIRE(config.add_memory_bar(0, uint64_t{8} << 30, uint64_t{16} << 30, true, false));
    config.write(0x10, 4, 0xffff'ffff);
    config.write(0x14, 4, 0xffff'ffff);
    CHECK(config.read(0x10, 4) == 0x4);
    CHECK(config.read(0x14, 4) == 0xffff'fffe);
    config.write(0x14, 4, 0x6);
    CHECK(config.bar_address(0) == uint64_t{0x6} << 32);
}

TEST_CASE("pci config space: bar_address is nullopt while memory decode is off or for no BAR") {
    ConfigSpace config(kIds);
    REQUIRE(config.add_memory_bar(0, 0x1000, 0xc000'0000, false, false));
    CHECK(config.bar_address(0) == std::nullopt);
    config.write(kCommandOffset, 2, kCommandMemory);
    CHECK(config.bar_address(0) == 0xc000'0000);
    CHECK(config.bar_address(1) == std::nullopt);
    CHECK(config.bar_address(6) == std::nullopt);
    CHECK(config.bar_size(1) == 0);
    CHECK(config.bar_size(6) == 0);
    config.write(kCommandOffset, 2, kCommandBusMaster);
    CHECK(config.bar_address(0) == std::nullopt);
}

TEST_CASE("pci config space: bad BAR set-ups are refused") {
    ConfigSpace config(kIds);
    CHECK_FALSE(config.add_memory_bar(6, 0x1000, 0, false, false));               // no such BAR
    CHECK_FALSE(config.add_memory_bar(5, 0x1000, 0, true, false));                // no room for the upper half
    CHECK_FALSE(config.add_memory_bar(0, 0x1800, 0, false, false));               // not a power of two
    CHECK_FALSE(config.add_memory_bar(0, 8, 0, false, false));                    // smaller than 16
    CHECK_FALSE(config.add_memory_bar(0, 0x1000, 0x800, false, false));           // misaligned
    CHECK_FALSE(config.add_memory_bar(0, 0x1000, 0x1'0000'0000, false, false));   // 32-bit above 4 GiB
    REQUIRE(config.add_memory_bar(0, 0x1000, 0, true, false));
    CHECK_FALSE(config.add_memory_bar(1, 0x1000, 0, false, false));               // upper half of BAR 0
    CHECK_FALSE(config.add_memory_bar(0, 0x1000, 0, false, false));               // taken
    CHECK(config.read(0x14, 4) == 0);
}

TEST_CASE("pci config space: capabilities chain from 0x34 at aligned offsets and set the status bit") {
    ConfigSpace config(kIds);
    const std::vector<uint8_t> first{0xaa, 0xbb, 0xcc};
    const std::vector<uint8_t> second{0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    CHECK(config.add_capability(0x09, first) == 0x40);
    CHECK(config.add_capability(0x11, second) == 0x48);  // 0x40 + 2 + 3 = 0x45, aligned up
    CHECK(config.read(0x06, 2) == 0x0010);
    CHECK(config.read(0x34, 1) == 0x40);
    CHECK(config.read(0x40, 4) == 0xbbaa'4809);  // id, next, body
    CHECK(config.read(0x44, 1) == 0xcc);
    CHECK(config.read(0x48, 4) == 0x2211'0011);  // last: next pointer 0
    CHECK(config.read(0x4c, 4) == 0x6655'4433);
}

TEST_CASE("pci config space: capability writes honour the masks and leave read-only bytes alone") {
    ConfigSpace config(kIds);
    const std::vector<uint8_t> body{0x00, 0x00, 0x12, 0x34};
    const std::vector<uint8_t> mask{0x00, 0xc0, 0xff, 0x00};
    const uint8_t cap = config.add_capability(0x11, body, mask);
    REQUIRE(cap == 0x40);
    config.write(cap, 4, 0xffff'ffff);      // id, next, and the first two body bytes
    config.write(cap + 4, 4, 0xffff'ffff);  // the last two body bytes
    CHECK(config.read(cap, 4) == 0xc000'0011);
    CHECK(config.read(cap + 4, 2) == 0x34ff);
    config.write(cap + 3, 1, 0x40);
    CHECK(config.read(cap + 2, 2) == 0x4000);
}

TEST_CASE("pci config space: a capability that does not fit is refused") {
    ConfigSpace config(kIds);
    const std::vector<uint8_t> big(0xb0, 0x5a);
    REQUIRE(config.add_capability(0x09, big) == 0x40);  // ends at 0xf2, next free 0xf4
    const std::vector<uint8_t> too_big(11, 0);
    CHECK(config.add_capability(0x09, too_big) == 0);
    const std::vector<uint8_t> fits(10, 0x77);
    CHECK(config.add_capability(0x05, fits) == 0xf4);  // exactly to the end
    CHECK(config.add_capability(0x05, {}) == 0);
    CHECK(config.read(0x41, 1) == 0xf4);
}

TEST_CASE("pci config space: a writable mask of the wrong length is refused") {
    ConfigSpace config(kIds);
    const std::vector<uint8_t> body(4, 0);
    const std::vector<uint8_t> mask(3, 0xff);
    CHECK(config.add_capability(0x09, body, mask) == 0);
    CHECK(config.read(0x34, 1) == 0);
    CHECK(config.read(0x06, 2) == 0);
}

TEST_CASE("pci config space: bad widths, dword-crossing accesses and offsets past 255 read all ones and write nothing") {
    ConfigSpace config(kIds);
    CHECK(config.read(0x00, 3) == 0xffff'ffff);
    CHECK(config.read(0x00, 8) == 0xffff'ffff);
    CHECK(config.read(0x00, 0) == 0xffff'ffff);
    CHECK(config.read(0x02, 4) == 0xffff'ffff);
    CHECK(config.read(0x03, 2) == 0xffff'ffff);
    CHECK(config.read(0x100, 1) == 0xffff'ffff);
    CHECK(config.read(0xffff, 4) == 0xffff'ffff);
    CHECK(config.byte(0x100) == 0xff);
    CHECK(config.word(0xff) == 0xffff);

    config.write(0x03, 2, 0xffff'ffff);  // would reach command bits
    config.write(0x02, 4, 0xffff'ffff);
    config.write(0x04, 3, 0xffff'ffff);
    config.write(0x3c, 8, 0xffff'ffff);
    config.write(0x13c, 1, 0xff);
    CHECK(config.command() == 0);
    CHECK(config.read(0x3c, 1) == 0);
}

TEST_CASE("pci config space: set_byte changes read-only bytes for the device") {
    ConfigSpace config(kIds);
    config.set_byte(0x3d, 0x01);
    config.set_byte(0x100, 0x01);  // ignored
    CHECK(config.read(0x3d, 1) == 0x01);
}

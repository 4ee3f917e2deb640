#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"

using namespace kite::pci;

namespace {

struct Change {
    uint16_t vector;
    MsixVector state;
};

struct Fixture {
    std::vector<Change> changes;
    std::set<uint16_t> pending;
    Msix msix{4, [this](uint16_t v, const MsixVector& s) { changes.push_back({v, s}); },
              [this](uint16_t v) { return pending.contains(v); }};

    void put32(uint64_t offset, uint32_t value) {
        std::array<uint8_t, 4> b{};
        for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(value >> (8 * i));
        msix.table_write(offset, b);
    }
    void put64(uint64_t offset, uint64_t value) {
        std::array<uint8_t, 8> b{};
        for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(value >> (8 * i));
        msix.table_write(offset, b);
    }
    uint32_t get32(uint64_t offset) const {
        std::array<uint8_t, 4> b{0xee, 0xee, 0xee, 0xee};
        msix.table_read(offset, b);
        return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
    }
    uint64_t get64(uint64_t offset) const {
        std::array<uint8_t, 8> b{};
        b.fill(0xee);
        msix.table_read(offset, b);
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t{b[i]} << (8 * i);
        return v;
    }
    uint64_t pba64(uint64_t offset) const {
        std::array<uint8_t, 8> b{};
        b.fill(0xee);
        msix.pba_read(offset, b);
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t{b[i]} << (8 * i);
        return v;
    }
    // Entry `v` with an address, data and its mask bit clear.
    void program(uint16_t v) {
        put64(v * kMsixEntrySize, 0x0000'0001'fee0'1000ull + v);
        put64(v * kMsixEntrySize + 8, 0x40 + v);
    }
};

}  // namespace

TEST_CASE("msix: capability body, sizes and write mask") {
    Fixture f;
    CHECK(f.msix.vectors() == 4);
    CHECK(f.msix.table_size() == 64);
    CHECK(f.msix.pba_size() == 8);
    const auto body = f.msix.capability(2, 0x4000, 2, 0x6000);
    CHECK(body == std::vector<uint8_t>{0x03, 0x00, 0x02, 0x40, 0x00, 0x00, 0x02, 0x60, 0x00, 0x00});
    CHECK(Msix::writable() == std::vector<uint8_t>{0x00, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0});
    CHECK_FALSE(f.msix.enabled());
    CHECK_FALSE(f.msix.function_masked());
}

TEST_CASE("msix: the capability in a config space exposes only enable and function mask to the guest") {
    Fixture f;
    ConfigSpace config(DeviceIds{.vendor = 0x1af4, .device = 0x1041});
    const uint8_t cap = config.add_capability(kCapabilityMsix, f.msix.capability(0, 0x4000, 0, 0x6000), Msix::writable());
    REQUIRE(cap == 0x40);
    config.write(cap, 4, 0xffff'ffff);
    config.write(cap + 4, 4, 0xffff'ffff);
    CHECK(config.read(cap, 4) == 0xc003'0011);
    CHECK(config.read(cap + 4, 4) == 0x4000);
}

TEST_CASE("msix: a large vector count fills Table Size and a larger PBA") {
    Msix msix(130, nullptr, nullptr);
    const auto body = msix.capability(0, 0, 1, 0);
    CHECK(body[0] == 129);
    CHECK(body[1] == 0);
    CHECK(msix.pba_size() == 24);
}

TEST_CASE("msix: entries start masked and zero") {
    Fixture f;
    CHECK(f.get32(0x0) == 0);
    CHECK(f.get32(0x4) == 0);
    CHECK(f.get32(0x8) == 0);
    CHECK(f.get32(0xc) == 1);
    CHECK(f.get32(0x3c) == 1);
    CHECK_FALSE(f.msix.state(0).deliverable);
}

TEST_CASE("msix: 4- and 8-byte table writes fill the entry and notify its vector") {
    Fixture f;
    f.put32(0x10, 0xfee0'2000);
    f.put32(0x14, 0x1);
    f.put32(0x18, 0x41);
    f.put32(0x1c, 0xffff'fffe);  // reserved bits read 0; mask clear
    REQUIRE(f.changes.size() == 4);
    CHECK(f.changes.back().vector == 1);
    CHECK(f.get32(0x1c) == 0);
    CHECK(f.get64(0x10) == 0x0000'0001'fee0'2000ull);
    const auto state = f.msix.state(1);
    CHECK(state.address == 0x0000'0001'fee0'2000ull);
    CHECK(state.data == 0x41);

    f.put64(0x20, 0x0000'0002'fee0'3000ull);
    f.put64(0x28, 0x0000'0000'0000'0042ull);  // data and control together: unmasked
    CHECK(f.changes.size() == 6);
    CHECK(f.changes.back().vector == 2);
    CHECK(f.msix.state(2).address == 0x0000'0002'fee0'3000ull);
    CHECK(f.msix.state(2).data == 0x42);
    CHECK(f.get64(0x28) == 0x42);
}

TEST_CASE("msix: a vector is deliverable only while enabled, the function unmasked and the entry unmasked") {
    Fixture f;
    f.program(1);
    CHECK_FALSE(f.changes.back().state.deliverable);  // MSI-X still disabled

    f.changes.clear();
    f.msix.control_written(kMsixControlEnable);
    CHECK(f.msix.enabled());
    REQUIRE(f.changes.size() == 4);  // every vector
    CHECK(f.changes[1].vector == 1);
    CHECK(f.changes[1].state.deliverable);
    CHECK(f.changes[1].state.address == 0x0000'0001'fee0'1001ull);
    CHECK(f.changes[1].state.data == 0x41);
    CHECK_FALSE(f.changes[0].state.deliverable);  // entry 0 still masked

    f.changes.clear();
    f.msix.control_written(kMsixControlEnable | kMsixControlFunctionMask);
    CHECK(f.msix.function_masked());
    REQUIRE(f.changes.size() == 4);
    CHECK_FALSE(f.changes[1].state.deliverable);

    f.msix.control_written(kMsixControlEnable);
    CHECK(f.msix.state(1).deliverable);

    f.changes.clear();
    f.put32(0x1c, 1);  // mask entry 1
    REQUIRE(f.changes.size() == 1);
    CHECK(f.changes[0].vector == 1);
    CHECK_FALSE(f.changes[0].state.deliverable);

    f.put32(0x1c, 0);
    CHECK(f.changes.back().state.deliverable);

    f.msix.control_written(0);
    CHECK_FALSE(f.msix.enabled());
    CHECK_FALSE(f.changes.back().state.deliverable);
}

TEST_CASE("msix: unaligned, odd-sized and out-of-table accesses read zeroes and write nothing") {
    Fixture f;
    f.program(0);
    f.changes.clear();
    f.put64(0x4, 0xffff'ffff'ffff'ffffull);  // 8 bytes not 8-aligned
    f.put32(0x2, 0xffff'ffff);              // 4 bytes not 4-aligned
    f.put32(0x40, 0);                       // past the table
    f.put32(UINT64_MAX - 3, 0);
    const std::array<uint8_t, 2> word{0xff, 0xff};
    f.msix.table_write(0x8, word);
    const std::array<uint8_t, 1> byte{0xff};
    f.msix.table_write(0xc, byte);
    CHECK(f.changes.empty());
    CHECK(f.msix.state(0).address == 0x0000'0001'fee0'1000ull);
    CHECK(f.msix.state(0).data == 0x40);

    CHECK(f.get32(0x2) == 0);
    CHECK(f.get64(0x4) == 0);
    CHECK(f.get32(0x40) == 0);
    CHECK(f.get64(UINT64_MAX - 7) == 0);
    std::array<uint8_t, 2> small{0xee, 0xee};
    f.msix.table_read(0x8, small);
    CHECK(small == std::array<uint8_t, 2>{0, 0});
}

TEST_CASE("msix: the PBA shows the vectors the owner reports pending") {
    Fixture f;
    f.pending = {0, 3};
    CHECK(f.pba64(0) == 0b1001);
    std::array<uint8_t, 4> low{};
    f.msix.pba_read(0, low);
    CHECK(low == std::array<uint8_t, 4>{0b1001, 0, 0, 0});
    std::array<uint8_t, 4> high{0xee, 0xee, 0xee, 0xee};
    f.msix.pba_read(4, high);
    CHECK(high == std::array<uint8_t, 4>{0, 0, 0, 0});
    CHECK(f.pba64(8) == 0);  // past the PBA
    CHECK(f.pba64(4) == 0);  // unaligned
    std::array<uint8_t, 1> byte{0xee};
    f.msix.pba_read(0, byte);
    CHECK(byte[0] == 0);
}

TEST_CASE("msix: the PBA reads zero without a pending function") {
    Msix msix(2, nullptr, nullptr);
    std::array<uint8_t, 8> b{};
    b.fill(0xee);
    msix.pba_read(0, b);
    CHECK(b == std::array<uint8_t, 8>{});
}

TEST_CASE("msix: the PBA is read-only") {
    Fixture f;
    const std::array<uint8_t, 8> ones{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    f.msix.table_write(f.msix.table_size(), ones);  // the PBA is not part of the table
    CHECK(f.pba64(0) == 0);
    CHECK(f.changes.empty());
}

TEST_CASE("msix: reset disables, unmasks the function, masks every entry and notifies the vectors that were deliverable") {
    Fixture f;
    f.program(0);
    f.program(2);
    f.msix.control_written(kMsixControlEnable);
    f.changes.clear();

    f.msix.reset();
    CHECK_FALSE(f.msix.enabled());
    CHECK_FALSE(f.msix.function_masked());
    REQUIRE(f.changes.size() == 2);
    CHECK(f.changes[0].vector == 0);
    CHECK(f.changes[1].vector == 2);
    CHECK_FALSE(f.changes[0].state.deliverable);
    CHECK(f.changes[1].state.address == 0);
    CHECK(f.changes[1].state.data == 0);
    CHECK(f.get32(0x2c) == 1);
    CHECK(f.get64(0x20) == 0);
}

TEST_CASE("msix: reset of a function-masked device notifies nothing") {
    Fixture f;
    f.program(0);
    f.msix.control_written(kMsixControlEnable | kMsixControlFunctionMask);
    f.changes.clear();
    f.msix.reset();
    CHECK(f.changes.empty());
    CHECK_FALSE(f.msix.function_masked());
}

TEST_CASE("msix: state of a vector past the table is empty") {
    Fixture f;
    const auto state = f.msix.state(4);
    CHECK(state.address == 0);
    CHECK(state.data == 0);
    CHECK_FALSE(state.deliverable);
}

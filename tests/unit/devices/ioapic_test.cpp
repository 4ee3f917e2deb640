#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "devices/legacy/ioapic.h"

using namespace kite;

namespace {

struct Fixture {
    std::vector<Ioapic::Routes> applied;
    Ioapic ioapic{[this](const Ioapic::Routes& r) { applied.push_back(r); }};

    void select(uint32_t reg) {
        std::array<uint8_t, 4> b{static_cast<uint8_t>(reg), 0, 0, 0};
        ioapic.write(Ioapic::kRegisterSelect, b);
    }
    void put(uint32_t reg, uint32_t value) {
        select(reg);
        std::array<uint8_t, 4> b{};
        for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(value >> (8 * i));
        ioapic.write(Ioapic::kRegisterWindow, b);
    }
    uint32_t get(uint32_t reg) {
        select(reg);
        std::array<uint8_t, 4> b{};
        ioapic.read(Ioapic::kRegisterWindow, b);
        return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
    }
    void program(uint32_t pin, uint64_t entry) {  // high word first, as Linux writes an unmasking entry
        put(0x11 + 2 * pin, static_cast<uint32_t>(entry >> 32));
        put(0x10 + 2 * pin, static_cast<uint32_t>(entry));
    }
};

}  // namespace

TEST_CASE("ioapic: identification registers") {
    Fixture f;
    CHECK(f.get(0x01) == 0x0017'0011);  // version 0x11, 24 entries
    f.put(0x00, 0xffff'ffff);
    CHECK(f.get(0x00) == 0x0f00'0000);  // only the 4-bit ID is writable
    CHECK(f.get(0x02) == 0x0f00'0000);
    f.put(0x01, 0);
    CHECK(f.get(0x01) == 0x0017'0011);
    CHECK(f.get(0x03) == 0xffff'ffff);  // unknown indirect registers
    CHECK(f.get(0x40) == 0xffff'ffff);  // past the last entry
    f.select(0x23);
    std::array<uint8_t, 4> b{};
    f.ioapic.read(Ioapic::kRegisterSelect, b);
    CHECK(b[0] == 0x23);
    f.ioapic.read(0x20, b);  // not a register
    CHECK(b == std::array<uint8_t, 4>{});
    CHECK(f.applied.empty());
}

TEST_CASE("ioapic: entries start masked and route nothing") {
    Fixture f;
    for (uint32_t pin = 0; pin < Ioapic::kPins; ++pin) {
        CHECK(f.get(0x10 + 2 * pin) == 0x0001'0000);
        CHECK(f.get(0x11 + 2 * pin) == 0);
    }
    CHECK(f.applied.empty());
}

TEST_CASE("ioapic: an unmasked entry becomes its pin's MSI route") {
    Fixture f;
    f.program(5, 0x0300'0000'0000'0031ull);  // destination APIC 3, physical, fixed, vector 0x31
    REQUIRE(f.applied.size() == 1);  // the high word alone changed no route: the pin was still masked
    const auto& routes = f.applied.back();
    REQUIRE(routes[5].has_value());
    CHECK(routes[5]->address == 0xfee0'3000);
    CHECK(routes[5]->data == 0x31);
    for (uint32_t pin = 0; pin < Ioapic::kPins; ++pin)
        if (pin != 5) CHECK_FALSE(routes[pin].has_value());

    f.put(0x10 + 2 * 5, 0x31);  // the same value again: nothing to install
    CHECK(f.applied.size() == 1);

    f.put(0x10 + 2 * 5, 0x0001'0031);  // masked: the route goes away
    REQUIRE(f.applied.size() == 2);
    CHECK_FALSE(f.applied.back()[5].has_value());
}

TEST_CASE("ioapic: message fields") {
    // Logical destination 0x0f, lowest priority, vector 0x41.
    auto m = Ioapic::message_of(0x0f00'0000'0000'0941ull);
    REQUIRE(m);
    CHECK(m->address == 0xfee0'f004);
    CHECK(m->data == 0x141);
    // Extended destination ID (bits 49-55) goes to address bits 5-11.
    m = Ioapic::message_of(0x01fe'0000'0000'0050ull);
    REQUIRE(m);
    CHECK(m->address == (0xfee0'1000ull | 0x7f << 5));
    // NMI delivery keeps its mode; the trigger-mode and polarity bits do not change the (edge) message.
    m = Ioapic::message_of(0x0000'0000'0000'a402ull);
    REQUIRE(m);
    CHECK(m->data == 0x402);
    CHECK_FALSE(Ioapic::message_of(0x0001'0030ull));
}

TEST_CASE("ioapic: read-only and reserved bits are not stored") {
    Fixture f;
    f.put(0x10, 0xffff'ffff);  // delivery status (12) and Remote IRR (14) are read-only
    CHECK(f.get(0x10) == 0x0001'afff);
    f.put(0x11, 0xffff'ffff);  // bits 32-48 are reserved
    CHECK(f.get(0x11) == 0xfffe'0000);
    CHECK(f.applied.empty());  // still masked
}

TEST_CASE("ioapic: only whole-word writes reach the window") {
    Fixture f;
    f.select(0x10);
    std::array<uint8_t, 1> byte{0x30};
    f.ioapic.write(Ioapic::kRegisterWindow, byte);
    CHECK(f.get(0x10) == 0x0001'0000);
    f.put(0x50, 0x30);  // past the last entry: ignored
    CHECK(f.applied.empty());
}

TEST_CASE("ioapic: state round trip re-installs every route") {
    Fixture f;
    f.put(0x00, 0x0200'0000);
    f.program(1, 0x0100'0000'0000'0021ull);
    f.program(4, 0x0000'0000'0000'a024ull);
    f.select(0x19);
    const auto state = f.ioapic.save_state();

    Fixture g;
    REQUIRE(g.ioapic.restore_state(state));
    REQUIRE(g.applied.size() == 1);
    CHECK(g.applied.back() == f.applied.back());
    CHECK(g.get(0x00) == 0x0200'0000);
    CHECK(g.get(0x13) == 0x0100'0000);
    CHECK(g.get(0x18) == 0x0000'a024);
    g.select(0);
    CHECK(g.ioapic.save_state() != state);  // IOREGSEL is part of the state
}

TEST_CASE("ioapic: a bad state is refused and changes nothing") {
    Fixture f;
    f.program(2, 0x22);
    auto state = f.ioapic.save_state();
    Fixture g;
    g.program(3, 0x33);
    const auto before = g.ioapic.save_state();
    auto short_state = state;
    short_state.pop_back();
    CHECK_FALSE(g.ioapic.restore_state(short_state));
    auto wrong_version = state;
    wrong_version[0] = 9;
    CHECK_FALSE(g.ioapic.restore_state(wrong_version));
    CHECK(g.ioapic.save_state() == before);
    CHECK(g.applied.size() == 1);
}

TEST_CASE("ioapic: describe names the unmasked pins") {
    Fixture f;
    CHECK(f.ioapic.describe() == "I/O APIC: every pin masked");
    f.program(4, 0x0100'0000'0000'0841ull);
    f.program(5, 0x0000'0000'0000'0031ull);
    CHECK(f.ioapic.describe() ==
          "I/O APIC: pin 4 -> vector 0x41, logical destination 0x1; pin 5 -> vector 0x31, physical destination 0x0;");
}

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/pvpanic.h"
#include "tests/unit/devices/counting_irq.h"

using namespace kite;

namespace {

uint8_t in(BusDevice& dev, uint64_t offset) {
    std::array<uint8_t, 1> b{};
    dev.read(offset, b);
    return b[0];
}

void out(BusDevice& dev, uint64_t offset, uint8_t value) {
    std::array<uint8_t, 1> b{value};
    dev.write(offset, b);
}

constexpr uint64_t kI8042Data = 0, kI8042Command = 4;

struct I8042Fixture {
    CountingIrq irq;
    int resets = 0;
    I8042 dev{irq, [this] { ++resets; }};
};

struct AcpiPmFixture {
    int poweroffs = 0;
    int resets = 0;
    AcpiPm dev{[this] { ++poweroffs; }, [this] { ++resets; }};
};

}  // namespace

TEST_CASE_FIXTURE(I8042Fixture, "i8042 command 0xfe pulses reset") {
    out(dev, kI8042Command, 0xfe);

    CHECK(resets == 1);
}

TEST_CASE_FIXTURE(I8042Fixture, "i8042 commands that do not pulse the reset line leave the machine alone") {
    out(dev, kI8042Command, 0xff);  // pulse no line
    out(dev, kI8042Command, 0xaa);
    out(dev, kI8042Data, 0xfe);     // 0xfe as data goes to the keyboard (resend)

    CHECK(resets == 0);
}

TEST_CASE_FIXTURE(I8042Fixture, "i8042 self test answers 0x55 with output-buffer-full set") {
    uint8_t idle = in(dev, kI8042Command);
    out(dev, kI8042Command, 0xaa);
    uint8_t status = in(dev, kI8042Command);
    uint8_t answer = in(dev, kI8042Data);

    CHECK((idle & 0x01) == 0);
    CHECK((status & 0x01) == 1);
    CHECK(answer == 0x55);
    CHECK((in(dev, kI8042Command) & 0x01) == 0);
}

TEST_CASE_FIXTURE(I8042Fixture, "i8042 command byte written with 0x60 reads back with 0x20") {
    out(dev, kI8042Command, 0x60);
    out(dev, kI8042Data, 0x30);
    out(dev, kI8042Command, 0x20);

    CHECK(in(dev, kI8042Data) == 0x30);
    CHECK(irq.count == 0);  // keyboard interrupt disabled by the new command byte
}

TEST_CASE_FIXTURE(I8042Fixture, "i8042 reports no aux port: loop echo comes back as keyboard data, test fails") {
    out(dev, kI8042Command, 0xd3);
    out(dev, kI8042Data, 0x5a);
    uint8_t loop_status = in(dev, kI8042Command);
    uint8_t loop_answer = in(dev, kI8042Data);
    out(dev, kI8042Command, 0xa9);
    uint8_t aux_test = in(dev, kI8042Data);

    CHECK((loop_status & 0x20) == 0);
    CHECK(loop_answer == 0xfa);
    CHECK(aux_test == 0x01);
}

TEST_CASE_FIXTURE(I8042Fixture, "keyboard reset answers ACK then self-test passed, one interrupt per byte") {
    out(dev, kI8042Data, 0xff);
    int after_write = irq.count;
    uint8_t ack = in(dev, kI8042Data);
    uint8_t passed = in(dev, kI8042Data);

    CHECK(after_write == 1);
    CHECK(ack == 0xfa);
    CHECK(passed == 0xaa);
    CHECK(irq.count == 2);
}

TEST_CASE_FIXTURE(I8042Fixture, "keyboard set-LEDs ACKs the command and its parameter") {
    out(dev, kI8042Data, 0xed);
    out(dev, kI8042Data, 0x07);

    CHECK(in(dev, kI8042Data) == 0xfa);
    CHECK(in(dev, kI8042Data) == 0xfa);
    CHECK((in(dev, kI8042Command) & 0x01) == 0);
}

TEST_CASE_FIXTURE(I8042Fixture, "a guest that never reads the i8042 cannot grow its output") {
    for (int i = 0; i < 1000; ++i) out(dev, kI8042Data, 0xf2);
    int bytes = 0;
    while (in(dev, kI8042Command) & 0x01) {
        (void)in(dev, kI8042Data);
        ++bytes;
    }

    CHECK(bytes == 16);
}

TEST_CASE_FIXTURE(AcpiPmFixture, "SLP_EN with SLP_TYP 5 on the sleep control register powers off") {
    out(dev, kAcpiSleepControlPort - kAcpiPmBasePort, (5 << 2) | 0x20);

    CHECK(poweroffs == 1);
    CHECK(resets == 0);
}

TEST_CASE_FIXTURE(AcpiPmFixture, "sleep control writes without SLP_EN or with another sleep type do nothing") {
    out(dev, 0, 5 << 2);
    out(dev, 0, (3 << 2) | 0x20);
    out(dev, 0, (7 << 2) | 0x20);
    out(dev, 1, (5 << 2) | 0x20);  // the status register
    dev.write(0, std::array<uint8_t, 2>{(5 << 2) | 0x20, 0});

    CHECK(poweroffs == 0);
    CHECK(resets == 0);
}

TEST_CASE_FIXTURE(AcpiPmFixture, "only the reset value on the reset register resets") {
    out(dev, kAcpiResetPort - kAcpiPmBasePort, 0x06);
    out(dev, kAcpiResetPort - kAcpiPmBasePort, 0x00);
    int wrong_values = resets;
    out(dev, kAcpiResetPort - kAcpiPmBasePort, kAcpiResetValue);

    CHECK(wrong_values == 0);
    CHECK(resets == 1);
    CHECK(poweroffs == 0);
}

TEST_CASE_FIXTURE(AcpiPmFixture, "ACPI PM registers read as zero") {
    CHECK(in(dev, 0) == 0);
    CHECK(in(dev, 1) == 0);
    CHECK(in(dev, 2) == 0);
}

TEST_CASE("debug exit passes the written byte as the exit status") {
    std::vector<int> statuses;
    DebugExit dev([&](uint8_t v) { statuses.push_back(v); });

    out(dev, 0, 0);
    out(dev, 0, 42);
    out(dev, 0, 255);

    CHECK(statuses == std::vector<int>{0, 42, 255});
}

TEST_CASE("debug exit ignores wide writes and reads") {
    int calls = 0;
    DebugExit dev([&](uint8_t) { ++calls; });

    dev.write(0, std::array<uint8_t, 2>{1, 0});
    dev.write(0, std::array<uint8_t, 4>{1, 0, 0, 0});
    uint8_t read = in(dev, 0);

    CHECK(calls == 0);
    CHECK(read == 0xff);
}

TEST_CASE("pvpanic reads its supported events and reports only supported event bits of 1-byte writes") {
    std::vector<uint8_t> events;
    Pvpanic pvpanic([&](uint8_t e) { events.push_back(e); });
    uint8_t byte = 0;
    uint8_t word[2] = {0xff, 0xff};

    pvpanic.read(0, std::span(&byte, 1));
    pvpanic.read(0, std::span(word, 2));
    pvpanic.write(0, std::span<const uint8_t>(word, 2));  // wrong width: a probe, not a panic
    const uint8_t unknown = 0x80, panicked = 0x81, crash = 0x02;
    pvpanic.write(0, std::span(&unknown, 1));
    pvpanic.write(0, std::span(&panicked, 1));
    pvpanic.write(0, std::span(&crash, 1));

    CHECK(byte == (Pvpanic::kPanicked | Pvpanic::kCrashLoaded));
    CHECK(word[0] == 0);
    CHECK(events == std::vector<uint8_t>{Pvpanic::kPanicked, Pvpanic::kCrashLoaded});
}

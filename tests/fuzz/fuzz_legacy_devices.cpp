// Fuzzes the legacy devices the guest reaches: serial, i8042, ACPI PM, debug-exit and pvpanic, all on
// one port I/O Bus at their real ports, the I/O APIC on an MMIO Bus at its address, plus host input into
// the serial FIFO.
//
// Input: a sequence of 6-byte operations
//   byte 0: bits 0-2 target (0-1 serial, 2 i8042, 3 ACPI PM, 4 debug-exit to pvpanic, 5 unmapped/straddling,
//           6 I/O APIC, 7 host input), bit 3 write (else read), bits 4-5 size index (1, 2, 4, 8 bytes)
//   byte 1: register offset (taken modulo a window a little larger than the device)
//   bytes 2-5: value (little-endian)
// The callbacks only count; nothing may crash, hang or grow without bound. Every route the I/O APIC
// installs must be that of its pin's entry, and its saved state must restore to the same state and routes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "devices/bus.h"
#include "devices/irq.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/ioapic.h"
#include "devices/legacy/pvpanic.h"
#include "devices/legacy/serial.h"
#include "vmm/arch/x86_64/layout.h"

namespace {

class CountingIrq final : public kite::IrqLine {
public:
    void trigger() override { ++count; }
    unsigned count = 0;
};

struct Target {
    uint64_t base;
    uint64_t window;  // offsets range over [0, window): a few bytes beyond the device
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace kite;
    CountingIrq serial_irq, kbd_irq;
    unsigned events = 0;
    size_t output_bytes = 0;
    auto serial = std::make_shared<Serial>(serial_irq, [&](std::span<const uint8_t> b) { output_bytes += b.size(); });
    serial->set_input_space_notifier([&] { ++events; });
    auto i8042 = std::make_shared<I8042>(kbd_irq, [&] { ++events; });
    auto pm = std::make_shared<AcpiPm>([&] { ++events; }, [&] { ++events; });
    auto debug_exit = std::make_shared<DebugExit>([&](uint8_t) { ++events; });
    auto pvpanic = std::make_shared<Pvpanic>([&](uint8_t e) {
        if (e == 0 || (e & ~(Pvpanic::kPanicked | Pvpanic::kCrashLoaded)) != 0) __builtin_trap();
        ++events;
    });
    Ioapic::Routes routes{};
    auto ioapic = std::make_shared<Ioapic>([&](const Ioapic::Routes& r) { routes = r; });

    Bus pio;
    if (!pio.insert(serial, Serial::kCom1Port, Serial::kRegisterCount)) __builtin_trap();
    if (!pio.insert(i8042, I8042::kBasePort, I8042::kPortSpan)) __builtin_trap();
    if (!pio.insert(pm, AcpiPm::kBasePort, AcpiPm::kPortSpan)) __builtin_trap();
    if (!pio.insert(debug_exit, DebugExit::kPort, DebugExit::kPortSpan)) __builtin_trap();
    if (!pio.insert(pvpanic, Pvpanic::kPort, Pvpanic::kPortSpan)) __builtin_trap();
    Bus mmio;
    if (!mmio.insert(ioapic, kIoapicBase, Ioapic::kWindowSize)) __builtin_trap();

    const std::array<Target, 7> targets{{
        {Serial::kCom1Port, 10},
        {Serial::kCom1Port, 10},
        {I8042::kBasePort, 7},
        {AcpiPm::kBasePort, 5},
        {DebugExit::kPort, 6},        // 0x501-0x506: debug-exit, the ports between, pvpanic at 0x505
        {Serial::kCom1Port - 4, 16},  // unmapped below COM1 and straddling into it
        {kIoapicBase, 0x48},          // IOREGSEL, IOWIN and the EOI register of later versions
    }};
    constexpr size_t kOpSize = 6;
    constexpr std::array<size_t, 4> kSizes{1, 2, 4, 8};

    for (size_t pos = 0; pos + kOpSize <= size; pos += kOpSize) {
        const uint8_t* op = data + pos;
        unsigned target = op[0] & 0x07;
        bool is_write = op[0] & 0x08;
        size_t len = kSizes[(op[0] >> 4) & 0x03];
        std::array<uint8_t, 8> value{};
        std::memcpy(value.data(), op + 2, 4);

        if (target >= targets.size()) {  // host input: 1-4 bytes from the value
            serial->enqueue_input(std::span(value).first(1 + op[1] % 4));
            (void)serial->input_space();
            continue;
        }
        uint64_t addr = targets[target].base + op[1] % targets[target].window;
        Bus& bus = target == 6 ? mmio : pio;
        if (is_write) {
            (void)bus.write(addr, std::span<const uint8_t>(value.data(), len));
        } else {
            (void)bus.read(addr, std::span(value).first(len));
        }
    }
    (void)serial->dropped_input();

    const auto entries = ioapic->entries();
    for (uint32_t pin = 0; pin < Ioapic::kPins; ++pin)
        if (routes[pin] != Ioapic::message_of(entries[pin])) __builtin_trap();
    const auto state = ioapic->save_state();
    Ioapic::Routes restored_routes{};
    Ioapic restored([&](const Ioapic::Routes& r) { restored_routes = r; });
    if (!restored.restore_state(state) || restored.save_state() != state || restored_routes != routes) __builtin_trap();
    return 0;
}

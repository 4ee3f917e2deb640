// A minimal i8042 keyboard controller at I/O ports 0x60 (data) and 0x64 (status/command), with a
// keyboard that answers commands but never has keys pressed, and no auxiliary (mouse) port.
//
// Why it exists: Linux resets the machine by pulsing the CPU reset line through the i8042 (command
// 0xfe on port 0x64) when the ACPI reset register does not do it, and a kernel that probes the
// controller must get sane answers rather than timeouts. Register it with
// `bus.insert(dev, I8042::kBasePort, I8042::kPortSpan)`: the device then sees the data port at offset
// 0 and the command/status port at offset 4; offsets 1-3 (port 0x61, the PC speaker and PIT gate, and
// up) read 0xff and ignore writes.
//
// Behaviour (for probes by Linux's i8042 and atkbd drivers):
//  - self test 0xaa answers 0x55, keyboard port test 0xab answers 0x00;
//  - 0x20/0x60 read/write the command byte; 0xad/0xae disable/enable the keyboard port;
//  - aux commands 0xa7/0xa8/0xd3/0xd4 are ignored, and the aux port test 0xa9 answers 0x01 ("clock
//    line stuck"), so Linux concludes there is no mouse port;
//  - 0xd0/0xd1 read/write the output port, 0xd2 echoes the next data byte as keyboard data;
//  - 0xf0-0xfe with bit 0 clear pulse the reset line: on_reset is called;
//  - data bytes go to the keyboard, which ACKs (0xfa) every command, answers reset (0xff) with 0xfa 0xaa,
//    get-ID (0xf2) with 0xfa 0xab 0x83 and echo (0xee) with 0xee.
// Whenever a byte lands in an empty output buffer while the command byte enables the keyboard
// interrupt, the keyboard IrqLine (ISA IRQ 1) is triggered.
//
// Threads: called from vCPU threads; a mutex guards the state; on_reset and the IrqLine are called
// with it released.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "devices/bus_device.h"
#include "devices/irq.h"

namespace kite {

class I8042 final : public BusDevice {
public:
    static constexpr uint64_t kBasePort = 0x60;
    static constexpr uint64_t kPortSpan = 5;  // 0x60..0x64
    static constexpr uint32_t kKeyboardIrq = 1;

    // on_reset is called on the vCPU thread that pulsed the reset line; it should post the reset to
    // the VMM thread and return.
    I8042(IrqLine& keyboard_irq, std::function<void()> on_reset);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    struct Effects {
        bool raise_irq = false;
        bool reset = false;
    };

    uint8_t status() const;
    void command(uint8_t cmd, Effects& fx);
    void data(uint8_t value, Effects& fx);
    void keyboard_command(uint8_t value, Effects& fx);
    void push_output(uint8_t byte, Effects& fx);
    uint8_t pop_output(Effects& fx);

    IrqLine& irq_;
    std::function<void()> on_reset_;

    std::mutex mutex_;
    uint8_t command_byte_ = 0x45;  // keyboard interrupt on, system flag, scan-code translation
    uint8_t output_port_ = 0x01;   // reset line not asserted
    uint8_t pending_command_ = 0;  // controller command waiting for its data byte, or 0
    uint8_t keyboard_pending_ = 0; // keyboard command waiting for its parameter byte, or 0
    bool last_write_was_command_ = false;
    std::array<uint8_t, 16> out_{};
    size_t out_head_ = 0;
    size_t out_count_ = 0;
};

}  // namespace kite

// A 16550A-compatible UART (the PC's COM1 at I/O port 0x3f8, IRQ 4), enough for Linux's 8250 driver,
// earlyprintk and the serial console.
//
// Model: the transmitter is infinitely fast (every byte written to THR goes straight to the output
// sink, so LSR.THRE and LSR.TEMT always read 1); the receiver holds a bounded FIFO of host input.
// Interrupts go out on an edge-triggered IrqLine: the line is triggered whenever an interrupt source
// becomes pending that was not pending before (data ready with IER.ERBFI, THR empty with IER.ETBEI,
// a modem-status change with IER.EDSSI). That is what the 8250's INTR output does on an edge-triggered
// ISA line; Linux's handler loops on IIR until it reads "no interrupt", so a source that stays
// pending needs no second edge. No line errors ever occur, so IER.ELSI never raises anything.
//
// Threads: vCPU threads call read()/write(); the VMM thread calls enqueue_input(), input_space() and
// dropped_input(). A small mutex guards the registers. The output sink, the IrqLine and the input-space
// notifier are called with the mutex released (so a slow sink never blocks the VMM thread's input path
// and callbacks may post work freely); they must not call back into this Serial. One vCPU's bytes reach
// the sink in order; bytes from vCPUs writing at the same time may interleave (Linux serializes its
// console writes under the port lock, so it never does that).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "base/error.h"
#include "devices/bus_device.h"
#include "devices/irq.h"

namespace kite {

class Serial final : public BusDevice {
public:
    // Called on the vCPU thread with each byte the guest transmits. Keep it quick (a buffered or
    // non-blocking write); the vCPU waits for it.
    using OutputSink = std::function<void(std::span<const uint8_t>)>;

    static constexpr uint64_t kCom1Port = 0x3f8;
    static constexpr uint64_t kRegisterCount = 8;  // register it with this length
    static constexpr uint32_t kCom1Irq = 4;
    static constexpr size_t kInputCapacity = 64;  // bytes of host input the receive FIFO holds

    Serial(IrqLine& irq, OutputSink sink);

    // BusDevice. Only 1-byte accesses reach registers; wider reads return 0xff, wider writes are dropped.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // VMM thread: offer host input (stdin) to the guest. Takes as many bytes as fit in the receive FIFO
    // (none while the UART is in loopback mode) and returns how many it took. The caller keeps the
    // rest and offers it again once the input-space notifier fires (or drops it: its choice).
    size_t enqueue_input(std::span<const uint8_t> bytes);
    // Free space in the receive FIFO (0 in loopback mode). Returning 0 counts as a refusal: the
    // notifier will fire once there is room again.
    size_t input_space();
    // Bytes enqueue_input() refused so far.
    uint64_t dropped_input() const;
    // Called on a vCPU thread after input was refused (by enqueue_input() or a 0 from input_space())
    // once the guest has emptied the receive FIFO and left loopback mode, so a VMM that stopped reading
    // stdin knows when to resume; it should post to the VMM thread and return. Set it before the vCPUs
    // start.
    void set_input_space_notifier(std::function<void()> notify);

    // Snapshot support: the guest-visible register state and the receive FIFO as a versioned byte blob.
    // restore_state() validates the blob (version, length, FIFO count) and changes nothing when it is
    // refused. Call both with the vCPUs paused.
    std::vector<uint8_t> save_state() const;
    Result<void> restore_state(std::span<const uint8_t> blob);

private:
    // Interrupt sources, as a bit set, in IIR priority order (highest first).
    static constexpr uint8_t kSourceRx = 1;
    static constexpr uint8_t kSourceThre = 2;
    static constexpr uint8_t kSourceModem = 4;

    struct Effects {  // what to do once the mutex is released
        bool raise_irq = false;
        bool transmitted = false;
        uint8_t byte = 0;
        bool notify_space = false;
    };

    uint8_t read_register(uint64_t offset, Effects& fx);
    void write_register(uint64_t offset, uint8_t value, Effects& fx);
    void run(const Effects& fx);

    uint8_t pending_sources() const;
    uint8_t modem_lines() const;  // MSR bits 4-7 as the guest sees them
    void check_input_space(Effects& fx);
    void set_mcr(uint8_t value);
    bool rx_push(uint8_t byte);
    uint8_t rx_pop();

    IrqLine& irq_;
    OutputSink sink_;
    std::function<void()> notify_space_;

    mutable std::mutex mutex_;
    uint8_t ier_ = 0;
    uint8_t lcr_ = 0x03;  // 8N1
    uint8_t mcr_ = 0x08;  // OUT2, as the PC BIOS leaves it
    uint8_t msr_delta_ = 0;
    uint8_t scr_ = 0;
    uint8_t dll_ = 0x0c;  // 9600 baud
    uint8_t dlm_ = 0;
    bool fifo_enabled_ = false;
    bool thre_pending_ = false;  // THR-empty interrupt armed and not yet acknowledged by an IIR read
    bool input_refused_ = false; // input was refused since the notifier last fired
    std::array<uint8_t, kInputCapacity> rx_{};
    size_t rx_head_ = 0;
    size_t rx_count_ = 0;
    uint64_t dropped_ = 0;
};

}  // namespace kite

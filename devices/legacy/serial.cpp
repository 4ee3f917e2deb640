#include "devices/legacy/serial.h"

#include <algorithm>
#include <utility>

namespace kite {
namespace {

// Register offsets from the base port.
constexpr uint64_t kData = 0;  // RBR (read) / THR (write); DLL when LCR.DLAB
constexpr uint64_t kIer = 1;   // DLM when LCR.DLAB
constexpr uint64_t kIir = 2;   // IIR (read) / FCR (write)
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kIerRxData = 0x01;   // ERBFI
constexpr uint8_t kIerThre = 0x02;     // ETBEI
constexpr uint8_t kIerModem = 0x08;    // EDSSI
constexpr uint8_t kIerMask = 0x0f;     // the 16550A has only these four bits

constexpr uint8_t kIirNoInterrupt = 0x01;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirModem = 0x00;
constexpr uint8_t kIirFifoEnabled = 0xc0;

constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;

constexpr uint8_t kLcrDlab = 0x80;

constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTxEmpty = 0x40;

constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;
constexpr uint8_t kMsrDeltaCts = 0x01;
constexpr uint8_t kMsrDeltaDsr = 0x02;
constexpr uint8_t kMsrTrailingRi = 0x04;
constexpr uint8_t kMsrDeltaDcd = 0x08;

}  // namespace

Serial::Serial(IrqLine& irq, OutputSink sink) : irq_(irq), sink_(std::move(sink)) {}

void Serial::set_input_space_notifier(std::function<void()> notify) {
    std::lock_guard lock(mutex_);
    notify_space_ = std::move(notify);
}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
    // guest-controlled: offset and data.size()
    if (data.size() != 1 || offset >= kRegisterCount) {
        std::fill(data.begin(), data.end(), 0xff);
        return;
    }
    Effects fx;
    {
        std::lock_guard lock(mutex_);
        data[0] = read_register(offset, fx);
    }
    run(fx);
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset, data.size() and the value
    if (data.size() != 1 || offset >= kRegisterCount) return;
    Effects fx;
    {
        std::lock_guard lock(mutex_);
        uint8_t before = pending_sources();
        write_register(offset, data[0], fx);
        fx.raise_irq = (pending_sources() & ~before) != 0;
    }
    run(fx);
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
    bool raise = false;
    size_t accepted = 0;
    {
        std::lock_guard lock(mutex_);
        uint8_t before = pending_sources();
        // In loopback mode the receiver listens to the transmitter only.
        if (!(mcr_ & kMcrLoop)) {
            while (accepted < bytes.size() && rx_push(bytes[accepted])) ++accepted;
        }
        if (accepted < bytes.size()) {
            dropped_ += bytes.size() - accepted;
            input_refused_ = true;
        }
        raise = (pending_sources() & ~before) != 0;
    }
    if (raise) irq_.trigger();
    return accepted;
}

size_t Serial::input_space() {
    std::lock_guard lock(mutex_);
    size_t space = (mcr_ & kMcrLoop) ? 0 : kInputCapacity - rx_count_;
    if (space == 0) input_refused_ = true;
    return space;
}

uint64_t Serial::dropped_input() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

uint8_t Serial::read_register(uint64_t offset, Effects& fx) {
    bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
    case kData: {
        if (dlab) return dll_;
        uint8_t byte = rx_pop();
        check_input_space(fx);
        return byte;
    }
    case kIer:
        return dlab ? dlm_ : ier_;
    case kIir: {
        uint8_t iir = fifo_enabled_ ? kIirFifoEnabled : 0;
        uint8_t sources = pending_sources();
        if (sources & kSourceRx) return iir | kIirRxData;
        if (sources & kSourceThre) {
            thre_pending_ = false;  // reading IIR acknowledges a THR-empty interrupt it reports
            return iir | kIirThre;
        }
        if (sources & kSourceModem) return iir | kIirModem;
        return iir | kIirNoInterrupt;
    }
    case kLcr:
        return lcr_;
    case kMcr:
        return mcr_;
    case kLsr:
        return kLsrThrEmpty | kLsrTxEmpty | (rx_count_ ? kLsrDataReady : 0);
    case kMsr: {
        uint8_t msr = modem_lines() | msr_delta_;
        msr_delta_ = 0;  // reading MSR clears the deltas and the modem-status interrupt
        return msr;
    }
    case kScr:
        return scr_;
    }
    return 0xff;
}

void Serial::write_register(uint64_t offset, uint8_t value, Effects& fx) {
    bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
    case kData:
        if (dlab) {
            dll_ = value;
        } else if (mcr_ & kMcrLoop) {
            (void)rx_push(value);  // a full FIFO loses the byte (an overrun on real hardware)
            thre_pending_ = true;
        } else {
            fx.transmitted = true;
            fx.byte = value;
            thre_pending_ = true;  // the byte left at once, THR is empty again
        }
        break;
    case kIer:
        if (dlab) {
            dlm_ = value;
        } else {
            uint8_t ier = value & kIerMask;
            // Enabling ETBEI while THR is empty (always, here) raises a THR-empty interrupt, as on a
            // real 16550: Linux's start_tx and its THRE re-assertion test rely on this.
            if ((ier & kIerThre) && !(ier_ & kIerThre)) thre_pending_ = true;
            ier_ = ier;
        }
        break;
    case kIir:  // FCR
        fifo_enabled_ = value & kFcrEnable;
        if (value & kFcrClearRx) {
            rx_head_ = 0;
            rx_count_ = 0;
            check_input_space(fx);
        }
        break;
    case kLcr:
        lcr_ = value;
        break;
    case kMcr:
        set_mcr(value & kMcrMask);
        check_input_space(fx);
        break;
    case kLsr:  // read-only
        break;
    case kMsr:  // read-only on the 16550A
        break;
    case kScr:
        scr_ = value;
        break;
    }
}

void Serial::run(const Effects& fx) {
    if (fx.transmitted) sink_(std::span<const uint8_t>(&fx.byte, 1));
    if (fx.raise_irq) irq_.trigger();
    if (fx.notify_space) notify_space_();
}

void Serial::check_input_space(Effects& fx) {
    // Resume a refused writer only once the FIFO is empty: it then gets a whole FIFO's worth at once.
    if (!input_refused_ || rx_count_ != 0 || (mcr_ & kMcrLoop)) return;
    input_refused_ = false;
    fx.notify_space = static_cast<bool>(notify_space_);
}

uint8_t Serial::pending_sources() const {
    uint8_t sources = 0;
    if ((ier_ & kIerRxData) && rx_count_ > 0) sources |= kSourceRx;
    if ((ier_ & kIerThre) && thre_pending_) sources |= kSourceThre;
    if ((ier_ & kIerModem) && msr_delta_ != 0) sources |= kSourceModem;
    return sources;
}

uint8_t Serial::modem_lines() const {
    // Outside loopback the "modem" is always there and ready: carrier, data set ready, clear to send.
    if (!(mcr_ & kMcrLoop)) return kMsrDcd | kMsrDsr | kMsrCts;
    // In loopback the modem-control outputs are wired back to the modem-status inputs.
    uint8_t lines = 0;
    if (mcr_ & kMcrRts) lines |= kMsrCts;
    if (mcr_ & kMcrDtr) lines |= kMsrDsr;
    if (mcr_ & kMcrOut1) lines |= kMsrRi;
    if (mcr_ & kMcrOut2) lines |= kMsrDcd;
    return lines;
}

void Serial::set_mcr(uint8_t value) {
    uint8_t old_lines = modem_lines();
    mcr_ = value;
    uint8_t new_lines = modem_lines();
    uint8_t changed = old_lines ^ new_lines;
    if (changed & kMsrCts) msr_delta_ |= kMsrDeltaCts;
    if (changed & kMsrDsr) msr_delta_ |= kMsrDeltaDsr;
    if ((old_lines & kMsrRi) && !(new_lines & kMsrRi)) msr_delta_ |= kMsrTrailingRi;
    if (changed & kMsrDcd) msr_delta_ |= kMsrDeltaDcd;
}

bool Serial::rx_push(uint8_t byte) {
    if (rx_count_ == kInputCapacity) return false;
    rx_[(rx_head_ + rx_count_) % kInputCapacity] = byte;
    ++rx_count_;
    return true;
}

uint8_t Serial::rx_pop() {
    if (rx_count_ == 0) return 0;
    uint8_t byte = rx_[rx_head_];
    rx_head_ = (rx_head_ + 1) % kInputCapacity;
    --rx_count_;
    return byte;
}

// Blob layout: version, ier, lcr, mcr, msr_delta, scr, dll, dlm, fifo_enabled, thre_pending, rx_count,
// then rx_count FIFO bytes (oldest first).
namespace {
constexpr uint8_t kStateVersion = 1;
constexpr size_t kStateHeader = 11;
}  // namespace

std::vector<uint8_t> Serial::save_state() const {
    std::lock_guard lock(mutex_);
    std::vector<uint8_t> out{kStateVersion, ier_, lcr_, mcr_, msr_delta_, scr_, dll_, dlm_,
                             static_cast<uint8_t>(fifo_enabled_), static_cast<uint8_t>(thre_pending_),
                             static_cast<uint8_t>(rx_count_)};
    for (size_t i = 0; i < rx_count_; ++i) out.push_back(rx_[(rx_head_ + i) % kInputCapacity]);
    return out;
}

Result<void> Serial::restore_state(std::span<const uint8_t> blob) {
    if (blob.size() < kStateHeader) return fail("serial state: " + std::to_string(blob.size()) + " bytes, too short");
    if (blob[0] != kStateVersion) return fail("serial state: unsupported version " + std::to_string(blob[0]));
    size_t count = blob[10];
    if (count > kInputCapacity || blob.size() != kStateHeader + count)
        return fail("serial state: receive FIFO of " + std::to_string(count) + " bytes in a blob of " +
                    std::to_string(blob.size()));
    if (blob[8] > 1 || blob[9] > 1) return fail("serial state: flag byte is not 0 or 1");
    std::lock_guard lock(mutex_);
    ier_ = blob[1] & kIerMask;
    lcr_ = blob[2];
    mcr_ = blob[3] & kMcrMask;
    msr_delta_ = blob[4] & 0x0f;
    scr_ = blob[5];
    dll_ = blob[6];
    dlm_ = blob[7];
    fifo_enabled_ = blob[8];
    thre_pending_ = blob[9];
    rx_head_ = 0;
    rx_count_ = count;
    std::copy(blob.begin() + kStateHeader, blob.end(), rx_.begin());
    return {};
}

}  // namespace kite

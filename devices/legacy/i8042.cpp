#include "devices/legacy/i8042.h"

#include <algorithm>
#include <utility>

namespace kite {
namespace {

constexpr uint64_t kDataOffset = 0;     // port 0x60
constexpr uint64_t kCommandOffset = 4;  // port 0x64

constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusLastWasCommand = 0x08;
constexpr uint8_t kStatusNotInhibited = 0x10;

constexpr uint8_t kCtrKeyboardInterrupt = 0x01;
constexpr uint8_t kCtrSystemFlag = 0x04;
constexpr uint8_t kCtrKeyboardDisabled = 0x10;
constexpr uint8_t kCtrAuxDisabled = 0x20;

constexpr uint8_t kCmdReadCtr = 0x20;
constexpr uint8_t kCmdWriteCtr = 0x60;
constexpr uint8_t kCmdAuxDisable = 0xa7;
constexpr uint8_t kCmdAuxEnable = 0xa8;
constexpr uint8_t kCmdAuxTest = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdKeyboardTest = 0xab;
constexpr uint8_t kCmdKeyboardDisable = 0xad;
constexpr uint8_t kCmdKeyboardEnable = 0xae;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdWriteKeyboardBuffer = 0xd2;

constexpr uint8_t kSelfTestPassed = 0x55;
constexpr uint8_t kPortTestPassed = 0x00;
constexpr uint8_t kPortTestClockStuckLow = 0x01;
constexpr uint8_t kOutputPortResetLine = 0x01;  // active low

constexpr uint8_t kKbdAck = 0xfa;
constexpr uint8_t kKbdSelfTestPassed = 0xaa;
constexpr uint8_t kKbdReset = 0xff;
constexpr uint8_t kKbdGetId = 0xf2;
constexpr uint8_t kKbdEcho = 0xee;
constexpr uint8_t kKbdSetLeds = 0xed;
constexpr uint8_t kKbdSetTypematic = 0xf3;
constexpr uint8_t kKbdScanCodeSet = 0xf0;

// Commands 0xf0-0xff pulse output-port lines low for 6 us; bit 0 of the command clear selects the
// reset line.
constexpr bool pulses_reset(uint8_t cmd) { return (cmd & 0xf0) == 0xf0 && !(cmd & 0x01); }

}  // namespace

I8042::I8042(IrqLine& keyboard_irq, std::function<void()> on_reset)
    : irq_(keyboard_irq), on_reset_(std::move(on_reset)) {}

void I8042::read(uint64_t offset, std::span<uint8_t> data) {
    // guest-controlled: offset and data.size()
    if (data.size() != 1 || (offset != kDataOffset && offset != kCommandOffset)) {
        std::fill(data.begin(), data.end(), 0xff);
        return;
    }
    Effects fx;
    {
        std::lock_guard lock(mutex_);
        data[0] = offset == kDataOffset ? pop_output(fx) : status();
    }
    if (fx.raise_irq) irq_.trigger();
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset, data.size() and the value
    if (data.size() != 1 || (offset != kDataOffset && offset != kCommandOffset)) return;
    Effects fx;
    {
        std::lock_guard lock(mutex_);
        if (offset == kCommandOffset) {
            last_write_was_command_ = true;
            command(data[0], fx);
        } else {
            last_write_was_command_ = false;
            this->data(data[0], fx);
        }
    }
    if (fx.raise_irq) irq_.trigger();
    if (fx.reset) on_reset_();
}

uint8_t I8042::status() const {
    uint8_t s = kStatusNotInhibited;
    if (out_count_ > 0) s |= kStatusOutputFull;
    if (command_byte_ & kCtrSystemFlag) s |= kStatusSystemFlag;
    if (last_write_was_command_) s |= kStatusLastWasCommand;
    return s;
}

void I8042::command(uint8_t cmd, Effects& fx) {
    pending_command_ = 0;
    switch (cmd) {
    case kCmdReadCtr: push_output(command_byte_, fx); break;
    case kCmdWriteCtr:
    case kCmdWriteOutputPort:
    case kCmdWriteKeyboardBuffer: pending_command_ = cmd; break;
    case kCmdAuxDisable: command_byte_ |= kCtrAuxDisabled; break;
    case kCmdAuxEnable: command_byte_ &= ~kCtrAuxDisabled; break;
    case kCmdAuxTest: push_output(kPortTestClockStuckLow, fx); break;  // no aux port
    case kCmdSelfTest: push_output(kSelfTestPassed, fx); break;
    case kCmdKeyboardTest: push_output(kPortTestPassed, fx); break;
    case kCmdKeyboardDisable: command_byte_ |= kCtrKeyboardDisabled; break;
    case kCmdKeyboardEnable: command_byte_ &= ~kCtrKeyboardDisabled; break;
    case kCmdReadOutputPort: push_output(output_port_, fx); break;
    default:
        if (pulses_reset(cmd)) fx.reset = true;
        break;  // other commands (aux writes among them) are ignored
    }
}

void I8042::data(uint8_t value, Effects& fx) {
    uint8_t pending = std::exchange(pending_command_, 0);
    switch (pending) {
    case kCmdWriteCtr: {
        bool was_enabled = command_byte_ & kCtrKeyboardInterrupt;
        command_byte_ = value;
        if (!was_enabled && (value & kCtrKeyboardInterrupt) && out_count_ > 0) fx.raise_irq = true;
        break;
    }
    case kCmdWriteOutputPort:
        output_port_ = value;
        if (!(value & kOutputPortResetLine)) fx.reset = true;
        break;
    case kCmdWriteKeyboardBuffer: push_output(value, fx); break;
    default: keyboard_command(value, fx); break;
    }
}

void I8042::keyboard_command(uint8_t value, Effects& fx) {
    if (std::exchange(keyboard_pending_, 0) != 0) {  // the parameter byte of the previous command
        push_output(kKbdAck, fx);
        return;
    }
    switch (value) {
    case kKbdReset:
        push_output(kKbdAck, fx);
        push_output(kKbdSelfTestPassed, fx);
        break;
    case kKbdGetId:  // MF2 keyboard with translation
        push_output(kKbdAck, fx);
        push_output(0xab, fx);
        push_output(0x83, fx);
        break;
    case kKbdEcho: push_output(kKbdEcho, fx); break;
    case kKbdSetLeds:
    case kKbdSetTypematic:
    case kKbdScanCodeSet:
        keyboard_pending_ = value;
        push_output(kKbdAck, fx);
        break;
    default: push_output(kKbdAck, fx); break;
    }
}

void I8042::push_output(uint8_t byte, Effects& fx) {
    if (out_count_ == out_.size()) return;  // a guest that never reads loses the newest bytes
    out_[(out_head_ + out_count_) % out_.size()] = byte;
    ++out_count_;
    if (out_count_ == 1 && (command_byte_ & kCtrKeyboardInterrupt)) fx.raise_irq = true;
}

uint8_t I8042::pop_output(Effects& fx) {
    if (out_count_ == 0) return 0;
    uint8_t byte = out_[out_head_];
    out_head_ = (out_head_ + 1) % out_.size();
    --out_count_;
    // The next queued byte moves into the output buffer: that is a new "output buffer full".
    if (out_count_ > 0 && (command_byte_ & kCtrKeyboardInterrupt)) fx.raise_irq = true;
    return byte;
}

}  // namespace kite

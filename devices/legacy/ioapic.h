// An I/O APIC (82093AA register model, version 0x11, 24 pins) whose redirection entries become MSI
// messages: the VMM installs each unmasked pin's message as that GSI's KVM route (split irqchip), so an
// irqfd on the pin is injected by KVM in the writer's context. KVM's in-kernel I/O APIC injects an irqfd
// from a kworker instead, one more thread wake-up per interrupt; that is why Kite has its own.
//
// Registers (32-bit, at the base the MADT names): IOREGSEL at offset 0x00, IOWIN at 0x10. Indirect
// registers: 0x00 ID (bits 24-27 writable), 0x01 version (0x00170011: 24 entries), 0x02 arbitration ID,
// 0x10 + 2n / 0x11 + 2n the low / high word of pin n's redirection entry. Other indirect registers read
// 0xffffffff and ignore writes, as KVM's do; other offsets read 0 and ignore writes.
//
// Delivery: Kite's interrupt sources (irqfds) are edge pulses, so every pin is delivered edge-triggered
// whatever its trigger-mode bit says (the bit itself reads back as written). Remote IRR and delivery
// status always read 0. A pulse on a masked pin is lost, as on the 82093AA and KVM's I/O APIC. The message
// carries the destination in address bits 12-19, the entry's bits 49-55 (the extended destination ID of
// KVM_FEATURE_MSI_EXT_DEST_ID) in address bits 5-11, the destination mode in bit 2, and vector and
// delivery mode in the data word (the Intel SDM's MSI format, 11.11).
//
// Threads: vCPU threads read and write; a mutex orders them, and `apply` runs under it, so the routes
// KVM holds are always those of the latest entries. apply is called only when a pin's route changed.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/bus_device.h"

namespace kite {

struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
    bool operator==(const MsiMessage&) const = default;
};

class Ioapic final : public BusDevice {
public:
    static constexpr uint32_t kPins = 24;
    static constexpr uint64_t kWindowSize = 0x1000;
    static constexpr uint64_t kRegisterSelect = 0x00;
    static constexpr uint64_t kRegisterWindow = 0x10;
    static constexpr uint32_t kVersion = 0x11 | ((kPins - 1) << 16);
    static constexpr uint32_t kFirstRedirectionRegister = 0x10;
    static constexpr uint64_t kMaskBit = 1ull << 16;

    // A pin's message, or nullopt while it is masked.
    using Routes = std::array<std::optional<MsiMessage>, kPins>;
    // Installs the routes (all pins at once, as KVM_SET_GSI_ROUTING takes them).
    explicit Ioapic(std::function<void(const Routes&)> apply);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // The redirection entries as they read back.
    std::array<uint64_t, kPins> entries() const;
    // One line: each unmasked pin's vector, destination and message, or that all are masked.
    std::string describe() const;
    // The message a redirection entry sends, or nullopt if it is masked.
    static std::optional<MsiMessage> message_of(uint64_t entry);

    // Snapshot: ID, IOREGSEL and the 24 entries. restore_state checks the length and version, keeps only
    // writable bits and installs the routes.
    std::vector<uint8_t> save_state() const;
    Result<void> restore_state(std::span<const uint8_t> bytes);

private:
    // The pin whose entry IOREGSEL selects (either word), or nullopt.
    std::optional<uint32_t> selected_pin_locked() const;
    uint32_t read_indirect_locked() const;
    void write_indirect_locked(uint32_t value);
    void apply_routes_locked(bool always);

    std::function<void(const Routes&)> apply_;
    mutable std::mutex mutex_;
    uint32_t select_ = 0;
    uint32_t id_ = 0;
    std::array<uint64_t, kPins> entries_{};
    Routes routes_{};
};

}  // namespace kite

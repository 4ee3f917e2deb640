// Drives a VirtioPciTransport the way Linux's virtio_pci driver does, and records what the transport asks
// of KVM, for tests.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <tuple>

#include "devices/virtio/pci_transport.h"
#include "devices/virtio/spec.h"

namespace kite::test {

// Records what the transport asks of KVM: routes, and which fds are bound where.
class RecordingHost : public PciInterruptHost {
public:
    Result<void> set_msi_route(uint32_t gsi, uint64_t address, uint32_t data) override {
        routes[gsi] = {address, data};
        return {};
    }
    Result<void> bind_irqfd(int fd, uint32_t gsi) override {
        irqfds[fd] = gsi;
        return {};
    }
    Result<void> unbind_irqfd(int fd, uint32_t gsi) override {
        CHECK(irqfds[fd] == gsi);
        irqfds.erase(fd);
        return {};
    }
    Result<void> bind_ioeventfd(int fd, uint64_t address, uint32_t length, std::optional<uint64_t> datamatch) override {
        ioeventfds[fd] = {address, length, datamatch};
        return {};
    }
    Result<void> unbind_ioeventfd(int fd, uint64_t address, uint32_t length, std::optional<uint64_t> datamatch) override {
        CHECK(ioeventfds[fd] == std::tuple(address, length, datamatch));
        ioeventfds.erase(fd);
        return {};
    }
    std::map<uint32_t, std::pair<uint64_t, uint32_t>> routes;
    std::map<int, uint32_t> irqfds;
    std::map<int, std::tuple<uint64_t, uint32_t, std::optional<uint64_t>>> ioeventfds;
};

class PciDriver {
public:
    using T = VirtioPciTransport;
    explicit PciDriver(VirtioPciTransport& t) : t_(t) {}

    uint32_t cfg(uint16_t offset, unsigned size = 4) { return t_.config_read(offset, size); }
    void set_cfg(uint16_t offset, unsigned size, uint32_t value) { t_.config_write(offset, size, value); }
    uint64_t bar(uint64_t offset, unsigned size) {
        uint64_t value = 0;
        t_.bar_read(0, offset, std::span(reinterpret_cast<uint8_t*>(&value), size));
        return value;
    }
    void set_bar(uint64_t offset, unsigned size, uint64_t value) {
        t_.bar_write(0, offset, std::span(reinterpret_cast<const uint8_t*>(&value), size));
    }
    void enable_memory() { set_cfg(0x04, 2, 0x6); }  // Memory Space and Bus Master
    // Offset of the first capability with `id` (and, for vendor capabilities, cfg_type `type`).
    uint16_t find_cap(uint8_t id, uint8_t type = 0) {
        for (uint16_t at = cfg(0x34, 1); at != 0; at = cfg(at + 1, 1))
            if (cfg(at, 1) == id && (type == 0 || cfg(at + 3, 1) == type)) return at;
        return 0;
    }
    void enable_msix() {
        uint16_t cap = find_cap(0x11);
        set_cfg(cap + 2, 2, 0x8000);
    }
    void program_vector(uint16_t vector, uint64_t address, uint32_t data, bool masked) {
        uint64_t entry = T::kMsixTableOffset + 16 * vector;
        set_bar(entry, 8, address);
        set_bar(entry + 8, 4, data);
        set_bar(entry + 12, 4, masked ? 1 : 0);
    }
    void status(uint8_t s) { set_bar(0x14, 1, s); }
    uint8_t status() { return static_cast<uint8_t>(bar(0x14, 1)); }
    void negotiate(uint64_t features) {
        status(virtio::kStatusAcknowledge | virtio::kStatusDriver);
        set_bar(0x08, 4, 0);
        set_bar(0x0c, 4, uint32_t(features));
        set_bar(0x08, 4, 1);
        set_bar(0x0c, 4, uint32_t(features >> 32));
        status(virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
    }
    void setup_queue(uint16_t q, const QueueConfig& c) {
        set_bar(0x16, 2, q);
        set_bar(0x18, 2, c.size);
        set_bar(0x20, 4, uint32_t(c.desc.value()));  // in halves, as Linux writes them
        set_bar(0x24, 4, uint32_t(c.desc.value() >> 32));
        set_bar(0x28, 8, c.avail.value());
        set_bar(0x30, 8, c.used.value());
        set_bar(0x1c, 2, 1);
    }

private:
    VirtioPciTransport& t_;
};

// True if the eventfd had a count (and consumes it).
inline bool readable_count(int fd) {
    uint64_t v = 0;
    return ::read(fd, &v, sizeof v) == sizeof v && v > 0;
}

}  // namespace kite::test

// Drives a VirtioMmioTransport the way the Linux virtio_mmio driver does, for tests.
#pragma once

#include <cstdint>
#include <cstring>

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/spec.h"

namespace kite::test {

class MmioDriver {
public:
    explicit MmioDriver(BusDevice& device) : device_(device) {}

    uint32_t read32(uint64_t offset) {
        uint8_t data[4];
        device_.read(offset, data);
        uint32_t v;
        std::memcpy(&v, data, 4);
        return v;
    }
    void write32(uint64_t offset, uint32_t value) {
        uint8_t data[4];
        std::memcpy(data, &value, 4);
        device_.write(offset, data);
    }

    uint64_t device_features() {
        write32(0x14, 1);
        uint64_t high = read32(0x10);
        write32(0x14, 0);
        return (high << 32) | read32(0x10);
    }
    // ACKNOWLEDGE, DRIVER, features, FEATURES_OK. Returns the status read back.
    uint32_t negotiate(uint64_t features) {
        write32(0x70, virtio::kStatusAcknowledge);
        write32(0x70, virtio::kStatusAcknowledge | virtio::kStatusDriver);
        write32(0x24, 0);
        write32(0x20, uint32_t(features));
        write32(0x24, 1);
        write32(0x20, uint32_t(features >> 32));
        write32(0x70, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
        return read32(0x70);
    }
    void setup_queue(uint32_t index, const QueueConfig& config) {
        write32(0x30, index);
        write32(0x38, config.size);
        write32(0x80, uint32_t(config.desc.value()));
        write32(0x84, uint32_t(config.desc.value() >> 32));
        write32(0x90, uint32_t(config.avail.value()));
        write32(0x94, uint32_t(config.avail.value() >> 32));
        write32(0xa0, uint32_t(config.used.value()));
        write32(0xa4, uint32_t(config.used.value() >> 32));
        write32(0x44, 1);
    }
    void driver_ok() { write32(0x70, read32(0x70) | virtio::kStatusDriverOk); }

private:
    BusDevice& device_;
};

}  // namespace kite::test

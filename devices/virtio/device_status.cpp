#include "devices/virtio/device_status.h"

#include "devices/virtio/spec.h"

namespace kite::virtio {

bool acceptable_features(uint64_t driver_features, uint64_t offered) {
    return !(driver_features & ~offered) && (driver_features & kFeatureVersion1);
}

StatusUpdate apply_status_write(uint32_t current, uint32_t written, uint64_t driver_features, uint64_t offered,
                                LogLimit& log, std::string_view transport) {
    // DEVICE_NEEDS_RESET is the device's bit: a driver may leave it out or write back what it read
    // (Linux's virtio_add_status(FAILED) does).
    uint32_t kept = current & ~kStatusDeviceNeedsReset;
    if ((written & kept) != kept) {
        log.warn("{}: status {:#x} clears bits of {:#x}, ignored", transport, written, current);
        return {current, false};
    }
    uint32_t added = written & ~current;
    uint32_t next = current | written;
    if (added & kStatusFeaturesOk) {
        if (!acceptable_features(driver_features, offered)) {
            log.warn("{}: features {:#x} refused (offered {:#x}, VERSION_1 required)", transport, driver_features,
                     offered);
            next &= ~kStatusFeaturesOk;
        }
    }
    if (added & kStatusDriverOk) {
        if (!(next & kStatusFeaturesOk) || (next & kStatusDeviceNeedsReset)) {
            log.warn("{}: DRIVER_OK without FEATURES_OK or with a failed queue, ignored", transport);
            next &= ~kStatusDriverOk;
        }
    }
    return {next, (added & next & kStatusDriverOk) != 0};
}

}  // namespace kite::virtio

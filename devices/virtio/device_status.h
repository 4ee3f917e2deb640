// The device status rules both transports apply to a driver's non-zero status write (VIRTIO 1.2
// sections 2.1 and 3.1.1): the driver only adds bits, FEATURES_OK sticks only for acceptable features
// (a subset of the offered ones, VERSION_1 included), DRIVER_OK only after FEATURES_OK and never while a
// queue was refused. Writing 0 (reset) is the transport's own business.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/log_limit.h"

namespace kite::virtio {

struct StatusUpdate {
    uint32_t status;  // the new device status
    bool activate;    // DRIVER_OK was just set: activate the device
};

// The features a driver may accept: a subset of the offered ones, VERSION_1 included (also what a
// restored snapshot must hold).
bool acceptable_features(uint64_t driver_features, uint64_t offered);

// guest-controlled: written (non-zero). `transport` names the transport in warnings.
StatusUpdate apply_status_write(uint32_t current, uint32_t written, uint64_t driver_features, uint64_t offered,
                                LogLimit& log, std::string_view transport);

}  // namespace kite::virtio

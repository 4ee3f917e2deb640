// The byte format pieces both virtio transports' snapshot blobs share: little-endian fixed-size fields,
// and the common state (TransportCore's) in the same layout in both blobs.
//
// Common head (30 bytes): u32 device_id, u16 num_queues, u32 status, u32 device_features_sel,
//   u32 driver_features_sel, u64 driver_features, u32 queue_sel.
// Per queue (29 bytes): u16 max_size, u16 size, u8 ready, u64 desc, u64 avail, u64 used.
// The blob names the device and its queues so that a restore into a differently configured VM (other
// device flags or order) is refused instead of misread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/virtio/virtio_device.h"

namespace kite::virtio {

class StateWriter {
public:
    template <class T>
    void put(T value) {
        for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(uint64_t(value) >> (8 * i)));
    }
    std::vector<uint8_t> out;
};

// Reads fixed-size fields; the caller checked the total length first, so get() never runs past the end.
class StateReader {
public:
    explicit StateReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
    template <class T>
    T get() {
        uint64_t v = 0;
        for (size_t i = 0; i < sizeof(T) && at_ < bytes_.size(); ++i) v |= uint64_t(bytes_[at_++]) << (8 * i);
        return static_cast<T>(v);
    }

private:
    std::span<const uint8_t> bytes_;
    size_t at_ = 0;
};

struct SavedQueue {
    uint16_t max_size = 0;
    QueueConfig config;
};

// What the driver writes to the common registers (besides the queues'), as TransportCore keeps it.
struct DriverRegisters {
    uint32_t status = 0;
    uint32_t device_features_sel = 0;
    uint32_t driver_features_sel = 0;
    uint64_t driver_features = 0;
    uint32_t queue_sel = 0;
};

struct CommonState {
    uint32_t device_id = 0;
    DriverRegisters driver;
    std::vector<SavedQueue> queues;
};

inline constexpr size_t kCommonHeadBytes = 30;
inline constexpr size_t kSavedQueueBytes = 29;

// A blob's start: its version byte and the common head.
StateWriter start_blob(uint8_t version, const CommonState& s);
void put_queue(StateWriter& w, const SavedQueue& q);

// How long a transport's blob is: `header_bytes` up to its first queue record, `total_bytes` in all (for
// this device's queue count), and its version byte.
struct BlobLayout {
    uint8_t version;
    size_t header_bytes;
    size_t total_bytes;
};
// Reads a blob's version byte and common head, checking in turn that the blob holds its header, has
// `layout`'s version, is for this device (`device_id`, `num_queues`) and is `layout.total_bytes` long.
// `what` names the blob in errors. The queues stay empty: the caller reads them after its own fields.
Result<CommonState> open_blob(StateReader& r, std::span<const uint8_t> bytes, const BlobLayout& layout,
                              uint32_t device_id, size_t num_queues, const std::string& what);
// Reads one queue; refuses a ready flag that is not 0 or 1.
Result<SavedQueue> get_queue(StateReader& r, const std::string& what);

}  // namespace kite::virtio

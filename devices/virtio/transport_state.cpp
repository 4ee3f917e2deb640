#include "devices/virtio/transport_state.h"

namespace kite::virtio {

StateWriter start_blob(uint8_t version, const CommonState& s) {
    StateWriter w;
    w.put<uint8_t>(version);
    w.put<uint32_t>(s.device_id);
    w.put<uint16_t>(static_cast<uint16_t>(s.queues.size()));
    w.put<uint32_t>(s.driver.status);
    w.put<uint32_t>(s.driver.device_features_sel);
    w.put<uint32_t>(s.driver.driver_features_sel);
    w.put<uint64_t>(s.driver.driver_features);
    w.put<uint32_t>(s.driver.queue_sel);
    return w;
}

void put_queue(StateWriter& w, const SavedQueue& q) {
    w.put<uint16_t>(q.max_size);
    w.put<uint16_t>(q.config.size);
    w.put<uint8_t>(q.config.ready ? 1 : 0);
    w.put<uint64_t>(q.config.desc.value());
    w.put<uint64_t>(q.config.avail.value());
    w.put<uint64_t>(q.config.used.value());
}

Result<CommonState> open_blob(StateReader& r, std::span<const uint8_t> bytes, const BlobLayout& layout,
                              uint32_t device_id, size_t num_queues, const std::string& what) {
    if (bytes.size() < layout.header_bytes)
        return fail(what + ": " + std::to_string(bytes.size()) + " bytes, shorter than its header");
    const auto version = r.get<uint8_t>();
    if (version != layout.version) return fail(what + ": unsupported version " + std::to_string(version));
    CommonState s;
    s.device_id = r.get<uint32_t>();
    if (s.device_id != device_id)
        return fail(what + ": saved for device id " + std::to_string(s.device_id) +
                    " (give the same devices in the same order as the snapshotted VM)");
    const auto saved_queues = r.get<uint16_t>();
    if (saved_queues != num_queues)
        return fail(what + ": " + std::to_string(saved_queues) + " queues saved, the device has " +
                    std::to_string(num_queues));
    if (bytes.size() != layout.total_bytes)
        return fail(what + ": " + std::to_string(bytes.size()) + " bytes, want " + std::to_string(layout.total_bytes));
    s.driver.status = r.get<uint32_t>();
    s.driver.device_features_sel = r.get<uint32_t>();
    s.driver.driver_features_sel = r.get<uint32_t>();
    s.driver.driver_features = r.get<uint64_t>();
    s.driver.queue_sel = r.get<uint32_t>();
    return s;
}

Result<SavedQueue> get_queue(StateReader& r, const std::string& what) {
    SavedQueue q;
    q.max_size = r.get<uint16_t>();
    q.config.size = r.get<uint16_t>();
    const auto ready = r.get<uint8_t>();
    q.config.desc = GuestAddress(r.get<uint64_t>());
    q.config.avail = GuestAddress(r.get<uint64_t>());
    q.config.used = GuestAddress(r.get<uint64_t>());
    if (ready > 1) return fail(what + ": queue ready flag " + std::to_string(ready) + " is not 0 or 1");
    q.config.ready = ready == 1;
    return q;
}

}  // namespace kite::virtio

#include "devices/virtio/transport_state.h"

namespace kite::virtio {

void put_head(StateWriter& w, const CommonState& s) {
    w.put<uint32_t>(s.device_id);
    w.put<uint16_t>(static_cast<uint16_t>(s.queues.size()));
    w.put<uint32_t>(s.driver.status);
    w.put<uint32_t>(s.driver.device_features_sel);
    w.put<uint32_t>(s.driver.driver_features_sel);
    w.put<uint64_t>(s.driver.driver_features);
    w.put<uint32_t>(s.driver.queue_sel);
}

void put_queue(StateWriter& w, const SavedQueue& q) {
    w.put<uint16_t>(q.max_size);
    w.put<uint16_t>(q.config.size);
    w.put<uint8_t>(q.config.ready ? 1 : 0);
    w.put<uint64_t>(q.config.desc.value());
    w.put<uint64_t>(q.config.avail.value());
    w.put<uint64_t>(q.config.used.value());
}

Result<CommonState> get_head(StateReader& r, uint32_t device_id, size_t num_queues, const std::string& what) {
    CommonState s;
    s.device_id = r.get<uint32_t>();
    if (s.device_id != device_id)
        return fail(what + ": saved for device id " + std::to_string(s.device_id) +
                    " (give the same devices in the same order as the snapshotted VM)");
    const auto saved_queues = r.get<uint16_t>();
    if (saved_queues != num_queues)
        return fail(what + ": " + std::to_string(saved_queues) + " queues saved, the device has " +
                    std::to_string(num_queues));
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

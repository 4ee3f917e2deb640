// Activates a device directly (no transport) with fake rings in HeapMemory, real kick eventfds and an
// interrupt that counts, and runs the event loop the way the VMM thread would.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include "base/asio_loop.h"
#include <chrono>
#include <vector>

#include "base/fd.h"
#include "devices/virtio/spec.h"
#include "devices/virtio/virtio_device.h"
#include "fake_queue.h"

namespace kite::test {

class CountingInterrupt : public VirtioInterrupt {
public:
    void signal_used_queue(uint16_t queue) override { used.push_back(queue); }
    void signal_config_change() override { ++config_changes; }
    void needs_reset() override { ++resets_needed; }

    std::vector<uint16_t> used;
    int config_changes = 0;
    int resets_needed = 0;
};

class DeviceHarness {
public:
    // One FakeQueue of `size` per device queue, laid out 64 KiB apart from 0x10000.
    DeviceHarness(VirtioDevice& device, uint16_t size = 16, uint64_t memory_size = 16 << 20,
                  uint64_t features = virtio::kCommonFeatures)
        : memory(memory_size), device_(device), features_(features) {
        for (size_t i = 0; i < device.queue_max_sizes().size(); ++i) {
            queues.emplace_back(memory, size, 0x10000 + 0x10000 * i);
            kicks.emplace_back(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
        }
    }

    // Resets the device while the event loop still exists, as the VMM does before it stops the loop:
    // the device's fd watchers belong to this io_context.
    ~DeviceHarness() { device_.reset(); }
    DeviceHarness(const DeviceHarness&) = delete;
    DeviceHarness& operator=(const DeviceHarness&) = delete;

    Result<void> activate() {
        std::vector<QueueConfig> configs;
        std::vector<BorrowedFd> fds;
        for (size_t i = 0; i < queues.size(); ++i) {
            configs.push_back(queues[i].config());
            fds.push_back(kicks[i]);
        }
        return device_.activate(ActivateContext{memory, configs, fds, {}, interrupt, io, features_});
    }

    // Notifies the queue and runs the loop until the device returned a chain on it (or 2 s passed:
    // asynchronous block I/O such as fsync may take a while).
    void kick(size_t queue) {
        uint16_t before = queues[queue].used_idx();
        uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(kicks[queue].get(), &one, sizeof one);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (queues[queue].used_idx() == before && std::chrono::steady_clock::now() < deadline) {
            io.restart();
            io.run_for(std::chrono::milliseconds(5));
        }
    }

    // Runs ready handlers until nothing is left to do right now.
    void run() {
        io.restart();
        io.run_for(std::chrono::milliseconds(20));
    }

    HeapMemory memory;
    asio::io_context io;
    CountingInterrupt interrupt;
    std::vector<FakeQueue> queues;
    std::vector<UniqueFd> kicks;

private:
    VirtioDevice& device_;
    uint64_t features_;
};

}  // namespace kite::test

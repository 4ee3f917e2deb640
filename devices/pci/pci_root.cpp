#include "devices/pci/pci_root.h"

#include <algorithm>
#include <bit>
#include <string>

namespace kite::pci {

namespace {

constexpr uint32_t kLatchEnable = 1u << 31;
constexpr uint32_t kLatchReadOnly = 0x3;  // bits 1:0 of CONFIG_ADDRESS read 0
constexpr uint64_t kDataPort = 4;          // 0xcfc - 0xcf8
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t k4GiB = uint64_t{1} << 32;

constexpr DeviceIds kHostBridgeIds{.vendor = 0x1b36, .device = 0x0008, .class_code = 0x060000};

void fill_ones(std::span<uint8_t> data) { std::fill(data.begin(), data.end(), uint8_t{0xff}); }

}  // namespace

// The host bridge at 00:00.0: a header only, no BARs (QEMU's "generic PCIe host bridge" ids).
class PciRoot::HostBridge final : public PciDevice {
public:
    HostBridge() : config_(kHostBridgeIds) {}
    uint32_t config_read(uint16_t offset, unsigned size) override { return config_.read(offset, size); }
    void config_write(uint16_t offset, unsigned size, uint32_t value) override { config_.write(offset, size, value); }
    void bar_read(unsigned, uint64_t, std::span<uint8_t> data) override { fill_ones(data); }
    void bar_write(unsigned, uint64_t, std::span<const uint8_t>) override {}
    std::optional<uint64_t> bar_address(unsigned) const override { return std::nullopt; }
    uint64_t bar_size(unsigned) const override { return 0; }

private:
    ConfigSpace config_;
};

// Ports 0xcf8-0xcff: the CONFIG_ADDRESS latch and the CONFIG_DATA window. One mutex serialises every
// config access machine-wide (the latch and the devices' config spaces).
class PciRoot::Ports final : public BusDevice {
public:
    // Set-up only, before vCPUs run.
    void attach(unsigned slot, std::shared_ptr<PciDevice> device) { slots_[slot] = std::move(device); }

    void read(uint64_t offset, std::span<uint8_t> data) override {
        // guest-controlled: offset, data.size()
        fill_ones(data);
        std::lock_guard lock(mutex_);
        if (offset == 0 && data.size() == 4) {
            store(data, latch_);
            return;
        }
        unsigned reg = 0;
        PciDevice* device = target(offset, data.size(), reg);
        if (device) store(data, device->config_read(static_cast<uint16_t>(reg), static_cast<unsigned>(data.size())));
    }

    void write(uint64_t offset, std::span<const uint8_t> data) override {
        // guest-controlled: offset, data.size(), data
        std::lock_guard lock(mutex_);
        if (offset == 0 && data.size() == 4) {
            latch_ = load(data) & ~kLatchReadOnly;
            return;
        }
        unsigned reg = 0;
        PciDevice* device = target(offset, data.size(), reg);
        if (device) device->config_write(static_cast<uint16_t>(reg), static_cast<unsigned>(data.size()), load(data));
    }

private:
    // The device and register a data-port access reaches, or nullptr (then reads are all ones and
    // writes are dropped). Caller holds mutex_.
    PciDevice* target(uint64_t offset, size_t size, unsigned& reg) const {
        if (offset < kDataPort || offset >= kConfigPortsLength) return nullptr;
        const uint64_t within = offset - kDataPort;
        if ((size != 1 && size != 2 && size != 4) || within + size > 4) return nullptr;
        if (!(latch_ & kLatchEnable)) return nullptr;
        const unsigned bus = (latch_ >> 16) & 0xff;
        const unsigned slot = (latch_ >> 11) & 0x1f;
        const unsigned function = (latch_ >> 8) & 0x7;
        const unsigned extended = (latch_ >> 24) & 0xf;  // AMD's extended register bits: no such space here
        if (bus != 0 || function != 0 || extended != 0) return nullptr;
        reg = (latch_ & 0xfc) + static_cast<unsigned>(within);
        return slots_[slot].get();
    }

    static uint32_t load(std::span<const uint8_t> data) {
        uint32_t v = 0;
        for (size_t i = 0; i < std::min<size_t>(data.size(), 4); ++i) v |= uint32_t{data[i]} << (8 * i);
        return v;
    }
    static void store(std::span<uint8_t> data, uint32_t v) {
        for (size_t i = 0; i < std::min<size_t>(data.size(), 4); ++i) data[i] = static_cast<uint8_t>(v >> (8 * i));
    }

    std::mutex mutex_;
    uint32_t latch_ = 0;  // guarded by mutex_
    std::array<std::shared_ptr<PciDevice>, kMaxSlots> slots_{};  // set-up only, then immutable
};

// The BAR window: each access goes to the BAR that decodes there now (the guest may move BARs), no lock.
class PciRoot::Window final : public BusDevice {
public:
    explicit Window(uint64_t base) : base_(base) {}

    // Set-up only, before vCPUs run.
    void attach(std::shared_ptr<PciDevice> device) { devices_.push_back(std::move(device)); }

    void read(uint64_t offset, std::span<uint8_t> data) override {
        // guest-controlled: offset, data.size()
        unsigned bar = 0;
        uint64_t within = 0;
        if (PciDevice* device = find(offset, data.size(), bar, within)) {
            device->bar_read(bar, within, data);
            return;
        }
        fill_ones(data);
    }

    void write(uint64_t offset, std::span<const uint8_t> data) override {
        // guest-controlled: offset, data.size(), data
        unsigned bar = 0;
        uint64_t within = 0;
        if (PciDevice* device = find(offset, data.size(), bar, within)) device->bar_write(bar, within, data);
    }

private:
    PciDevice* find(uint64_t offset, size_t size, unsigned& bar, uint64_t& within) const {
        if (size != 1 && size != 2 && size != 4 && size != 8) return nullptr;
        if (offset > UINT64_MAX - base_) return nullptr;
        const uint64_t address = base_ + offset;
        for (const auto& device : devices_) {
            for (unsigned i = 0; i < kMaxBars; ++i) {
                const uint64_t bar_size = device->bar_size(i);
                const auto bar_address = device->bar_address(i);
                if (bar_size == 0 || !bar_address || address < *bar_address) continue;
                const uint64_t at = address - *bar_address;
                if (at >= bar_size || bar_size - at < size) continue;
                bar = i;
                within = at;
                return device.get();
            }
        }
        return nullptr;
    }

    uint64_t base_;
    std::vector<std::shared_ptr<PciDevice>> devices_;  // set-up only, then immutable
};

PciRoot::PciRoot(uint64_t mmio_base, uint64_t mmio_size)
    : mmio_base_(mmio_base),
      mmio_size_(mmio_size),
      next_bar_(mmio_base),
      ports_(std::make_shared<Ports>()),
      window_(std::make_shared<Window>(mmio_base)) {
    auto bridge = std::make_shared<HostBridge>();
    slots_[0] = bridge;
    ports_->attach(0, bridge);
}

std::shared_ptr<BusDevice> PciRoot::config_ports() const { return ports_; }

std::shared_ptr<BusDevice> PciRoot::mmio_window() const { return window_; }

Result<uint64_t> PciRoot::allocate_bar(uint64_t size) {
    if (size < 16 || !std::has_single_bit(size)) return fail("PCI BAR size " + std::to_string(size) + " is not a power of two >= 16");
    // The window's own bounds, checked here so that a bad window fails every allocation instead of
    // placing BARs where 32-bit BARs cannot reach.
    if (mmio_size_ == 0 || mmio_base_ >= k4GiB || k4GiB - mmio_base_ < mmio_size_)
        return fail("the PCI memory window is empty or not below 4 GiB");
    const uint64_t align = std::max(size, kPageSize);
    const uint64_t end = mmio_base_ + mmio_size_;
    const uint64_t address = (next_bar_ + align - 1) & ~(align - 1);  // no overflow: next_bar_ < 4 GiB, align <= 2^63
    if (address >= end || end - address < size)
        return fail("the PCI memory window is full: no room for a BAR of " + std::to_string(size) + " bytes");
    next_bar_ = address + size;
    return address;
}

Result<unsigned> PciRoot::add(std::shared_ptr<PciDevice> device) {
    if (!device) return fail("no PCI device to add");
    for (unsigned slot = 1; slot < kMaxSlots; ++slot) {
        if (slots_[slot]) continue;
        slots_[slot] = device;
        ports_->attach(slot, device);
        window_->attach(std::move(device));
        return slot;
    }
    return fail("the PCI bus is full: all 31 device slots are taken");
}

}  // namespace kite::pci

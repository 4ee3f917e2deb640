#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "devices/pci/config_space.h"
#include "devices/pci/pci_device.h"
#include "devices/pci/pci_root.h"

using namespace kite;
using namespace kite::pci;

namespace {

constexpr uint64_t kWindowBase = 0xc000'0000;
constexpr uint64_t kWindowSize = 0x1000'0000;

// A device with a real ConfigSpace that records BAR accesses and answers reads with a pattern that
// names the BAR and the offset.
class FakeDevice final : public PciDevice {
public:
    struct Access {
        unsigned bar;
        uint64_t offset;
        size_t size;
        bool write;
    };

    explicit FakeDevice(uint16_t device_id) : config(DeviceIds{.vendor = 0x1af4, .device = device_id}) {}

    uint32_t config_read(uint16_t offset, unsigned size) override { return config.read(offset, size); }
    void config_write(uint16_t offset, unsigned size, uint32_t value) override { config.write(offset, size, value); }
    void bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) override {
        accesses.push_back({bar, offset, data.size(), false});
        for (auto& b : data) b = static_cast<uint8_t>(0x10 * (bar + 1) + offset);
    }
    void bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data) override {
        accesses.push_back({bar, offset, data.size(), true});
    }
    std::optional<uint64_t> bar_address(unsigned bar) const override { return config.bar_address(bar); }
    uint64_t bar_size(unsigned bar) const override { return config.bar_size(bar); }

    ConfigSpace config;
    std::vector<Access> accesses;
};

uint32_t config_address(unsigned slot, unsigned reg, unsigned bus = 0, unsigned function = 0) {
    return 0x8000'0000u | bus << 16 | slot << 11 | function << 8 | reg;
}

struct Fixture {
    PciRoot root{kWindowBase, kWindowSize};
    std::shared_ptr<BusDevice> ports = root.config_ports();
    std::shared_ptr<BusDevice> window = root.mmio_window();

    void out32(uint64_t port, uint32_t value) {
        std::array<uint8_t, 4> b{};
        for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(value >> (8 * i));
        ports->write(port - kConfigAddressPort, b);
    }
    uint32_t in(uint64_t port, size_t size) {
        std::array<uint8_t, 4> b{};
        ports->read(port - kConfigAddressPort, std::span(b).first(size));
        uint32_t v = 0;
        for (size_t i = 0; i < size; ++i) v |= uint32_t{b[i]} << (8 * i);
        return v;
    }
    uint32_t config_read32(unsigned slot, unsigned reg) {
        out32(0xcf8, config_address(slot, reg));
        return in(0xcfc, 4);
    }
    void config_write32(unsigned slot, unsigned reg, uint32_t value) {
        out32(0xcf8, config_address(slot, reg));
        out32(0xcfc, value);
    }
    uint64_t mmio_read(uint64_t address, size_t size) {
        std::array<uint8_t, 8> b{};
        window->read(address - kWindowBase, std::span(b).first(size));
        uint64_t v = 0;
        for (size_t i = 0; i < size; ++i) v |= uint64_t{b[i]} << (8 * i);
        return v;
    }
    // A fake device with a 32-bit BAR 0 of 0x1000 and a 64-bit BAR 2 of 0x4000, memory decode on.
    std::shared_ptr<FakeDevice> add_device(uint16_t id) {
        auto device = std::make_shared<FakeDevice>(id);
        REQUIRE(device->config.add_memory_bar(0, 0x1000, *root.allocate_bar(0x1000), false, false));
        REQUIRE(device->config.add_memory_bar(2, 0x4000, *root.allocate_bar(0x4000), true, false));
        device->config.write(kCommandOffset, 2, kCommandMemory);
        REQUIRE(root.add(device).has_value());
        return device;
    }
};

}  // namespace

TEST_CASE("pci root: the Linux mechanism #1 probe reads back 0x80000000") {
    Fixture f;
    f.out32(0xcf8, 0x8000'0000);
    CHECK(f.in(0xcf8, 4) == 0x8000'0000);
    f.out32(0xcf8, 0x8000'0803);  // bits 1:0 are read-only zero
    CHECK(f.in(0xcf8, 4) == 0x8000'0800);
}

TEST_CASE("pci root: other widths at the address port are ignored and read all ones") {
    Fixture f;
    f.out32(0xcf8, 0x8000'0000);
    const std::array<uint8_t, 1> one{0x01};
    f.ports->write(3, one);  // Linux's outb(0x01, 0xcfb)
    const std::array<uint8_t, 2> two{0x12, 0x34};
    f.ports->write(0, two);
    CHECK(f.in(0xcf8, 4) == 0x8000'0000);
    CHECK(f.in(0xcf8, 2) == 0xffff);
    CHECK(f.in(0xcf8, 1) == 0xff);
    CHECK(f.in(0xcfb, 1) == 0xff);
}

TEST_CASE("pci root: 00:00.0 is a host bridge") {
    Fixture f;
    CHECK(f.config_read32(0, 0x00) == 0x0008'1b36);
    CHECK(f.config_read32(0, 0x08) == 0x0600'0000);
    CHECK(f.config_read32(0, 0x0c) == 0);  // header type 0
    CHECK(f.config_read32(0, 0x10) == 0);  // no BARs
}

TEST_CASE("pci root: an absent slot reads all ones and ignores writes") {
    Fixture f;
    CHECK(f.config_read32(1, 0x00) == 0xffff'ffff);
    CHECK(f.config_read32(31, 0x00) == 0xffff'ffff);
    f.config_write32(1, 0x04, 0x2);
    CHECK(f.config_read32(1, 0x04) == 0xffff'ffff);
}

TEST_CASE("pci root: byte and word reads reach the latched dword plus the port offset") {
    Fixture f;
    f.out32(0xcf8, config_address(0, 0x00));
    CHECK(f.in(0xcfc, 2) == 0x1b36);
    CHECK(f.in(0xcfd, 1) == 0x1b);
    CHECK(f.in(0xcfe, 2) == 0x0008);
    CHECK(f.in(0xcff, 1) == 0x00);
    f.out32(0xcf8, config_address(0, 0x08));
    CHECK(f.in(0xcfe, 1) == 0x00);
    CHECK(f.in(0xcff, 1) == 0x06);
}

TEST_CASE("pci root: data accesses that cross the dword or have a bad width read all ones") {
    Fixture f;
    f.out32(0xcf8, config_address(0, 0x00));
    CHECK(f.in(0xcfd, 2) == 0x081b);  // inside the dword: fine
    CHECK(f.in(0xcff, 2) == 0xffff);
    CHECK(f.in(0xcfe, 4) == 0xffff'ffff);
    CHECK(f.in(0xcfd, 4) == 0xffff'ffff);
    std::array<uint8_t, 3> three{};
    f.ports->read(4, three);
    CHECK(three == std::array<uint8_t, 3>{0xff, 0xff, 0xff});
    std::array<uint8_t, 8> eight{};
    f.ports->read(0, eight);
    CHECK(eight == std::array<uint8_t, 8>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    std::array<uint8_t, 4> past{};
    f.ports->read(8, past);
    CHECK(past == std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff});
}

TEST_CASE("pci root: a disabled latch, another bus or another function reads all ones") {
    Fixture f;
    auto device = f.add_device(0x1041);
    f.out32(0xcf8, 0x0000'0800);  // slot 1, enable bit clear
    CHECK(f.in(0xcfc, 4) == 0xffff'ffff);
    f.out32(0xcf8, config_address(1, 0, 1));
    CHECK(f.in(0xcfc, 4) == 0xffff'ffff);
    f.out32(0xcf8, config_address(1, 0, 0, 1));
    CHECK(f.in(0xcfc, 4) == 0xffff'ffff);
    f.out32(0xcf8, config_address(1, 0, 0, 1));
    f.out32(0xcfc, 0);  // would turn memory decode off on function 0
    f.out32(0xcf8, 0x0100'0800 | 0x8000'0000);  // extended register bits
    CHECK(f.in(0xcfc, 4) == 0xffff'ffff);
    CHECK(f.config_read32(1, 0x00) == 0x1041'1af4);
    CHECK(device->config.command() == kCommandMemory);
}

TEST_CASE("pci root: config writes reach the device in the slot") {
    Fixture f;
    auto device = f.add_device(0x1041);
    f.config_write32(1, 0x04, kCommandMemory | kCommandBusMaster);
    CHECK(device->config.command() == (kCommandMemory | kCommandBusMaster));
    f.out32(0xcf8, config_address(1, 0x3c));
    const std::array<uint8_t, 1> line{0x0b};
    f.ports->write(4, line);
    CHECK(device->config.read(0x3c, 1) == 0x0b);
}

TEST_CASE("pci root: add fills slots 1 to 31 and then fails") {
    PciRoot root(kWindowBase, kWindowSize);
    for (unsigned slot = 1; slot < kMaxSlots; ++slot) CHECK(root.add(std::make_shared<FakeDevice>(0x1041)) == slot);
    CHECK_FALSE(root.add(std::make_shared<FakeDevice>(0x1041)).has_value());
    CHECK_FALSE(PciRoot(kWindowBase, kWindowSize).add(nullptr).has_value());
}

TEST_CASE("pci root: allocate_bar aligns to the size, at least a page, and fails when the window is full") {
    PciRoot root(kWindowBase, 0x10000);
    CHECK(root.allocate_bar(0x10) == kWindowBase);
    CHECK(root.allocate_bar(0x2000) == kWindowBase + 0x2000);
    CHECK(root.allocate_bar(0x100) == kWindowBase + 0x4000);
    CHECK(root.allocate_bar(0x8000) == kWindowBase + 0x8000);
    CHECK_FALSE(root.allocate_bar(0x10).has_value());
    CHECK_FALSE(root.allocate_bar(0x1800).has_value());  // not a power of two
    CHECK_FALSE(root.allocate_bar(8).has_value());
}

TEST_CASE("pci root: a BAR larger than the window is refused") {
    PciRoot root(kWindowBase, 0x10000);
    CHECK_FALSE(root.allocate_bar(0x20000).has_value());
    CHECK_FALSE(root.allocate_bar(uint64_t{1} << 63).has_value());
    CHECK(root.allocate_bar(0x10000) == kWindowBase);
}

TEST_CASE("pci root: window accesses go to the device and BAR that decode there") {
    Fixture f;
    auto first = f.add_device(0x1041);
    auto second = f.add_device(0x1042);
    const uint64_t bar0 = *second->bar_address(0);
    const uint64_t bar2 = *second->bar_address(2);
    CHECK(f.mmio_read(bar0 + 0x4, 4) == 0x1414'1414);
    CHECK(f.mmio_read(bar2 + 0x8, 8) == 0x3838'3838'3838'3838ull);
    const std::array<uint8_t, 2> value{1, 2};
    f.window->write(bar2 + 0x3ffe - kWindowBase, value);
    CHECK(first->accesses.empty());
    REQUIRE(second->accesses.size() == 3);
    CHECK(second->accesses[2].bar == 2);
    CHECK(second->accesses[2].offset == 0x3ffe);
    CHECK(second->accesses[2].size == 2);
    CHECK(second->accesses[2].write);
}

TEST_CASE("pci root: accesses no BAR covers read all ones and drop writes") {
    Fixture f;
    auto device = f.add_device(0x1041);
    const uint64_t bar0 = *device->bar_address(0);
    CHECK(f.mmio_read(bar0 + 0x1000, 4) == 0xffff'ffff);   // the gap after BAR 0
    CHECK(f.mmio_read(bar0 + 0xffe, 4) == 0xffff'ffff);    // straddles the end of BAR 0
    CHECK(f.mmio_read(kWindowBase + 0x100'0000, 8) == 0xffff'ffff'ffff'ffffull);
    const std::array<uint8_t, 4> value{};
    f.window->write(0x100'0000, value);
    std::array<uint8_t, 3> odd{};
    f.window->read(bar0 - kWindowBase, odd);  // not a bus width
    CHECK(odd == std::array<uint8_t, 3>{0xff, 0xff, 0xff});
    f.window->read(UINT64_MAX - 1, std::span(odd).first(2));
    CHECK(device->accesses.empty());
}

TEST_CASE("pci root: dispatch follows a BAR the guest moved and stops while decode is off") {
    Fixture f;
    auto device = f.add_device(0x1041);
    const uint64_t old_bar0 = *device->bar_address(0);
    const uint64_t new_bar0 = kWindowBase + 0x80'0000;
    f.config_write32(1, 0x10, static_cast<uint32_t>(new_bar0));
    CHECK(f.mmio_read(old_bar0, 4) == 0xffff'ffff);
    CHECK(f.mmio_read(new_bar0 + 0x2, 1) == 0x12);

    f.config_write32(1, 0x04, 0);
    CHECK(f.mmio_read(new_bar0, 4) == 0xffff'ffff);
    f.config_write32(1, 0x10, 0xffff'ffff);
    CHECK(f.config_read32(1, 0x10) == 0xffff'f000);
    f.config_write32(1, 0x04, kCommandMemory);
    CHECK(f.mmio_read(0xffff'f000, 4) == 0xffff'ffff);  // the sizing pattern decodes nowhere
    REQUIRE(device->accesses.size() == 1);
    CHECK(device->accesses[0].offset == 0x2);
}

#include <doctest/doctest.h>

#include <array>
#include <memory>
#include <vector>

#include "devices/bus.h"

using namespace kite;

namespace {

// Records every access it sees; reads return the low byte of the offset in every byte.
class RecordingDevice final : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        reads.push_back({offset, data.size()});
        for (auto& b : data) b = static_cast<uint8_t>(offset);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        writes.push_back({offset, data.size()});
        last_value = data[0];
    }
    struct Access {
        uint64_t offset;
        size_t size;
        bool operator==(const Access&) const = default;
    };
    std::vector<Access> reads;
    std::vector<Access> writes;
    uint8_t last_value = 0;
};

}  // namespace

TEST_CASE("bus refuses overlapping, empty and wrapping ranges") {
    Bus bus;
    auto dev = std::make_shared<RecordingDevice>();
    REQUIRE(bus.insert(dev, 0x1000, 0x100).has_value());

    CHECK_FALSE(bus.insert(dev, 0x10ff, 1).has_value());   // last byte
    CHECK_FALSE(bus.insert(dev, 0xf00, 0x101).has_value());  // first byte, from below
    CHECK_FALSE(bus.insert(dev, 0x1080, 0x10).has_value());  // inside
    CHECK_FALSE(bus.insert(dev, 0x0, 0x10000).has_value());  // around
    CHECK_FALSE(bus.insert(dev, 0x2000, 0).has_value());
    CHECK_FALSE(bus.insert(dev, UINT64_MAX, 2).has_value());
    CHECK_FALSE(bus.insert(nullptr, 0x3000, 1).has_value());
}

TEST_CASE("bus accepts adjacent ranges on both sides and the top of the address space") {
    Bus bus;
    auto dev = std::make_shared<RecordingDevice>();
    REQUIRE(bus.insert(dev, 0x1000, 0x100).has_value());

    CHECK(bus.insert(dev, 0x1100, 0x100).has_value());
    CHECK(bus.insert(dev, 0xf00, 0x100).has_value());
    CHECK(bus.insert(dev, UINT64_MAX, 1).has_value());
}

TEST_CASE("bus dispatches with the offset from the base of the range that was hit") {
    Bus bus;
    auto a = std::make_shared<RecordingDevice>();
    auto b = std::make_shared<RecordingDevice>();
    REQUIRE(bus.insert(a, 0x3f8, 8).has_value());
    REQUIRE(bus.insert(b, 0xd0000000, 0x200).has_value());
    std::array<uint8_t, 4> buf{};
    const std::array<uint8_t, 2> value{0x5a, 0};

    CHECK(bus.read(0x3fd, std::span(buf).first(1)));
    CHECK(bus.read(0xd0000100, buf));
    CHECK(bus.write(0xd00001fe, value));

    CHECK(a->reads == std::vector<RecordingDevice::Access>{{5, 1}});
    CHECK(b->reads == std::vector<RecordingDevice::Access>{{0x100, 4}});
    CHECK(b->writes == std::vector<RecordingDevice::Access>{{0x1fe, 2}});
    CHECK(b->last_value == 0x5a);
    CHECK(buf[0] == 0x00);  // low byte of offset 0x100
}

TEST_CASE("bus refuses accesses that hit no device, straddle a range end or are empty") {
    Bus bus;
    auto dev = std::make_shared<RecordingDevice>();
    REQUIRE(bus.insert(dev, 0x1000, 0x10).has_value());
    REQUIRE(bus.insert(dev, 0x1010, 0x10).has_value());
    std::array<uint8_t, 4> buf{0xee, 0xee, 0xee, 0xee};

    CHECK_FALSE(bus.read(0xfff, std::span(buf).first(1)));
    CHECK_FALSE(bus.read(0x100e, buf));  // two bytes in each of two adjacent ranges
    CHECK_FALSE(bus.write(0x101e, buf));
    CHECK_FALSE(bus.read(0x1020, std::span(buf).first(1)));
    CHECK_FALSE(bus.read(0x1000, std::span(buf).first(0)));
    CHECK_FALSE(bus.read(UINT64_MAX - 1, buf));

    CHECK(dev->reads.empty());
    CHECK(dev->writes.empty());
    CHECK(buf[0] == 0xee);
}

TEST_CASE("bus lookup finds the right device among many") {
    Bus bus;
    std::vector<std::shared_ptr<RecordingDevice>> devs;
    for (uint64_t i = 0; i < 64; ++i) {
        devs.push_back(std::make_shared<RecordingDevice>());
        REQUIRE(bus.insert(devs.back(), 0x10000 - i * 0x100, 0x80).has_value());  // inserted in reverse
    }
    std::array<uint8_t, 1> buf{};

    CHECK(bus.read(0x10000 - 17 * 0x100 + 0x7f, buf));
    CHECK_FALSE(bus.read(0x10000 - 17 * 0x100 + 0x80, buf));  // the gap after it

    CHECK(devs[17]->reads == std::vector<RecordingDevice::Access>{{0x7f, 1}});
    CHECK(devs[16]->reads.empty());
    CHECK(devs[18]->reads.empty());
}

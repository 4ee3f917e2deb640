#include <doctest/doctest.h>

#include <vector>

#include "vhost/config_space.h"
#include "vhost/protocol.h"

using namespace kite::vhost;

TEST_CASE("config space bytes beyond its end read as zeroes") {
    ConfigSpace space;
    space.replace({1, 2});
    std::vector<uint8_t> tail(4, 0xff), far(2, 0xff);

    space.read(1, tail);
    space.read(1000, far);

    CHECK(tail == std::vector<uint8_t>{2, 0, 0, 0});
    CHECK(far == std::vector<uint8_t>{0, 0});
}

TEST_CASE("a config space the back-end does not serve takes no driver writes") {
    ConfigSpace space;
    space.replace({1, 2});
    const std::vector<uint8_t> data{9};

    bool stored = space.write(0, data);

    CHECK_FALSE(stored);
    CHECK(space.bytes() == std::vector<uint8_t>{1, 2});
}

TEST_CASE("a served config space grows to take a write and refuses one beyond the largest config space") {
    ConfigSpace space;
    space.replace({1, 2});
    space.set_served(true);
    const std::vector<uint8_t> data{9};

    bool inside = space.write(3, data);
    bool beyond = space.write(kMaxConfigSize, data);

    CHECK(inside);
    CHECK_FALSE(beyond);
    CHECK(space.bytes() == std::vector<uint8_t>{1, 2, 0, 9});
}

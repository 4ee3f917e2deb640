#include <doctest/doctest.h>

#include "vmm/snapshot/vm_snapshot.h"

using namespace kite;

TEST_CASE("snapshots are allowed with built-in virtio devices") {
    VmConfig config;
    config.devices = {BlockConfig{}, RngConfig{}, ConsoleConfig{}, NetConfig{}};

    CHECK(snapshot_refusal(config).empty());
}

TEST_CASE("snapshots are refused with a vhost-user device, naming it") {
    VmConfig config;
    config.devices = {RngConfig{}, VhostUserFsConfig{}};

    std::string why = snapshot_refusal(config);

    CHECK(why.find("vhost-user") != std::string::npos);
    CHECK(why.find(device_kind_name(config.devices[1])) != std::string::npos);
}

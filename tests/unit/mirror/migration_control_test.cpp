#include <doctest/doctest.h>

#include <cstring>

#include "memory/heap_memory.h"
#include "vmm/mirror/migration_control.h"

using namespace kite;

namespace {

constexpr uint64_t kDescGpa = 0x2000;

MigrationDescriptor one_window(uint64_t main_gpa, uint64_t length, uint64_t mirror_gpa) {
    MigrationDescriptor d{};
    d.magic = kMigrationDescriptorMagic;
    d.count = 1;
    d.entries[0] = {main_gpa, length, mirror_gpa};
    return d;
}

}  // namespace

TEST_CASE("a write of 1 with a valid descriptor records the window and allows migration") {
    HeapMemory mem(1 << 20);
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), one_window(0x10000, 0x4000, 0x100000000)));
    MigrationControl ctl;
    auto ok = ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa));
    REQUIRE(ok.has_value());
    CHECK(ctl.migration_allowed());
    CHECK(ctl.msr_value() == 1);
    REQUIRE(ctl.windows().size() == 1);
    CHECK(ctl.windows()[0].main_gpa == GuestAddress(0x10000));
    CHECK(ctl.windows()[0].length == 0x4000);
    CHECK(ctl.windows()[0].mirror_gpa == GuestAddress(0x100000000));
}

TEST_CASE("a write of 1 without a descriptor only allows migration") {
    HeapMemory mem(1 << 20);
    MigrationControl ctl;
    REQUIRE(ctl.handle_migration_control_write(mem, 1, GuestAddress(0)).has_value());
    CHECK(ctl.migration_allowed());
    CHECK(ctl.windows().empty());
}

TEST_CASE("reserved bits in the MSR value are refused") {
    HeapMemory mem(1 << 20);
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 3, GuestAddress(0)).has_value());
    CHECK_FALSE(ctl.migration_allowed());
}

TEST_CASE("a descriptor outside guest RAM is refused") {
    HeapMemory mem(1 << 20);
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress((1 << 20) - 8)).has_value());
}

TEST_CASE("a descriptor with a bad magic is refused") {
    HeapMemory mem(1 << 20);
    auto d = one_window(0x10000, 0x4000, 0x100000000);
    d.magic = 0;
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), d));
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
}

TEST_CASE("a descriptor count above the maximum is refused") {
    HeapMemory mem(1 << 20);
    auto d = one_window(0x10000, 0x4000, 0x100000000);
    d.count = 1000;
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), d));
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
}

TEST_CASE("a window whose main range leaves guest RAM is refused and keeps the old windows") {
    HeapMemory mem(1 << 20);
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), one_window(0x10000, 0x4000, 0x100000000)));
    MigrationControl ctl;
    REQUIRE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), one_window(0xff000, 0x4000, 0x100000000)));
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
    REQUIRE(ctl.windows().size() == 1);
    CHECK(ctl.windows()[0].main_gpa == GuestAddress(0x10000));
}

TEST_CASE("a window with a mirror GPA below 4 GiB is refused") {
    HeapMemory mem(1 << 20);
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), one_window(0x10000, 0x4000, 0x80000000)));
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
}

TEST_CASE("a window whose mirror range wraps around 2^64 is refused") {
    HeapMemory mem(1 << 20);
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), one_window(0x10000, 0x4000, 0xfffffffffffff000ull)));
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
}

TEST_CASE("overlapping mirror ranges are refused") {
    HeapMemory mem(1 << 20);
    auto d = one_window(0x10000, 0x4000, 0x100000000);
    d.count = 2;
    d.entries[1] = {0x20000, 0x2000, 0x100002000};
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), d));
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
}

TEST_CASE("unaligned windows are refused") {
    HeapMemory mem(1 << 20);
    REQUIRE(mem.write_obj(GuestAddress(kDescGpa), one_window(0x10010, 0x4000, 0x100000000)));
    MigrationControl ctl;
    CHECK_FALSE(ctl.handle_migration_control_write(mem, 1, GuestAddress(kDescGpa)).has_value());
}

TEST_CASE("the MSR filter denies only MSR_KVM_MIGRATION_CONTROL, for reads and writes") {
    uint8_t bitmap = 0xff;
    kvm_msr_filter f = migration_control_msr_filter(bitmap);
    CHECK(f.flags == KVM_MSR_FILTER_DEFAULT_ALLOW);
    CHECK(f.ranges[0].base == kMsrKvmMigrationControl);
    CHECK(f.ranges[0].nmsrs == 1);
    CHECK(f.ranges[0].flags == (KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE));
    CHECK(f.ranges[0].bitmap == &bitmap);
    CHECK(bitmap == 0);
    CHECK(f.ranges[1].nmsrs == 0);
}

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "memory/heap_memory.h"
#include "tests/unit/boot/test_images.h"
#include "vmm/arch/x86_64/boot/bzimage.h"

using namespace kite;
using namespace kite::boot;
using namespace kite::boot::test;

namespace {

std::vector<AddressRange> ram_of(uint64_t size) { return {{GuestAddress(0), size}}; }

std::string parse_error(const std::vector<std::byte>& image) {
    auto parsed = parse_bzimage(image);
    REQUIRE_FALSE(parsed.has_value());
    return parsed.error().message;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("valid bzImage parses into its protected-mode part and memory need") {
    auto image = make_bzimage({.setup_sects = 4, .payload_size = 0x3000, .init_size = 4 * MiB});

    auto parsed = parse_bzimage(image);

    REQUIRE(parsed.has_value());
    CHECK(parsed->kernel.size() == 0x3000);
    CHECK(parsed->kernel.data() == image.data() + 5 * 512);
    CHECK(parsed->memory_needed == 4 * MiB);
    CHECK(parsed->setup_header_bytes.size() == 0x26c - 0x1f1);
    CHECK(uint16_t{parsed->header.version} == 0x020f);
}

TEST_CASE("setup_sects 0 means 4 sectors of setup") {
    auto image = make_bzimage({.setup_sects = 0});

    auto parsed = parse_bzimage(image);

    REQUIRE(parsed.has_value());
    CHECK(parsed->kernel.data() == image.data() + 5 * 512);
}

TEST_CASE("bzImage shorter than the setup header is an error") {
    auto image = make_bzimage({});
    image.resize(0x200);

    CHECK(contains(parse_error(image), "truncated"));
}

TEST_CASE("bzImage with bad HdrS magic is an error") {
    auto image = make_bzimage({});
    put<uint32_t>(image, 0x202, 0x12345678);

    CHECK(contains(parse_error(image), "magic"));
}

TEST_CASE("bzImage with a bad boot_flag is an error") {
    auto image = make_bzimage({});
    put<uint16_t>(image, 0x1fe, 0);

    CHECK(contains(parse_error(image), "boot_flag"));
}

TEST_CASE("bzImage with boot protocol 2.05 is too old") {
    auto image = make_bzimage({.version = 0x0205});

    CHECK(contains(parse_error(image), "2.05 is too old"));
}

TEST_CASE("bzImage without XLF_KERNEL_64 is an error") {
    auto image = make_bzimage({.xloadflags = 0});

    CHECK(contains(parse_error(image), "XLF_KERNEL_64"));
}

TEST_CASE("bzImage without LOADED_HIGH is an error") {
    auto image = make_bzimage({.loadflags = 0});

    CHECK(contains(parse_error(image), "LOADED_HIGH"));
}

TEST_CASE("bzImage whose setup_sects reach past the file is an error") {
    auto image = make_bzimage({.payload_size = 0x1000});
    put<uint8_t>(image, 0x1f1, 255);

    CHECK(contains(parse_error(image), "setup_sects 255"));
}

TEST_CASE("bzImage cut short of its syssize is an error") {
    auto image = make_bzimage({.payload_size = 0x3000});
    image.resize(image.size() - 0x100);

    CHECK(contains(parse_error(image), "syssize"));
}

TEST_CASE("bzImage whose header length byte ends it too early is an error") {
    auto image = make_bzimage({});
    put<uint8_t>(image, 0x201, 0x10);

    CHECK(contains(parse_error(image), "setup header ends"));
}

TEST_CASE("relocatable bzImage with a kernel_alignment that is not a power of two is an error") {
    auto image = make_bzimage({.kernel_alignment = 0x300000});

    CHECK(contains(parse_error(image), "kernel_alignment"));
}

TEST_CASE("relocatable kernel goes to pref_address when it fits") {
    auto image = make_bzimage({.init_size = 4 * MiB, .pref_address = 16 * MiB});
    auto parsed = parse_bzimage(image);
    REQUIRE(parsed.has_value());

    auto load = choose_bzimage_load_address(*parsed, ram_of(64 * MiB));

    REQUIRE(load.has_value());
    CHECK(load->value() == 16 * MiB);
}

TEST_CASE("relocatable kernel falls back to the first aligned address above 1 MiB when pref_address does not fit") {
    auto image = make_bzimage({.init_size = 4 * MiB, .pref_address = 16 * MiB, .kernel_alignment = 2 * MiB});
    auto parsed = parse_bzimage(image);
    REQUIRE(parsed.has_value());

    auto load = choose_bzimage_load_address(*parsed, ram_of(12 * MiB));

    REQUIRE(load.has_value());
    CHECK(load->value() == 2 * MiB);
}

TEST_CASE("non-relocatable kernel is loaded at 1 MiB") {
    auto image = make_bzimage({.relocatable = 0});
    auto parsed = parse_bzimage(image);
    REQUIRE(parsed.has_value());

    auto load = choose_bzimage_load_address(*parsed, ram_of(64 * MiB));

    REQUIRE(load.has_value());
    CHECK(load->value() == 1 * MiB);
}

TEST_CASE("kernel whose init_size does not fit in RAM is an error") {
    auto image = make_bzimage({.init_size = 128 * MiB});
    auto parsed = parse_bzimage(image);
    REQUIRE(parsed.has_value());

    auto load = choose_bzimage_load_address(*parsed, ram_of(64 * MiB));

    REQUIRE_FALSE(load.has_value());
    CHECK(contains(load.error().message, "no room"));
}

TEST_CASE("load_bzimage copies the protected-mode part to the load address") {
    auto image = make_bzimage({.payload_size = 0x2000});
    auto parsed = parse_bzimage(image);
    REQUIRE(parsed.has_value());
    HeapMemory mem(32 * MiB);

    auto ok = load_bzimage(mem, *parsed, GuestAddress(16 * MiB));

    REQUIRE(ok.has_value());
    CHECK(mem.read_obj<std::byte>(GuestAddress(16 * MiB)) == pattern(0));
    CHECK(mem.read_obj<std::byte>(GuestAddress(16 * MiB + 0x1fff)) == pattern(0x1fff));
}

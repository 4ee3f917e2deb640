#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "vmm/arch/x86_64/acpi/aml.h"

using namespace kite;
using aml::Bytes;

TEST_CASE("PkgLength is one byte up to a total of 63 and two bytes from 64") {
    CHECK(aml::pkg_length(0).value() == Bytes{0x01});
    CHECK(aml::pkg_length(62).value() == Bytes{0x3f});
    // 63 content bytes + 2 length bytes = 65 = 0x041
    CHECK(aml::pkg_length(63).value() == Bytes{0x41, 0x04});
}

TEST_CASE("PkgLength is two bytes up to a total of 4095 and three bytes from 4096") {
    // 4093 + 2 = 4095 = 0xfff
    CHECK(aml::pkg_length(4093).value() == Bytes{0x4f, 0xff});
    // 4094 + 3 = 4097 = 0x1001
    CHECK(aml::pkg_length(4094).value() == Bytes{0x81, 0x00, 0x01});
}

TEST_CASE("PkgLength is three bytes up to 2^20 - 1 total, four bytes up to 2^28 - 1, then fails") {
    // 0xffffc + 3 = 0xfffff
    CHECK(aml::pkg_length(0xffffc).value() == Bytes{0x8f, 0xff, 0xff});
    // 0xffffd + 4 = 0x100001
    CHECK(aml::pkg_length(0xffffd).value() == Bytes{0xc1, 0x00, 0x00, 0x01});
    // 0xffffffb + 4 = 0xfffffff
    CHECK(aml::pkg_length(0xffffffb).value() == Bytes{0xcf, 0xff, 0xff, 0xff});
    CHECK_FALSE(aml::pkg_length(0xffffffc).has_value());
}

TEST_CASE("a package whose total length is 63 has a one-byte PkgLength") {
    std::vector<Bytes> elements(61, aml::integer(0));  // NumElements + 61 bytes = 62 content bytes

    Bytes pkg = aml::package(elements).value();

    CHECK(pkg.size() == 1 + 1 + 62);
    CHECK(pkg[1] == 63);
    CHECK(pkg[2] == 61);
}

TEST_CASE("a package one byte longer gets a two-byte PkgLength covering both bytes") {
    std::vector<Bytes> elements(62, aml::integer(0));  // 63 content bytes

    Bytes pkg = aml::package(elements).value();

    CHECK(pkg.size() == 1 + 2 + 63);
    CHECK(pkg[1] == 0x41);  // 65 = 0x41: low nibble 1, one following byte
    CHECK(pkg[2] == 0x04);
    CHECK(pkg[3] == 62);
}

TEST_CASE("a package of more than 255 elements is refused") {
    std::vector<Bytes> elements(256, aml::integer(0));

    CHECK_FALSE(aml::package(elements).has_value());
}

TEST_CASE("name strings: single, dual, multi segment, root, parent and padding") {
    CHECK(aml::name_string("_S5").value() == Bytes{'_', 'S', '5', '_'});
    CHECK(aml::name_string("\\_SB_.COM1").value() == Bytes{'\\', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'});
    CHECK(aml::name_string("A.B.C").value() == Bytes{0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'});
    CHECK(aml::name_string("^^X").value() == Bytes{'^', '^', 'X', '_', '_', '_'});
    CHECK(aml::name_string("\\").value() == Bytes{'\\', 0x00});
}

TEST_CASE("bad name strings are refused") {
    CHECK_FALSE(aml::name_string("").has_value());
    CHECK_FALSE(aml::name_string("TOOLONG").has_value());
    CHECK_FALSE(aml::name_string("1ABC").has_value());
    CHECK_FALSE(aml::name_string("ab").has_value());
    CHECK_FALSE(aml::name_string("A..B").has_value());
    CHECK_FALSE(aml::name_string("A.").has_value());
}

TEST_CASE("integers use the shortest encoding") {
    CHECK(aml::integer(0) == Bytes{0x00});
    CHECK(aml::integer(1) == Bytes{0x01});
    CHECK(aml::integer(0xff) == Bytes{0x0a, 0xff});
    CHECK(aml::integer(0x100) == Bytes{0x0b, 0x00, 0x01});
    CHECK(aml::integer(0x10000) == Bytes{0x0c, 0x00, 0x00, 0x01, 0x00});
    CHECK(aml::integer(0x1'0000'0000) == Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0});
}

TEST_CASE("EISA ID PNP0501 compresses to 0x0105d041") {
    CHECK(aml::eisa_id("PNP0501").value() == Bytes{0x0c, 0x41, 0xd0, 0x05, 0x01});
    CHECK_FALSE(aml::eisa_id("PNP050").has_value());
    CHECK_FALSE(aml::eisa_id("pnp0501").has_value());
    CHECK_FALSE(aml::eisa_id("PNP05G1").has_value());
}

TEST_CASE("strings are NUL-terminated and ASCII only") {
    CHECK(aml::string("LNRO0005").value() == Bytes{0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0});
    CHECK_FALSE(aml::string(std::string_view("a\0b", 3)).has_value());
    CHECK_FALSE(aml::string("\xc3\xa9").has_value());
}

TEST_CASE("method encodes flags and a return") {
    Bytes m = aml::method("_STA", 0, false, {aml::return_value(aml::integer(0x0f))}).value();

    CHECK(m == Bytes{0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f});
    CHECK_FALSE(aml::method("_STA", 8, false, {}).has_value());
}

TEST_CASE("device uses the extended opcode") {
    Bytes d = aml::device("COM1", {aml::name("_UID", aml::integer(0)).value()}).value();

    CHECK(d == Bytes{0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x00});
}

TEST_CASE("resource descriptors encode as in the ACPI spec") {
    CHECK(aml::io(0x3f8, 8) == Bytes{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08});
    CHECK(aml::irq_no_flags(4).value() == Bytes{0x22, 0x10, 0x00});
    CHECK(aml::memory32_fixed(true, 0xd0000000, 0x1000).value() ==
          Bytes{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00});
    CHECK(aml::interrupt({.edge = true}, 5) == Bytes{0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00});
    CHECK(aml::interrupt({.edge = false, .active_low = true, .shared = true}, 40) ==
          Bytes{0x89, 0x06, 0x00, 0x0d, 0x01, 40, 0x00, 0x00, 0x00});
}

TEST_CASE("out-of-range descriptors are refused") {
    CHECK_FALSE(aml::irq_no_flags(16).has_value());
    CHECK_FALSE(aml::memory32_fixed(true, 0x1'0000'0000, 0x1000).has_value());
    CHECK_FALSE(aml::memory32_fixed(true, 0xffff'f000, 0x2000).has_value());
    CHECK(aml::memory32_fixed(true, 0xffff'f000, 0x1000).has_value());
}

TEST_CASE("resource template wraps descriptors and an end tag in a buffer") {
    Bytes rt = aml::resource_template({aml::irq_no_flags(4).value()}).value();

    CHECK(rt == Bytes{0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00});
}

// The expected bytes of the address space descriptors below were derived by hand from ACPI 6.5,
// section 6.4.3.5 (tables 6.44-6.48), not copied from the encoder: tag byte, 16-bit data length (13
// for Word, 23 for DWord), resource type (0 memory, 1 I/O, 2 bus number), general flags 0x0c (bit 3
// _MAF and bit 2 _MIF set, bit 1 clear = PosDecode, bit 0 clear = ResourceProducer), type-specific
// flags, then granularity, minimum, maximum, translation offset and length, little-endian.
TEST_CASE("WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)") {
    CHECK(aml::word_bus_number(0, 0) == Bytes{0x88, 0x0d, 0x00,  // Word Address Space, 13 data bytes
                                              0x02,              // bus number range
                                              0x0c,              // MaxFixed, MinFixed, PosDecode, producer
                                              0x00,              // no type-specific flags
                                              0x00, 0x00,        // granularity
                                              0x00, 0x00,        // minimum
                                              0x00, 0x00,        // maximum
                                              0x00, 0x00,        // translation offset
                                              0x01, 0x00});      // length
    CHECK(aml::word_bus_number(0, 0xff) ==
          Bytes{0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01});
}

TEST_CASE("WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, ...)") {
    CHECK(aml::word_io(0x0000, 0x0cf7) == Bytes{0x88, 0x0d, 0x00,  // Word Address Space, 13 data bytes
                                                0x01,              // I/O range
                                                0x0c,              // MaxFixed, MinFixed, PosDecode, producer
                                                0x03,              // _RNG = 3: EntireRange; TypeStatic
                                                0x00, 0x00,        // granularity
                                                0x00, 0x00,        // minimum
                                                0xf7, 0x0c,        // maximum
                                                0x00, 0x00,        // translation offset
                                                0xf8, 0x0c});      // length 0xcf8
    CHECK(aml::word_io(0x0d00, 0xffff) ==
          Bytes{0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3});
}

TEST_CASE("DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, ...)") {
    CHECK(aml::dword_memory(0xc000'0000, 0x2000'0000).value() ==
          Bytes{0x87, 0x17, 0x00,              // DWord Address Space, 23 data bytes
                0x00,                          // memory range
                0x0c,                          // MaxFixed, MinFixed, PosDecode, producer
                0x01,                          // _RW = 1 ReadWrite, _MEM = 0 NonCacheable, AddressRangeMemory
                0x00, 0x00, 0x00, 0x00,        // granularity
                0x00, 0x00, 0x00, 0xc0,        // minimum
                0xff, 0xff, 0xff, 0xdf,        // maximum
                0x00, 0x00, 0x00, 0x00,        // translation offset
                0x00, 0x00, 0x00, 0x20});      // length
    // A window ending exactly at 4 GiB.
    CHECK(aml::dword_memory(0xffff'f000, 0x1000).value() ==
          Bytes{0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00});
}

TEST_CASE("DWordMemory refuses empty ranges and ranges that cross or lie above 4 GiB") {
    CHECK_FALSE(aml::dword_memory(0xc000'0000, 0).has_value());
    CHECK_FALSE(aml::dword_memory(0xffff'f000, 0x2000).has_value());
    CHECK_FALSE(aml::dword_memory(0x1'0000'0000, 0x1000).has_value());
    CHECK_FALSE(aml::dword_memory(0, 0x1'0000'0000).has_value());  // length does not fit 32 bits
    CHECK_FALSE(aml::dword_memory(0xffff'ffff'ffff'f000, 0x2000).has_value());  // wraps
    CHECK(aml::dword_memory(0, 0xffff'ffff).has_value());
}

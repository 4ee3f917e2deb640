#include <doctest/doctest.h>

#include "base/size.h"

using namespace kite;

TEST_CASE("plain numbers are bytes and unit letters are powers of 1024") {
    CHECK(parse_size("4096").value() == 4096);
    CHECK(parse_size("64K").value() == 64ull << 10);
    CHECK(parse_size("512M").value() == 512ull << 20);
    CHECK(parse_size("1G").value() == 1ull << 30);
    CHECK(parse_size("2T").value() == 2ull << 40);
    CHECK(parse_size("1g").value() == 1ull << 30);
    CHECK(parse_size("4KiB").value() == 4096);
    CHECK(parse_size("0").value() == 0);
}

TEST_CASE("the largest representable size parses and one more overflows") {
    CHECK(parse_size("18446744073709551615").value() == UINT64_MAX);
    CHECK_FALSE(parse_size("18446744073709551616").has_value());
    CHECK(parse_size("16777215T").value() == 16777215ull << 40);
    CHECK_FALSE(parse_size("16777216T").has_value());
}

TEST_CASE("negative, fractional, decimal-unit and garbage sizes are rejected with the reason") {
    CHECK(parse_size("-1M").error().message == "'-1M' is not a size: must not be negative");
    CHECK(parse_size("1.5G").error().message ==
          "'1.5G' is not a size: fractions are not supported (write 1536M, not 1.5G)");
    CHECK(parse_size("1MB").error().message.starts_with("'1MB' is not a size: unknown unit"));
    CHECK_FALSE(parse_size("").has_value());
    CHECK_FALSE(parse_size("M").has_value());
    CHECK_FALSE(parse_size("1 M").has_value());
    CHECK_FALSE(parse_size("0x1000").has_value());
    CHECK_FALSE(parse_size("1Mi").has_value());
    CHECK_FALSE(parse_size("+1").has_value());
}

TEST_CASE("format_size picks the largest exact unit") {
    CHECK(format_size(1ull << 30) == "1 GiB");
    CHECK(format_size(3072) == "3 KiB");
    CHECK(format_size(1536) == "1536 bytes");
    CHECK(format_size(0) == "0 bytes");
    CHECK(format_size(1536ull << 20) == "1536 MiB");
}

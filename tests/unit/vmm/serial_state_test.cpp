#include <doctest/doctest.h>

#include <vector>

#include "devices/legacy/serial.h"

using namespace kite;

namespace {

class NullIrq final : public IrqLine {
public:
    void trigger() override { ++count; }
    int count = 0;
};

void out(Serial& s, uint64_t reg, uint8_t v) { s.write(reg, std::span<const uint8_t>(&v, 1)); }
uint8_t in(Serial& s, uint64_t reg) {
    uint8_t v = 0;
    s.read(reg, std::span<uint8_t>(&v, 1));
    return v;
}

}  // namespace

TEST_CASE("serial state round trip keeps registers and the receive FIFO in order") {
    NullIrq irq;
    Serial a(irq, [](std::span<const uint8_t>) {});
    out(a, 3, 0x80);  // DLAB
    out(a, 0, 0x01);  // DLL: 115200 baud
    out(a, 3, 0x03);  // 8N1
    out(a, 1, 0x01);  // IER: data ready
    out(a, 7, 0x5a);  // scratch
    const uint8_t input[] = {'a', 'b', 'c'};
    a.enqueue_input(input);
    (void)in(a, 0);  // the guest read 'a'

    Serial b(irq, [](std::span<const uint8_t>) {});
    REQUIRE(b.restore_state(a.save_state()).has_value());

    CHECK(in(b, 7) == 0x5a);
    CHECK(in(b, 1) == 0x01);
    CHECK(in(b, 3) == 0x03);
    CHECK(in(b, 0) == 'b');
    CHECK(in(b, 0) == 'c');
    CHECK((in(b, 5) & 0x01) == 0);  // FIFO empty now
    CHECK(b.save_state() != a.save_state());  // b consumed its FIFO, a did not
}

TEST_CASE("serial state refuses a short, long, wrong-version or bad-count blob and keeps its state") {
    NullIrq irq;
    Serial s(irq, [](std::span<const uint8_t>) {});
    out(s, 7, 0x42);
    auto good = s.save_state();
    std::vector<std::vector<uint8_t>> bad{{}, {1, 2, 3}};
    auto wrong_version = good;
    wrong_version[0] = 9;
    bad.push_back(wrong_version);
    auto long_blob = good;
    long_blob.push_back(0);
    bad.push_back(long_blob);
    auto big_count = good;
    big_count[10] = 200;
    big_count.resize(11 + 200);
    bad.push_back(big_count);
    auto bad_flag = good;
    bad_flag[8] = 7;
    bad.push_back(bad_flag);
    for (const auto& blob : bad) CHECK_FALSE(s.restore_state(blob).has_value());
    CHECK(in(s, 7) == 0x42);
    CHECK(s.save_state() == good);
}

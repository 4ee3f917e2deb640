#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <thread>
#include <cstdint>
#include <vector>

#include "devices/legacy/serial.h"
#include "tests/unit/devices/counting_irq.h"

using namespace kite;

namespace {

constexpr uint64_t kData = 0, kIer = 1, kIir = 2, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;

struct SerialFixture {
    CountingIrq irq;
    std::vector<uint8_t> output;
    Serial serial{irq, [this](std::span<const uint8_t> bytes) { output.insert(output.end(), bytes.begin(), bytes.end()); }};

    uint8_t in(uint64_t offset) {
        std::array<uint8_t, 1> b{};
        serial.read(offset, b);
        return b[0];
    }
    void out(uint64_t offset, uint8_t value) {
        std::array<uint8_t, 1> b{value};
        serial.write(offset, b);
    }
    void input(std::vector<uint8_t> bytes) { serial.enqueue_input(bytes); }
};

}  // namespace

TEST_CASE_FIXTURE(SerialFixture, "bytes written to THR reach the output sink in order") {
    out(kData, 'o');
    out(kData, 'k');
    out(kData, '\n');

    CHECK(output == std::vector<uint8_t>{'o', 'k', '\n'});
    CHECK(in(kLsr) == 0x60);  // THRE | TEMT, no data
}

TEST_CASE_FIXTURE(SerialFixture, "with DLAB set, offsets 0 and 1 are the divisor latch and nothing is sent") {
    out(kLcr, 0x83);
    out(kData, 0x01);
    out(kIer, 0x02);
    uint8_t dll = in(kData);
    uint8_t dlm = in(kIer);
    out(kLcr, 0x03);

    CHECK(dll == 0x01);
    CHECK(dlm == 0x02);
    CHECK(in(kIer) == 0x00);
    CHECK(output.empty());
    CHECK(in(kLcr) == 0x03);
}

TEST_CASE_FIXTURE(SerialFixture, "IIR reports FIFO enabled only after FCR enables it") {
    uint8_t before = in(kIir);
    out(kFcr, 0x01);
    uint8_t after = in(kIir);

    CHECK(before == 0x01);
    CHECK(after == 0xc1);
}

TEST_CASE_FIXTURE(SerialFixture, "IER keeps only its four defined bits") {
    out(kIer, 0xff);

    CHECK(in(kIer) == 0x0f);
}

TEST_CASE_FIXTURE(SerialFixture, "enabling ETBEI raises a THRE interrupt that an IIR read clears") {
    out(kIer, 0x02);
    int raised = irq.count;
    uint8_t first = in(kIir);
    uint8_t second = in(kIir);

    CHECK(raised == 1);
    CHECK(first == 0x02);
    CHECK(second == 0x01);
}

TEST_CASE_FIXTURE(SerialFixture, "THRE interrupt is re-asserted when ETBEI is disabled and enabled again") {
    out(kIer, 0x02);
    (void)in(kIir);
    out(kIer, 0x00);
    out(kIer, 0x02);

    CHECK(in(kIir) == 0x02);
    CHECK(irq.count == 2);
}

TEST_CASE_FIXTURE(SerialFixture, "writing THR with ETBEI set raises THRE again after the IIR acknowledged it") {
    out(kIer, 0x02);
    (void)in(kIir);
    out(kData, 'x');

    CHECK(irq.count == 2);
    CHECK(in(kIir) == 0x02);
}

TEST_CASE_FIXTURE(SerialFixture, "input sets data ready, raises the interrupt once and reads back in order") {
    out(kIer, 0x01);
    input({'a', 'b'});
    uint8_t lsr = in(kLsr);
    uint8_t iir = in(kIir);
    uint8_t a = in(kData);
    uint8_t b = in(kData);

    CHECK(irq.count == 1);
    CHECK(lsr == 0x61);
    CHECK(iir == 0x04);
    CHECK(a == 'a');
    CHECK(b == 'b');
    CHECK(in(kLsr) == 0x60);
    CHECK(in(kIir) == 0x01);
}

TEST_CASE_FIXTURE(SerialFixture, "input without ERBFI raises no interrupt, enabling ERBFI then does") {
    input({'a'});
    int before = irq.count;
    out(kIer, 0x01);

    CHECK(before == 0);
    CHECK(irq.count == 1);
}

TEST_CASE_FIXTURE(SerialFixture, "received data outranks THRE in IIR, and THRE shows once data is read") {
    out(kIer, 0x03);
    input({'z'});
    uint8_t first = in(kIir);
    (void)in(kData);
    uint8_t second = in(kIir);

    CHECK(first == 0x04);
    CHECK(second == 0x02);
}

TEST_CASE_FIXTURE(SerialFixture, "input beyond the FIFO capacity is refused and counted") {
    std::vector<uint8_t> bytes(Serial::kInputCapacity + 5, 'q');

    size_t accepted = serial.enqueue_input(bytes);

    CHECK(accepted == Serial::kInputCapacity);
    CHECK(serial.dropped_input() == 5);
    CHECK(serial.input_space() == 0);
}

TEST_CASE_FIXTURE(SerialFixture, "after a refusal, emptying the FIFO calls the input-space notifier once") {
    int notified = 0;
    serial.set_input_space_notifier([&] { ++notified; });
    std::vector<uint8_t> bytes(Serial::kInputCapacity + 1, 'q');
    serial.enqueue_input(bytes);

    for (size_t i = 0; i + 1 < Serial::kInputCapacity; ++i) (void)in(kData);
    int before_empty = notified;
    (void)in(kData);
    (void)in(kData);  // reading an empty FIFO again does not notify again

    CHECK(before_empty == 0);
    CHECK(notified == 1);
    CHECK(serial.input_space() == Serial::kInputCapacity);
}

TEST_CASE_FIXTURE(SerialFixture, "without a refusal, emptying the FIFO does not notify") {
    int notified = 0;
    serial.set_input_space_notifier([&] { ++notified; });
    input({'a', 'b'});

    (void)in(kData);
    (void)in(kData);

    CHECK(notified == 0);
}

TEST_CASE_FIXTURE(SerialFixture, "input_space of 0 counts as a refusal and FCR clear-receiver then notifies") {
    int notified = 0;
    serial.set_input_space_notifier([&] { ++notified; });
    serial.enqueue_input(std::vector<uint8_t>(Serial::kInputCapacity, 'q'));
    size_t space = serial.input_space();

    out(kFcr, 0x03);

    CHECK(space == 0);
    CHECK(notified == 1);
}

TEST_CASE_FIXTURE(SerialFixture, "input refused in loopback mode is asked for again when loopback ends") {
    int notified = 0;
    serial.set_input_space_notifier([&] { ++notified; });
    out(kMcr, 0x10);
    size_t accepted = serial.enqueue_input(std::vector<uint8_t>{'a'});
    int in_loopback = notified;

    out(kMcr, 0x08);

    CHECK(accepted == 0);
    CHECK(in_loopback == 0);
    CHECK(notified == 1);
}

TEST_CASE_FIXTURE(SerialFixture, "FCR clear-receiver discards pending input") {
    input({'a', 'b'});
    out(kFcr, 0x03);

    CHECK(in(kLsr) == 0x60);
}

TEST_CASE_FIXTURE(SerialFixture, "loopback mode returns THR bytes as input and sends nothing out") {
    out(kMcr, 0x10);
    out(kData, 0x42);

    CHECK(output.empty());
    CHECK(in(kLsr) == 0x61);
    CHECK(in(kData) == 0x42);
}

TEST_CASE_FIXTURE(SerialFixture, "loopback wires RTS and OUT2 to CTS and DCD as Linux's probe expects") {
    out(kMcr, 0x10 | 0x0a);

    CHECK((in(kMsr) & 0xf0) == 0x90);
}

TEST_CASE_FIXTURE(SerialFixture, "loopback refuses host input") {
    out(kMcr, 0x10);
    size_t accepted = serial.enqueue_input(std::vector<uint8_t>{'a'});

    CHECK(accepted == 0);
    CHECK(serial.dropped_input() == 1);
    CHECK(in(kLsr) == 0x60);
}

TEST_CASE_FIXTURE(SerialFixture, "a modem line change in loopback raises a modem-status interrupt cleared by MSR") {
    out(kIer, 0x08);
    out(kMcr, 0x10 | 0x02);  // entering loopback drops DCD and DSR, RTS keeps CTS
    uint8_t iir = in(kIir);
    uint8_t msr = in(kMsr);

    CHECK(irq.count == 1);
    CHECK(iir == 0x00);
    CHECK(msr == (0x10 | 0x02 | 0x08));  // CTS, delta DSR, delta DCD
    CHECK(in(kIir) == 0x01);
}

TEST_CASE_FIXTURE(SerialFixture, "outside loopback the modem lines read as connected") {
    CHECK(in(kMsr) == 0xb0);
}

TEST_CASE_FIXTURE(SerialFixture, "scratch register keeps its value") {
    out(kScr, 0xa5);

    CHECK(in(kScr) == 0xa5);
}

TEST_CASE_FIXTURE(SerialFixture, "wide and out-of-range accesses read 0xff and change nothing") {
    std::array<uint8_t, 2> wide{};
    serial.read(kLsr, wide);
    serial.write(kData, std::array<uint8_t, 2>{'a', 'b'});
    out(8, 'c');

    CHECK(wide == std::array<uint8_t, 2>{0xff, 0xff});
    CHECK(in(8) == 0xff);
    CHECK(output.empty());
}

TEST_CASE("concurrent transmitters lose no byte and input races cleanly with the guest's reads") {
    CountingIrq irq;
    std::atomic<size_t> sent{0};
    Serial serial(irq, [&](std::span<const uint8_t> b) { sent += b.size(); });
    std::atomic<size_t> received{0};
    size_t accepted = 0;
    constexpr int kThreads = 3, kBytesPerThread = 2000, kInputRounds = 2000;

    std::vector<std::thread> vcpus;
    for (int t = 0; t < kThreads; ++t)
        vcpus.emplace_back([&] {
            for (int i = 0; i < kBytesPerThread; ++i) serial.write(0, std::array<uint8_t, 1>{'x'});
        });
    std::thread reader([&] {
        std::array<uint8_t, 1> b{};
        for (int i = 0; i < kInputRounds * 2; ++i) {
            serial.read(0, b);
            received += b[0] == 'y';  // an empty FIFO reads 0
        }
    });
    for (int i = 0; i < kInputRounds; ++i) accepted += serial.enqueue_input(std::array<uint8_t, 1>{'y'});
    for (auto& t : vcpus) t.join();
    reader.join();
    std::array<uint8_t, 1> drain{};
    size_t left = 0;
    for (size_t i = 0; i < Serial::kInputCapacity; ++i) {
        serial.read(0, drain);
        left += drain[0] == 'y';
    }

    CHECK(sent == kThreads * kBytesPerThread);
    CHECK(received + left == accepted);
}

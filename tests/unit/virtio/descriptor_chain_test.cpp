#include <doctest/doctest.h>

#include <array>
#include <cstring>

#include "devices/virtio/chain_io.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/spec.h"
#include "fake_queue.h"

using namespace kite;
using namespace kite::test;

namespace {
constexpr uint64_t kFeatures = virtio::kCommonFeatures;

DescriptorChain pop_one(HeapMemory& mem, FakeQueue& fq, uint64_t features = kFeatures) {
    auto q = *Queue::create(mem, fq.config(), 256, features);
    return *q.pop();
}
}  // namespace

TEST_CASE("a chain yields readable buffers then writable buffers") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.add_chain({{0x10000, 16}, {0x11000, 512}, {0x12000, 1, true}});
    auto chain = pop_one(mem, fq);

    auto buffers = chain.collect();

    REQUIRE(buffers);
    REQUIRE(buffers->readable.size() == 2);
    REQUIRE(buffers->writable.size() == 1);
    CHECK(buffers->readable[1].addr == GuestAddress(0x11000));
    CHECK(buffers->readable[1].len == 512);
    CHECK(buffers->writable[0].addr == GuestAddress(0x12000));
}

TEST_CASE("a descriptor loop ends the walk with an error") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.set_desc(0, 0x10000, 16, kDescNext, 1);
    fq.set_desc(1, 0x11000, 16, kDescNext, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    auto buffers = chain.collect();

    CHECK_FALSE(buffers);
    CHECK(chain.error());
}

TEST_CASE("a buffer outside guest RAM is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.add_chain({{(1 << 20) - 8, 16}});
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("a buffer whose end wraps around 2^64 is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.add_chain({{~0ull - 4, 16}});
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("a chain longer than the byte cap is refused") {
    HeapMemory mem(kMaxChainBytes + (1 << 20));
    FakeQueue fq(mem, 8);
    fq.add_chain({{0x100000, static_cast<uint32_t>(kMaxChainBytes)}, {0x100000, 1}});
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("a next index beyond the queue is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.set_desc(0, 0x10000, 16, kDescNext, 8);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("a readable buffer after a writable one is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.add_chain({{0x10000, 16, true}, {0x11000, 16}});
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("an indirect table is walked in place of the descriptor") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x10000, 16, kDescNext, 1);
    fq.write_desc(0x30010, 0x11000, 32, kDescWrite, 0);
    fq.set_desc(0, 0x30000, 32, kDescIndirect, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    auto buffers = chain.collect();

    REQUIRE(buffers);
    REQUIRE(buffers->readable.size() == 1);
    REQUIRE(buffers->writable.size() == 1);
    CHECK(buffers->writable[0].len == 32);
}

TEST_CASE("direct descriptors followed by an indirect table are walked in order") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x11000, 32, kDescWrite, 0);
    fq.set_desc(0, 0x10000, 16, kDescNext, 1);
    fq.set_desc(1, 0x30000, 16, kDescIndirect, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    auto buffers = chain.collect();

    REQUIRE(buffers);
    CHECK(buffers->readable.size() == 1);
    CHECK(buffers->writable.size() == 1);
}

TEST_CASE("an indirect descriptor inside an indirect table is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x30000, 16, kDescIndirect, 0);
    fq.set_desc(0, 0x30000, 16, kDescIndirect, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("an indirect table whose length is not a multiple of 16 is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x10000, 16, 0, 0);
    fq.set_desc(0, 0x30000, 24, kDescIndirect, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("a loop inside an indirect table is bounded by the table length") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x10000, 16, kDescNext, 1);
    fq.write_desc(0x30010, 0x10000, 16, kDescNext, 0);
    fq.set_desc(0, 0x30000, 32, kDescIndirect, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("a NEXT index beyond the indirect table is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x10000, 16, kDescNext, 2);
    fq.write_desc(0x30010, 0x10000, 16, 0, 0);
    fq.set_desc(0, 0x30000, 32, kDescIndirect, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("an indirect descriptor is refused when INDIRECT_DESC was not negotiated") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x10000, 16, 0, 0);
    fq.set_desc(0, 0x30000, 16, kDescIndirect, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq, virtio::kFeatureVersion1);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("an indirect descriptor with NEXT set is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.write_desc(0x30000, 0x10000, 16, 0, 0);
    fq.set_desc(0, 0x30000, 16, kDescIndirect | kDescNext, 1);
    fq.set_desc(1, 0x10000, 16, 0, 0);
    fq.publish(0);
    auto chain = pop_one(mem, fq);

    CHECK_FALSE(chain.collect());
}

TEST_CASE("a chain reader reads across buffer boundaries") {
    HeapMemory mem(1 << 20);
    const char text[] = "hello, virtio";
    mem.write(GuestAddress(0x10000), std::as_bytes(std::span(text, 5)));
    mem.write(GuestAddress(0x20000), std::as_bytes(std::span(text + 5, 9)));
    ChainReader reader(mem, {{GuestAddress(0x10000), 5}, {GuestAddress(0x20000), 9}});
    std::array<char, 14> out{};

    auto r = reader.read(std::as_writable_bytes(std::span(out)));

    CHECK(r);
    CHECK(std::string(out.data()) == "hello, virtio");
    CHECK(reader.remaining() == 0);
}

TEST_CASE("a chain reader refuses to read past the end") {
    HeapMemory mem(1 << 20);
    ChainReader reader(mem, {{GuestAddress(0x10000), 4}});

    auto value = reader.read_obj<uint64_t>();

    CHECK_FALSE(value);
    CHECK(reader.remaining() == 4);
}

TEST_CASE("a chain writer counts what it wrote") {
    HeapMemory mem(1 << 20);
    ChainWriter writer(mem, {{GuestAddress(0x10000), 2}, {GuestAddress(0x20000), 8}});

    auto r = writer.write_obj(uint32_t{0x11223344});

    CHECK(r);
    CHECK(writer.written() == 4);
    CHECK(*mem.read_obj<uint16_t>(GuestAddress(0x10000)) == 0x3344);
    CHECK(*mem.read_obj<uint16_t>(GuestAddress(0x20000)) == 0x1122);
}

TEST_CASE("take_last_byte returns the last byte of the last non-empty buffer") {
    std::vector<GuestBuffer> buffers{{GuestAddress(0x10000), 512}, {GuestAddress(0x20000), 0}};

    auto status = take_last_byte(buffers);

    CHECK(status == GuestAddress(0x10000 + 511));
    REQUIRE(buffers.size() == 1);
    CHECK(buffers[0].len == 511);
}

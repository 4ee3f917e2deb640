#include <doctest/doctest.h>

#include "devices/virtio/queue.h"
#include "devices/virtio/spec.h"
#include "../log_capture.h"
#include "fake_queue.h"

using namespace kite;
using kite::test::FakeQueue;

namespace {
constexpr uint64_t kFeatures = virtio::kCommonFeatures;
constexpr uint64_t kNoEventIdx = virtio::kFeatureVersion1 | virtio::kFeatureIndirectDesc;
}  // namespace

TEST_CASE("queue validation rejects a size that is not a power of two") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    auto config = fq.config();
    config.size = 6;

    CHECK_FALSE(Queue::validate(mem, config, 256));
}

TEST_CASE("queue validation rejects zero and sizes above the maximum") {
    HeapMemory mem(1 << 20);
    auto config = FakeQueue(mem, 512).config();
    auto zero = config;
    zero.size = 0;

    CHECK_FALSE(Queue::validate(mem, config, 256));
    CHECK_FALSE(Queue::validate(mem, zero, 256));
}

TEST_CASE("queue validation rejects misaligned rings and rings outside RAM") {
    HeapMemory mem(1 << 20);
    auto config = FakeQueue(mem, 8).config();
    auto misaligned = config;
    misaligned.desc = GuestAddress(config.desc.value() + 8);
    auto outside = config;
    outside.used = GuestAddress((1 << 20) - 16);

    CHECK(Queue::validate(mem, config, 256));
    CHECK_FALSE(Queue::validate(mem, misaligned, 256));
    CHECK_FALSE(Queue::validate(mem, outside, 256));
}

TEST_CASE("pop returns chains in avail order and nothing once drained") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    uint16_t first = fq.add_chain({{0x10000, 64}});
    uint16_t second = fq.add_chain({{0x20000, 64}});
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    auto a = q.pop();
    auto b = q.pop();
    auto c = q.pop();

    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->head() == first);
    CHECK(b->head() == second);
    CHECK_FALSE(c);
    CHECK(q.next_avail() == 2);
    CHECK_FALSE(q.is_broken());
}

TEST_CASE("an empty pop publishes avail_event at the next avail index") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.add_chain({{0x10000, 64}});
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    q.pop();
    q.pop();

    CHECK(fq.avail_event() == 1);
}

TEST_CASE("an avail index more than a queue size ahead breaks the queue") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.set_avail_idx(9);
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    auto chain = q.pop();

    CHECK_FALSE(chain);
    CHECK(q.is_broken());
}

// Issue 12 item 14: a guest that breaks its queue, resets the device and breaks it again gets a new
// Queue each time; the log must not grow with every round.
TEST_CASE("a guest breaking queue after queue logs a bounded number of lines") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.set_avail_idx(9);
    kite::test::LogCapture log;

    for (int i = 0; i < 200; ++i) {
        auto q = *Queue::create(mem, fq.config(), 256, kFeatures);
        q.pop();
        REQUIRE(q.is_broken());
    }

    CHECK(log.lines() <= 11);  // LogLimit's burst, and one "suppressed" line
}

TEST_CASE("a head index beyond the queue breaks the queue") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.publish(8);
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    auto chain = q.pop();

    CHECK_FALSE(chain);
    CHECK(q.is_broken());
}

TEST_CASE("add_used writes the element and advances used.idx") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    uint16_t head = fq.add_chain({{0x10000, 64, true}});
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    auto chain = q.pop();
    auto r = q.add_used(chain->head(), 42);

    CHECK(r);
    CHECK(fq.used_idx() == 1);
    CHECK(fq.used_id(0) == head);
    CHECK(fq.used_len(0) == 42);
    CHECK(q.next_used() == 1);
}

TEST_CASE("add_used rejects a head beyond the queue") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    CHECK_FALSE(q.add_used(8, 0));
    CHECK(fq.used_idx() == 0);
}

TEST_CASE("event idx: notify when used_event falls in the newly used range") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);
    fq.set_used_event(1);

    q.add_used(0, 0);
    bool after_first = q.should_notify();
    q.add_used(0, 0);
    bool after_second = q.should_notify();

    CHECK_FALSE(after_first);
    CHECK(after_second);
}

TEST_CASE("event idx: no notify when used_event is already behind") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);
    fq.set_used_event(0);
    q.add_used(0, 0);
    q.should_notify();

    q.add_used(0, 0);

    CHECK_FALSE(q.should_notify());
}

TEST_CASE("event idx: several used entries past used_event notify once") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);
    fq.set_used_event(0);

    q.add_used(0, 0);
    q.add_used(0, 0);
    q.add_used(0, 0);

    CHECK(q.should_notify());
    CHECK_FALSE(q.should_notify());
}

TEST_CASE("without event idx, NO_INTERRUPT suppresses the notification") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    auto q = *Queue::create(mem, fq.config(), 256, kNoEventIdx);
    fq.set_avail_flags(1);
    q.add_used(0, 0);
    bool suppressed = q.should_notify();
    fq.set_avail_flags(0);
    q.add_used(0, 0);
    bool wanted = q.should_notify();

    CHECK_FALSE(suppressed);
    CHECK(wanted);
}

TEST_CASE("should_notify is false when nothing was used") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    auto q = *Queue::create(mem, fq.config(), 256, kNoEventIdx);

    CHECK_FALSE(q.should_notify());
}

TEST_CASE("indexes set from outside resume the queue where a previous owner stopped") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    fq.add_chain({{0x10000, 16}});
    uint16_t second = fq.add_chain({{0x20000, 16}});
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    q.set_next_avail(1);
    q.set_next_used(1);
    auto chain = q.pop();
    q.add_used(chain->head(), 0);

    CHECK(chain->head() == second);
    CHECK(fq.used_idx() == 2);
    CHECK(fq.used_id(1) == second);
}

TEST_CASE("undo_pop makes the same chain available again") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 8);
    uint16_t head = fq.add_chain({{0x10000, 16}});
    auto q = *Queue::create(mem, fq.config(), 256, kFeatures);

    q.pop();
    q.undo_pop();
    auto again = q.pop();

    REQUIRE(again);
    CHECK(again->head() == head);
}

TEST_CASE("queue validation rejects overlapping rings") {
    HeapMemory mem(1 << 20);
    auto config = FakeQueue(mem, 8).config();
    config.used = config.avail;

    CHECK_FALSE(Queue::validate(mem, config, 256));
}

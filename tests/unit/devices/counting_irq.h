// An IrqLine that counts how often it was triggered.
#pragma once

#include <atomic>

#include "devices/irq.h"

namespace kite {

class CountingIrq final : public IrqLine {
public:
    void trigger() override { count.fetch_add(1, std::memory_order_relaxed); }
    std::atomic<int> count{0};
};

}  // namespace kite

// Fuzzes the snapshot reader (a snapshot file is untrusted input): decode must never crash, leak or
// allocate beyond the input's size, and whatever it accepts must re-encode to the very same bytes, with
// the pages copied out and with them left in place (read_snapshot's way).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "vmm/snapshot/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> in(data, size);
    for (bool copy_pages : {true, false}) {
        auto decoded = kite::decode_snapshot(in, copy_pages);
        if (!decoded) return 0;
        auto again = kite::encode_snapshot(*decoded);
        if (!again || again->size() != size || !std::equal(again->begin(), again->end(), in.begin())) std::abort();
    }
    return 0;
}

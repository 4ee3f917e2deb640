// Fuzzes the mirror helper's command logic (vmm/mirror/helper/helper.c, compiled here in its hosted form)
// with an arbitrary mailbox and record buffer, as a hostile VMM or corrupted records would present them.
// RAM is a 16-page heap buffer and the one GPA window a 2-page buffer, so ASan catches any access the
// helper's range checks should have refused. Properties checked after every command:
//  - an export that succeeded produced records the host PageSeal opens to exactly the RAM pages named;
//  - an import changed no RAM page other than those named by the records it reports as imported.
#include <cstdint>
#include <cstdlib>
#include <array>
#include <cstring>
#include <memory>
#include <set>
#include <span>
#include <vector>

#include "vmm/mirror/page_seal.h"

namespace {

using kite::kMirrorPageSize;
constexpr size_t kRamPages = 16;
constexpr size_t kWindowPages = 2;
constexpr size_t kSealedRecords = 4;  // how many records the harness seals when asked (keeps runs fast)

struct Hosted {
    kite_mirror_mailbox mailbox;
    kite_mirror_secret secret;
    kite_mirror_record records[KITE_MIRROR_MAX_BATCH];
    kite_mirror_record scratch;
};

Hosted* g_hosted;
uint8_t* g_ram;

}  // namespace

#define KITE_HELPER_HOSTED 1
#define MAILBOX (static_cast<volatile kite_mirror_mailbox*>(&g_hosted->mailbox))
#define SECRET (&g_hosted->secret)
#define RECORDS (g_hosted->records)
#define SCRATCH (&g_hosted->scratch)
#define RAM_VA (reinterpret_cast<uint64_t>(g_ram))
#define GPA_PTR(gpa) (reinterpret_cast<const uint8_t*>(gpa))
#include "vmm/mirror/helper/helper.c"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static kite::MirrorKey key = [] {
        kite::MirrorKey k;
        for (size_t i = 0; i < k.cipher.size(); ++i) k.cipher[i] = static_cast<uint8_t>(i * 5);
        for (size_t i = 0; i < k.mac.size(); ++i) k.mac[i] = static_cast<uint8_t>(i * 11);
        return k;
    }();
    static auto storage = std::make_unique<Hosted>();  // 530 KB: reused, cleared per run
    Hosted* hosted = storage.get();
    std::memset(static_cast<void*>(hosted), 0, sizeof *hosted);
    std::vector<uint8_t> ram(kRamPages * kMirrorPageSize), window(kWindowPages * kMirrorPageSize);
    for (size_t i = 0; i < ram.size(); ++i) ram[i] = static_cast<uint8_t>(i * 7 + i / 4096);
    for (size_t i = 0; i < window.size(); ++i) window[i] = static_cast<uint8_t>(i ^ 0x5a);
    g_hosted = hosted;
    g_ram = ram.data();

    // Input: the mailbox bytes, then the record buffer bytes; then the VMM-owned fields are set right.
    size_t mb_bytes = std::min(size, sizeof(kite_mirror_mailbox));
    std::memcpy(&hosted->mailbox, data, mb_bytes);
    size_t rec_bytes = std::min(size - mb_bytes, sizeof(hosted->records));
    std::memcpy(hosted->records, data + mb_bytes, rec_bytes);
    // A tail byte asks for the records to be properly sealed first (then possibly damaged), so the
    // import success path is reached too.
    if (size > mb_bytes + rec_bytes && (data[size - 1] & 1)) {
        for (auto& r : std::span(hosted->records, kSealedRecords)) {
            uint64_t off = (r.ram_offset % kRamPages) * kMirrorPageSize;
            std::span<const std::byte, kMirrorPageSize> page(reinterpret_cast<const std::byte*>(r.ciphertext),
                                                             kMirrorPageSize);
            r = kite::seal_page(key, off, r.nonce, page);
        }
        if (data[size - 1] & 2) hosted->records[data[size - 1] % 4].ciphertext[data[size - 1]] ^= 1;
    }
    std::memcpy(hosted->secret.cipher_key, key.cipher.data(), 32);
    std::memcpy(hosted->secret.mac_key, key.mac.data(), 16);
    hosted->secret.nonce_base = 1;
    hosted->mailbox.ram_size = ram.size();
    hosted->mailbox.window_count = 1;
    hosted->mailbox.windows[0] = {reinterpret_cast<uint64_t>(window.data()), window.size()};
    nonce_ready = 0;
    const std::vector<uint8_t> before = ram;
    std::array<uint64_t, KITE_MIRROR_MAX_BATCH> record_offsets{};
    for (size_t i = 0; i < record_offsets.size(); ++i) record_offsets[i] = hosted->records[i].ram_offset;

    uint32_t command = hosted->mailbox.command;
    uint32_t done = 0;
    int status = run_command(command, &done);

    bool is_export = command == KITE_MIRROR_CMD_EXPORT || command == KITE_MIRROR_CMD_EXPORT_BATCH;
    if (status == KITE_MIRROR_OK && is_export) {
        for (uint32_t i = 0; i < done; ++i) {
            std::array<std::byte, kMirrorPageSize> page{};
            if (!kite::open_record(key, hosted->records[i], page)) std::abort();
            if (std::memcmp(page.data(), ram.data() + hosted->mailbox.offsets[i], kMirrorPageSize) != 0) std::abort();
        }
    }
    std::set<uint64_t> imported;
    if (command == KITE_MIRROR_CMD_IMPORT || command == KITE_MIRROR_CMD_IMPORT_BATCH)
        for (uint32_t i = 0; i < done; ++i) imported.insert(record_offsets[i]);
    for (size_t p = 0; p < kRamPages; ++p)
        if (!imported.count(p * kMirrorPageSize) &&
            std::memcmp(before.data() + p * kMirrorPageSize, ram.data() + p * kMirrorPageSize, kMirrorPageSize) != 0)
            std::abort();
    return 0;
}

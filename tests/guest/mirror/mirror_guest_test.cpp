// Small-guest KVM tests of the mirror VM (needs /dev/kvm; run in the nested sandbox on PVM hosts):
// the helper's sealing matches the host PageSeal, pages round-trip into a fresh VM (an unmapped RAM block
// too), tampered records and bad offsets are refused, a helper that never halts is stopped by the watchdog,
// the option-2 MSR path and option-1 alias give the helper GPA windows, and helper writes stay out of the
// main VM's dirty log. Prints PASS/FAIL lines; exit status 1 if any test failed, 77 without /dev/kvm.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "memory/guest_ram.h"
#include "vmm/kvm/kvm.h"
#include "vmm/mirror/migration_control.h"
#include "vmm/mirror/mirror_vm.h"
#include "vmm/mirror/page_seal.h"

using namespace kite;

namespace {

constexpr uint64_t MiB = 1 << 20;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kUnmappedBase = 4 * MiB;  // RAM offset of block 1, which the main VM never maps

struct MainVm {
    Kvm kvm;
    VmFd vm;
    GuestRam ram;
};

#define TRY(expr)                                                                  \
    ({                                                                             \
        auto _r = (expr);                                                          \
        if (!_r) return fail(std::string(#expr) + ": " + _r.error().message);     \
        std::move(_r).value();                                                     \
    })
#define TRY_VOID(expr)                                                             \
    do {                                                                           \
        auto _r = (expr);                                                          \
        if (!_r) return fail(std::string(#expr) + ": " + _r.error().message);     \
    } while (0)
#define EXPECT(cond)                                                               \
    do {                                                                           \
        if (!(cond)) return fail("expected " #cond);                               \
    } while (0)

// Block 0: 4 MiB at GPA 0; block 1: 2 MiB, unmapped. One memslot per mapped region.
Result<std::unique_ptr<MainVm>> make_main_vm(uint32_t slot_flags = 0) {
    auto kvm = TRY(Kvm::open());
    auto vm = TRY(kvm.create_vm());
    auto m = std::unique_ptr<MainVm>(new MainVm{std::move(kvm), std::move(vm), {}});
    auto b0 = TRY(m->ram.add_block(4 * MiB, HugePages::None));
    TRY(m->ram.add_block(2 * MiB, HugePages::None));
    TRY_VOID(m->ram.map_block(b0, GuestAddress(0)));
    uint32_t slot = 0;
    for (const auto& r : m->ram.regions())
        TRY_VOID(m->vm.set_user_memory_region(slot++, r.gpa.value(), r.size, r.host, slot_flags));
    TRY_VOID(m->vm.set_tss_address(0xfffbd000));
    return m;
}

std::span<std::byte, kPage> page_at(GuestRam& ram, uint64_t offset) {
    return std::span<std::byte, kPage>(ram.ram_span(RamOffset(offset), kPage)->data(), kPage);
}

void fill_page(GuestRam& ram, uint64_t offset, uint8_t seed) {
    auto p = page_at(ram, offset);
    for (size_t i = 0; i < kPage; ++i) p[i] = static_cast<std::byte>(seed + i * 13);
}

MirrorKey fixed_key() {
    MirrorKey k;
    for (size_t i = 0; i < k.cipher.size(); ++i) k.cipher[i] = static_cast<uint8_t>(0xa0 + i);
    for (size_t i = 0; i < k.mac.size(); ++i) k.mac[i] = static_cast<uint8_t>(0x30 + i);
    return k;
}

MirrorOptions keyed(uint64_t nonce_base = 1000) {
    MirrorOptions o;
    o.key = fixed_key();
    o.nonce_base = nonce_base;
    // Only a hang may trip this. Ring 0 is slow under nested TCG, and slower still on a PVM host, where it is
    // emulated at about a million instructions a second (a two-command batch seals for tens of seconds).
    o.watchdog = std::chrono::milliseconds(Kvm::is_pvm() ? 180000 : 20000);
    return o;
}

// Runs the main VM's single vCPU from real-mode `code` at GPA 0x1000 until HLT; MSR writes go to `on_msr`
// with the vCPU's registers at the exit.
using MsrHandler = std::function<bool(const MsrWrite&, const kvm_regs&)>;
Result<void> run_real_mode(MainVm& m, std::span<const uint8_t> code, MsrHandler on_msr) {
    std::memcpy(m.ram.span(GuestAddress(0x1000), code.size())->data(), code.data(), code.size());
    auto vcpu = TRY(m.vm.create_vcpu(0));
    kvm_sregs sregs{};
    TRY_VOID(vcpu.get_sregs(sregs));
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    TRY_VOID(vcpu.set_sregs(sregs));
    kvm_regs regs{};
    regs.rip = 0x1000;
    regs.rflags = 2;
    TRY_VOID(vcpu.set_regs(regs));
    for (int i = 0; i < 16; ++i) {
        auto exit = TRY(vcpu.run());
        if (std::holds_alternative<Hlt>(exit)) return {};
        if (auto* w = std::get_if<MsrWrite>(&exit)) {
            TRY_VOID(vcpu.get_regs(regs));
            *w->error = on_msr(*w, regs) ? 0 : 1;
            continue;
        }
        return fail("main vCPU: unexpected exit " + std::to_string(exit.index()));
    }
    return fail("main vCPU did not halt");
}

// ---- tests ----

Result<void> export_matches_host_seal() {
    auto m = TRY(make_main_vm());
    const std::vector<uint64_t> offsets{0, 0x1000, 0x3ff000, kUnmappedBase + 0x2000};
    for (size_t i = 0; i < offsets.size(); ++i) fill_page(m->ram, offsets[i], static_cast<uint8_t>(i * 31 + 1));
    auto mirror = TRY(MirrorVm::create(m->kvm, m->vm, m->ram, keyed(1000)));
    auto records = TRY(mirror->export_pages(offsets));
    EXPECT(records.size() == offsets.size());
    for (size_t i = 0; i < offsets.size(); ++i) {
        SealedRecord want = seal_page(fixed_key(), offsets[i], 1000 + i, page_at(m->ram, offsets[i]));
        EXPECT(std::memcmp(&want, &records[i], sizeof want) == 0);
    }
    return {};
}

Result<void> import_into_fresh_vm_restores_pages_including_unmapped_block() {
    auto src = TRY(make_main_vm());
    const std::vector<uint64_t> offsets{0x2000, 0x200000, kUnmappedBase, kUnmappedBase + 0x1ff000};
    for (size_t i = 0; i < offsets.size(); ++i) fill_page(src->ram, offsets[i], static_cast<uint8_t>(i + 7));
    auto exporter = TRY(MirrorVm::create(src->kvm, src->vm, src->ram, keyed(5)));
    auto records = TRY(exporter->export_pages(offsets));

    auto dst = TRY(make_main_vm());
    auto importer = TRY(MirrorVm::create(dst->kvm, dst->vm, dst->ram, keyed(900)));
    TRY_VOID(importer->import_pages(records));
    for (uint64_t off : offsets)
        EXPECT(std::memcmp(page_at(src->ram, off).data(), page_at(dst->ram, off).data(), kPage) == 0);
    return {};
}

Result<void> batch_larger_than_one_command_round_trips() {
    auto src = TRY(make_main_vm());
    std::vector<uint64_t> offsets;
    // Two commands' worth: a full batch and a remainder (each page costs ring-0 time; see keyed()).
    constexpr uint64_t kPages = KITE_MIRROR_MAX_BATCH + 2;
    for (uint64_t off = 0; off < kPages * kPage; off += kPage) {
        offsets.push_back(off);
        fill_page(src->ram, off, static_cast<uint8_t>(off >> 12));
    }
    auto exporter = TRY(MirrorVm::create(src->kvm, src->vm, src->ram, keyed(1)));
    auto records = TRY(exporter->export_pages(offsets));
    auto dst = TRY(make_main_vm());
    auto importer = TRY(MirrorVm::create(dst->kvm, dst->vm, dst->ram, keyed(2)));
    TRY_VOID(importer->import_pages(records));
    EXPECT(std::memcmp(src->ram.ram_span(RamOffset(0), kPages * kPage)->data(),
                       dst->ram.ram_span(RamOffset(0), kPages * kPage)->data(), kPages * kPage) == 0);
    return {};
}

Result<void> tampered_record_is_refused_and_page_unchanged() {
    auto src = TRY(make_main_vm());
    fill_page(src->ram, 0x8000, 3);
    auto exporter = TRY(MirrorVm::create(src->kvm, src->vm, src->ram, keyed()));
    auto records = TRY(exporter->export_pages(std::vector<uint64_t>{0x8000}));
    records[0].ciphertext[777] ^= 0x10;

    auto dst = TRY(make_main_vm());
    fill_page(dst->ram, 0x8000, 99);
    std::vector<std::byte> before(page_at(dst->ram, 0x8000).begin(), page_at(dst->ram, 0x8000).end());
    auto importer = TRY(MirrorVm::create(dst->kvm, dst->vm, dst->ram, keyed()));
    auto r = importer->import_pages(records);
    EXPECT(!r);
    EXPECT(r.error().message.find("MAC mismatch") != std::string::npos);
    EXPECT(std::memcmp(before.data(), page_at(dst->ram, 0x8000).data(), kPage) == 0);
    return {};
}

Result<void> record_sealed_under_another_key_is_refused() {
    auto src = TRY(make_main_vm());
    MirrorOptions other = keyed();
    other.key = std::nullopt;  // random key
    auto exporter = TRY(MirrorVm::create(src->kvm, src->vm, src->ram, other));
    auto records = TRY(exporter->export_pages(std::vector<uint64_t>{0}));
    auto dst = TRY(make_main_vm());
    auto importer = TRY(MirrorVm::create(dst->kvm, dst->vm, dst->ram, keyed()));
    auto reply = importer->import_pages(records);
    EXPECT(!reply);
    return {};
}

Result<void> out_of_range_offsets_are_refused() {
    auto m = TRY(make_main_vm());
    auto mirror = TRY(MirrorVm::create(m->kvm, m->vm, m->ram, keyed()));
    const uint64_t beyond = m->ram.ram_size();
    auto r1 = TRY(mirror->command({MirrorCommand::Export, 1, std::span(&beyond, 1)}));
    EXPECT(r1.status == MirrorStatus::OutOfRange);
    const uint64_t unaligned = 0x1008;
    auto r2 = TRY(mirror->command({MirrorCommand::Export, 1, std::span(&unaligned, 1)}));
    EXPECT(r2.status == MirrorStatus::OutOfRange);
    const uint64_t huge = ~0ull & ~(kPage - 1);
    auto r3 = TRY(mirror->command({MirrorCommand::Export, 1, std::span(&huge, 1)}));
    EXPECT(r3.status == MirrorStatus::OutOfRange);
    // A record naming an offset beyond RAM, even with a valid MAC, is refused on import.
    std::array<std::byte, kPage> page{};
    mirror->records()[0] = seal_page(fixed_key(), beyond, 1, page);
    auto r4 = TRY(mirror->command({MirrorCommand::Import, 1, {}}));
    EXPECT(r4.status == MirrorStatus::OutOfRange);
    auto r5 = TRY(mirror->command({MirrorCommand::ExportBatch, 0, {}}));
    EXPECT(r5.status == MirrorStatus::BadCount);
    // Still healthy after refusals.
    auto ok = TRY(mirror->export_pages(std::vector<uint64_t>{0}));
    EXPECT(ok.size() == 1);
    return {};
}

Result<void> helper_that_never_halts_is_stopped_by_watchdog() {
    auto m = TRY(make_main_vm());
    static const std::byte spin[] = {std::byte{0xeb}, std::byte{0xfe}};  // jmp .
    MirrorOptions o = keyed();
    o.payload = spin;
    o.watchdog = std::chrono::milliseconds(300);
    auto mirror = TRY(MirrorVm::create(m->kvm, m->vm, m->ram, o));
    auto start = std::chrono::steady_clock::now();
    auto r = mirror->command({MirrorCommand::Reset, 0, {}});
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT(!r);
    EXPECT(r.error().message.find("did not finish") != std::string::npos);
    EXPECT(took < std::chrono::seconds(5));
    EXPECT(!mirror->command({MirrorCommand::Reset, 0, {}}));  // refused after a watchdog stop
    return {};
}

Result<void> msr_path_installs_window_helper_reads_through() {
    auto m = TRY(make_main_vm());
    TRY_VOID(install_migration_control_filter(m->vm));
    const uint64_t desc_gpa = 0x2000, main_gpa = 0x100000, mirror_gpa = 0x100000000ull;
    MigrationDescriptor d{};
    d.magic = kMigrationDescriptorMagic;
    d.count = 1;
    d.entries[0] = {main_gpa, 0x2000, mirror_gpa};
    EXPECT(m->ram.write_obj(GuestAddress(desc_gpa), d));
    fill_page(m->ram, main_gpa + 0x1000, 77);
    // mov ebx, desc; mov ecx, MSR; mov eax, 1; xor edx, edx; wrmsr; hlt
    const uint8_t code[] = {0x66, 0xbb, 0x00, 0x20, 0x00, 0x00, 0x66, 0xb9, 0x08, 0x4d, 0x56, 0x4b,
                            0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x66, 0x31, 0xd2, 0x0f, 0x30, 0xf4};
    MigrationControl ctl;
    std::string msr_error;
    TRY_VOID(run_real_mode(*m, code, [&](const MsrWrite& w, const kvm_regs& regs) {
        if (w.index != kMsrKvmMigrationControl) return false;
        auto r = ctl.handle_migration_control_write(m->ram, w.value, migration_descriptor_gpa(regs));
        if (!r) msr_error = r.error().message;
        return r.has_value();
    }));
    EXPECT(msr_error.empty());
    EXPECT(ctl.migration_allowed());
    EXPECT(ctl.windows().size() == 1);

    // Installed after creation (the usual order: the mirror is created at snapshot time).
    auto mirror = TRY(MirrorVm::create(m->kvm, m->vm, m->ram, keyed(50)));
    EXPECT(!mirror->export_gpa(GuestAddress(mirror_gpa + 0x1000)));  // no window yet: refused
    TRY_VOID(mirror->install_windows(ctl.windows()));
    auto rec = TRY(mirror->export_gpa(GuestAddress(mirror_gpa + 0x1000)));
    auto want = seal_page(fixed_key(), mirror_gpa + 0x1000, rec.nonce, page_at(m->ram, main_gpa + 0x1000),
                          KITE_MIRROR_RECORD_BY_GPA);
    EXPECT(std::memcmp(&want, &rec, sizeof want) == 0);
    // The helper's private window (its key) is not a window.
    EXPECT(!mirror->export_gpa(GuestAddress(KITE_MIRROR_SECRET_GPA)));
    return {};
}

Result<void> identity_alias_exposes_low_ram_by_gpa() {
    auto m = TRY(make_main_vm());
    fill_page(m->ram, 0x7000, 11);
    MirrorOptions o = keyed(70);
    o.identity_map_low_4g = true;
    auto mirror = TRY(MirrorVm::create(m->kvm, m->vm, m->ram, o));
    auto rec = TRY(mirror->export_gpa(GuestAddress(0x7000)));
    auto want = seal_page(fixed_key(), 0x7000, 70, page_at(m->ram, 0x7000), KITE_MIRROR_RECORD_BY_GPA);
    EXPECT(std::memcmp(&want, &rec, sizeof want) == 0);
    EXPECT(!mirror->export_gpa(GuestAddress(4 * MiB)));  // beyond the mapped region
    return {};
}

Result<void> helper_writes_stay_out_of_main_dirty_log() {
    auto m = TRY(make_main_vm(KVM_MEM_LOG_DIRTY_PAGES));
    std::vector<uint64_t> bitmap(4 * MiB / kPage / 64);
    TRY_VOID(m->vm.get_dirty_log(0, bitmap));  // clear whatever set-up wrote
    // Control: a main-vCPU write to GPA 0x3000 shows up. mov byte [0x3000], 0xaa; hlt
    const uint8_t code[] = {0xc6, 0x06, 0x00, 0x30, 0xaa, 0xf4};
    TRY_VOID(run_real_mode(*m, code, [](const MsrWrite&, const kvm_regs&) { return false; }));
    TRY_VOID(m->vm.get_dirty_log(0, bitmap));
    EXPECT(bitmap[0] & (1ull << 3));

    fill_page(m->ram, 0x5000, 1);
    auto mirror = TRY(MirrorVm::create(m->kvm, m->vm, m->ram, keyed()));
    auto records = TRY(mirror->export_pages(std::vector<uint64_t>{0x5000}));
    fill_page(m->ram, 0x5000, 2);  // host write: not a vCPU write, not logged
    TRY_VOID(m->vm.get_dirty_log(0, bitmap));
    TRY_VOID(mirror->import_pages(records));
    auto restored = page_at(m->ram, 0x5000);
    EXPECT(restored[1] == static_cast<std::byte>(1 + 13));  // the helper did write the page
    TRY_VOID(m->vm.get_dirty_log(0, bitmap));
    EXPECT((bitmap[0] & (1ull << 5)) == 0);
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    const char* filter = argc > 1 ? argv[1] : "";  // run only tests whose name contains this
    struct stat st;
    if (::stat("/dev/kvm", &st) != 0) {
        std::printf("SKIP mirror guest tests: no /dev/kvm\n");
        return 77;
    }
    struct Test {
        const char* name;
        Result<void> (*fn)();
    };
    const Test tests[] = {
        {"export_matches_host_seal", export_matches_host_seal},
        {"import_into_fresh_vm_restores_pages_including_unmapped_block",
         import_into_fresh_vm_restores_pages_including_unmapped_block},
        {"batch_larger_than_one_command_round_trips", batch_larger_than_one_command_round_trips},
        {"tampered_record_is_refused_and_page_unchanged", tampered_record_is_refused_and_page_unchanged},
        {"record_sealed_under_another_key_is_refused", record_sealed_under_another_key_is_refused},
        {"out_of_range_offsets_are_refused", out_of_range_offsets_are_refused},
        {"helper_that_never_halts_is_stopped_by_watchdog", helper_that_never_halts_is_stopped_by_watchdog},
        {"msr_path_installs_window_helper_reads_through", msr_path_installs_window_helper_reads_through},
        {"identity_alias_exposes_low_ram_by_gpa", identity_alias_exposes_low_ram_by_gpa},
        {"helper_writes_stay_out_of_main_dirty_log", helper_writes_stay_out_of_main_dirty_log},
    };
    int failed = 0;
    for (const auto& t : tests) {
        if (std::strstr(t.name, filter) == nullptr) continue;
        auto start = std::chrono::steady_clock::now();
        auto r = t.fn();
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
        if (r) {
            std::printf("PASS %s (%lld ms)\n", t.name, static_cast<long long>(ms.count()));
        } else {
            std::printf("FAIL %s: %s\n", t.name, r.error().message.c_str());
            ++failed;
        }
        std::fflush(stdout);
    }
    return failed == 0 ? 0 : 1;
}

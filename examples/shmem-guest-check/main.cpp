// shmem-guest-check: runs inside the guest (static, from the test initramfs, as root, kernel booted with
// iomem=relaxed). Finds the virtio-mmio transports in /proc/iomem (ACPI "LNRO0005" windows), picks the one
// whose DeviceID matches (42 = the shmem-backend example), selects shared memory region 0 through SHMSel,
// reads SHMLen/SHMBase, maps the region through /dev/mem and checks the example's pattern at the mapping
// offset. Exit 0 when the pattern is found, 1 otherwise; every step is printed.
//
//   shmem-guest-check [--device-id 42] [--offset 0x200000] [--len 0x200000]
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "examples/shmem-backend/pattern.h"

namespace {

// virtio-mmio version 2 registers (VIRTIO 1.2, 4.2.2).
constexpr uint32_t kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008;
constexpr uint32_t kShmSel = 0x0ac, kShmLenLow = 0x0b0, kShmLenHigh = 0x0b4, kShmBaseLow = 0x0b8, kShmBaseHigh = 0x0bc;
constexpr uint32_t kMagicValue = 0x74726976;  // "virt"

struct Args {
    uint32_t device_id = 42;
    uint64_t offset = 2ull << 20;
    uint64_t len = 2ull << 20;
};

// Start addresses of every LNRO0005 window in /proc/iomem ("d0000000-d00001ff : LNRO0005:00").
std::set<uint64_t> find_transports() {
    std::set<uint64_t> starts;
    std::ifstream iomem("/proc/iomem");
    std::string line;
    while (std::getline(iomem, line)) {
        if (line.find("LNRO0005") == std::string::npos) continue;
        starts.insert(std::strtoull(line.c_str() + line.find_first_not_of(' '), nullptr, 16));
    }
    return starts;
}

class Mem {
public:
    explicit Mem(int fd) : fd_(fd) {}
    // Maps [addr, addr + len) of physical memory; nullptr on failure.
    volatile uint8_t* map(uint64_t addr, uint64_t len) {
        uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
        uint64_t base = addr & ~(page - 1);
        void* p = mmap(nullptr, len + (addr - base), PROT_READ | PROT_WRITE, MAP_SHARED, fd_, static_cast<off_t>(base));
        if (p == MAP_FAILED) return nullptr;
        return static_cast<volatile uint8_t*>(p) + (addr - base);
    }

private:
    int fd_;
};

uint32_t reg(volatile uint8_t* regs, uint32_t off) { return *reinterpret_cast<volatile uint32_t*>(regs + off); }
void set_reg(volatile uint8_t* regs, uint32_t off, uint32_t v) { *reinterpret_cast<volatile uint32_t*>(regs + off) = v; }

bool check_pattern(volatile uint8_t* window, uint64_t len) {
    for (uint64_t i = 0; i < sizeof(kite::example::kPatternMagic); ++i)
        if (window[i] != kite::example::pattern_byte(i)) return false;
    for (uint64_t i = 0; i < len; i += 4093)
        if (window[i] != kite::example::pattern_byte(i)) {
            std::printf("shmem-guest-check: byte %#llx is %#x, expected %#x\n", (unsigned long long)i, window[i],
                        kite::example::pattern_byte(i));
            return false;
        }
    return window[len - 1] == kite::example::pattern_byte(len - 1);
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string key = argv[i];
        uint64_t value = std::strtoull(argv[i + 1], nullptr, 0);
        if (key == "--device-id") args.device_id = static_cast<uint32_t>(value);
        else if (key == "--offset") args.offset = value;
        else if (key == "--len") args.len = value;
    }
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) {
        std::perror("shmem-guest-check: /dev/mem");
        return 1;
    }
    Mem mem(fd);
    auto transports = find_transports();
    std::printf("shmem-guest-check: %zu LNRO0005 transports\n", transports.size());
    for (uint64_t start : transports) {
        volatile uint8_t* regs = mem.map(start, 0x200);
        if (regs == nullptr) continue;
        uint32_t magic = reg(regs, kMagic), version = reg(regs, kVersion), id = reg(regs, kDeviceId);
        std::printf("shmem-guest-check: %#llx magic %#x version %u device %u\n", (unsigned long long)start, magic, version, id);
        if (magic != kMagicValue || version != 2 || id != args.device_id) continue;
        set_reg(regs, kShmSel, 0);
        uint64_t len = reg(regs, kShmLenLow) | (uint64_t{reg(regs, kShmLenHigh)} << 32);
        uint64_t base = reg(regs, kShmBaseLow) | (uint64_t{reg(regs, kShmBaseHigh)} << 32);
        std::printf("shmem-guest-check: shm region 0 base %#llx len %#llx\n", (unsigned long long)base, (unsigned long long)len);
        if (len == ~uint64_t{0} || args.offset + args.len > len) {
            std::printf("shmem-guest-check: region 0 absent or too small\n");
            return 1;
        }
        volatile uint8_t* window = mem.map(base + args.offset, args.len);
        if (window == nullptr) {
            std::perror("shmem-guest-check: mmap of the shared memory window");
            return 1;
        }
        bool ok = check_pattern(window, args.len);
        std::printf("shmem-guest-check: pattern %s\n", ok ? "FOUND" : "NOT FOUND");
        return ok ? 0 : 1;
    }
    std::printf("shmem-guest-check: no virtio-mmio device with id %u\n", args.device_id);
    return 1;
}

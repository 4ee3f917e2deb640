// Hostile snapshot files: lengths and counts chosen to wrap a multiplication or to ask for more memory
// than any host has. Each must be refused with its reason, never thrown (an uncaught std::length_error
// or std::bad_alloc ends Kite) nor allocated.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/fd.h"
#include "crafted_file.h"
#include "vmm/snapshot/snapshot.h"

using namespace kite;
using namespace kite::test;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kRecord = sizeof(SealedRecord);

// The head of a memory section payload (kMemoryHeadSize bytes): an unmapped block at RAM offset 0.
std::vector<uint8_t> memory_head(uint64_t size, PageEncoding encoding, uint32_t pad, uint64_t count) {
    ByteWriter w;
    w.u64(0);
    w.u64(size);
    w.u64(~0ull);
    w.u32(static_cast<uint32_t>(encoding));
    w.u32(pad);
    w.u64(count);
    return w.data();
}

// A sealed block of (almost) 2^64 bytes whose record count times the record size (4128) wraps to 3872:
// exactly the bytes that follow, so a multiplied length check passes and resize(count) throws.
constexpr uint64_t kWrappingCount = 4468688002352121;
static_assert(kWrappingCount * kRecord == 3872);  // wraps (unsigned arithmetic is modulo 2^64)
static_assert(kWrappingCount <= (~0ull - kPage + 1) / kPage);  // the block "holds" that many pages

std::vector<uint8_t> sealed_count_wraps() {
    auto payload = memory_head(~0ull - kPage + 1, PageEncoding::Sealed, 0, kWrappingCount);
    payload.resize(payload.size() + 3872);
    return make_file({make_section(SectionType::Memory, payload)});
}

std::string corpus_path(const char* name) {
    return std::string(KITE_SOURCE_DIR) + "/tests/fuzz/corpus/fuzz_snapshot/" + name;
}

// The crafted file as kept in the fuzz corpus (rewritten from `bytes` with KITE_WRITE_FUZZ_SEED=1).
std::vector<uint8_t> corpus_file(const char* name, const std::vector<uint8_t>& bytes) {
    const std::string path = corpus_path(name);
    if (std::getenv("KITE_WRITE_FUZZ_SEED")) {
        FILE* f = std::fopen(path.c_str(), "wb");
        REQUIRE(f);
        CHECK(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
        std::fclose(f);
    }
    FILE* f = std::fopen(path.c_str(), "rb");
    REQUIRE_MESSAGE(f, path);
    std::vector<uint8_t> out(bytes.size() + 1);
    out.resize(std::fread(out.data(), 1, out.size(), f));
    std::fclose(f);
    return out;
}

// A file whose first bytes are `prefix` and whose length is `length`: the rest is a hole (a memfd
// holds it without memory), so a section may claim petabytes that are really there to read.
struct SparseFile {
    SparseFile(const std::vector<uint8_t>& prefix, uint64_t length) : fd(::memfd_create("kite-sparse", MFD_CLOEXEC)) {
        REQUIRE(fd);
        REQUIRE(::pwrite(fd.get(), prefix.data(), prefix.size(), 0) == static_cast<ssize_t>(prefix.size()));
        REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(length)) == 0);
    }
    std::string path() const { return "/proc/self/fd/" + std::to_string(fd.get()); }
    UniqueFd fd;
};

std::vector<uint8_t> header_then(const std::vector<uint8_t>& section_start) {
    auto bytes = file_header();
    bytes.insert(bytes.end(), section_start.begin(), section_start.end());
    return bytes;
}

std::string read_error(const std::string& path) {
    auto r = read_snapshot(path);
    return r ? std::string("(decoded)") : r.error().message;
}

std::string decode_error(const std::vector<uint8_t>& bytes) {
    auto r = decode_snapshot(bytes);
    return r ? std::string("(decoded)") : r.error().message;
}

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("a sealed section whose record count wraps count x record size is a section overflow") {
    auto bytes = corpus_file("sealed-count-wraps.snap", sealed_count_wraps());
    auto error = decode_error(bytes);
    CHECK(contains(error, "memory section 0"));
    CHECK(contains(error, "section overflow"));
}

TEST_CASE("read_snapshot refuses the wrapping sealed record count from a file too") {
    SparseFile file(sealed_count_wraps(), sealed_count_wraps().size());
    auto error = read_error(file.path());
    CHECK(contains(error, file.path().c_str()));
    CHECK(contains(error, "section overflow"));
}

TEST_CASE("a device section claiming 4 EiB of a sparse file is refused before it is allocated") {
    const uint64_t length = 1ull << 62;
    SparseFile file(header_then(section_header(SectionType::Device, length, 0)),
                    kSnapshotHeaderSize + kSectionHeaderSize + length);
    auto error = read_error(file.path());
    CHECK(contains(error, "device section 0"));
    CHECK(contains(error, "more than any device section holds"));
}

TEST_CASE("a sealed section of 4 PiB of records in a sparse file is refused as more than the host's memory") {
    const uint64_t count = 1ull << 40;
    const uint64_t length = kMemoryHeadSize + count * kRecord;
    auto start = section_header(SectionType::Memory, length, 0);
    auto head = memory_head(count * kPage, PageEncoding::Sealed, 0, count);
    start.insert(start.end(), head.begin(), head.end());
    SparseFile file(header_then(start), kSnapshotHeaderSize + kSectionHeaderSize + length);
    auto error = read_error(file.path());
    CHECK(contains(error, "memory section 0"));
    CHECK(contains(error, "more than this host has"));
}

TEST_CASE("a plain section listing 2^40 pages of a sparse file is refused as more than the host's memory") {
    const uint64_t count = 1ull << 40;
    const uint64_t at = kSnapshotHeaderSize + kSectionHeaderSize;
    const uint32_t pad = plain_pages_padding(at, count);
    const uint64_t length = kMemoryHeadSize + count * 8 + pad + count * kPage;
    auto start = section_header(SectionType::Memory, length, 0);
    auto head = memory_head(count * kPage, PageEncoding::Plain, pad, count);
    start.insert(start.end(), head.begin(), head.end());
    SparseFile file(header_then(start), at + length);
    auto error = read_error(file.path());
    CHECK(contains(error, "memory section 0"));
    CHECK(contains(error, "more than this host has"));
}

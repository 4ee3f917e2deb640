// Encoding side of the snapshot format (snapshot.h), plus the Plain memory helpers.
#include <algorithm>

#include "vmm/snapshot/byte_io.h"
#include "vmm/snapshot/crc32c.h"
#include "vmm/snapshot/snapshot.h"

namespace kite {

namespace {

constexpr uint64_t kPage = kMirrorPageSize;
constexpr uint64_t kUnmapped = ~0ull;

void section(ByteWriter& out, SectionType type, std::span<const uint8_t> payload) {
    ByteWriter h;
    h.u32(static_cast<uint32_t>(type));
    h.u32(0);
    h.u64(payload.size());
    h.u32(crc32c(payload));
    h.u32(crc32c(h.data()));
    out.bytes(h.data());
    out.bytes(payload);
}

std::vector<uint8_t> vcpu_payload(const VcpuState& v) {
    ByteWriter w;
    w.u32(v.index);
    w.sized(v.regs);
    w.sized(v.sregs);
    w.sized(v.fpu);
    w.u32(static_cast<uint32_t>(v.xsave.size()));
    w.bytes(v.xsave);
    w.sized(v.xcrs);
    w.u32(static_cast<uint32_t>(v.msrs.size()));
    for (const auto& m : v.msrs) {
        w.u32(m.index);
        w.u32(0);
        w.u64(m.data);
    }
    w.sized(v.lapic);
    w.sized(v.events);
    w.sized(v.mp_state);
    return std::move(w.data());
}

std::vector<uint8_t> memory_payload(const MemoryBlockState& m) {
    ByteWriter w;
    w.u64(m.ram_offset);
    w.u64(m.size);
    w.u64(m.gpa ? *m.gpa : kUnmapped);
    w.u32(static_cast<uint32_t>(m.encoding));
    w.u32(0);
    if (m.encoding == PageEncoding::Plain) {
        w.u64(m.page_indices.size());
        for (uint64_t i : m.page_indices) w.u64(i);
        w.bytes(m.pages);
    } else {
        w.u64(m.records.size());
        for (const auto& r : m.records) w.raw(&r, sizeof r);
    }
    return std::move(w.data());
}

}  // namespace

Result<std::vector<uint8_t>> encode_snapshot(const SnapshotData& data) {
    // Refuse to write what the reader would refuse, so a written snapshot always reads back.
    for (const auto& v : data.vcpus) {
        if (v.xsave.size() > kMaxXsaveSize) return fail("snapshot: xsave area too large");
        if (v.msrs.size() > kMaxSnapshotMsrs) return fail("snapshot: too many MSRs");
    }
    for (const auto& d : data.devices)
        if (d.name.empty() || d.name.size() > kMaxDeviceNameSize) return fail("snapshot: bad device name");
    for (const auto& m : data.memory)
        if (m.encoding == PageEncoding::Plain && m.pages.size() != m.page_indices.size() * kPage)
            return fail("snapshot: plain memory block pages and indices disagree");

    ByteWriter out;
    out.raw(kSnapshotMagic, sizeof kSnapshotMagic);
    out.u32(kSnapshotVersion);
    out.u32(data.flags);
    out.u32(0);
    out.u32(crc32c(out.data()));
    uint64_t sections = 0;
    for (const auto& v : data.vcpus) {
        section(out, SectionType::Vcpu, vcpu_payload(v));
        ++sections;
    }
    if (data.irqchip) {
        ByteWriter w;
        w.sized(data.irqchip->pic_master);
        w.sized(data.irqchip->pic_slave);
        w.sized(data.irqchip->ioapic);
        section(out, SectionType::Irqchip, w.data());
        ++sections;
    }
    if (data.pit) {
        ByteWriter w;
        w.sized(*data.pit);
        section(out, SectionType::Pit, w.data());
        ++sections;
    }
    if (data.clock) {
        ByteWriter w;
        w.sized(*data.clock);
        section(out, SectionType::Clock, w.data());
        ++sections;
    }
    for (const auto& d : data.devices) {
        ByteWriter w;
        w.u32(static_cast<uint32_t>(d.name.size()));
        w.raw(d.name.data(), d.name.size());
        w.u64(d.data.size());
        w.bytes(d.data);
        section(out, SectionType::Device, w.data());
        ++sections;
    }
    for (const auto& m : data.memory) {
        section(out, SectionType::Memory, memory_payload(m));
        ++sections;
    }
    ByteWriter end;
    end.u64(sections);
    end.u64(out.data().size() + kSectionHeaderSize + 16);
    section(out, SectionType::End, end.data());
    return std::move(out.data());
}

MemoryBlockState plain_memory_block(uint64_t ram_offset, std::span<const std::byte> block, std::optional<uint64_t> gpa) {
    MemoryBlockState m;
    m.ram_offset = ram_offset;
    m.size = block.size();
    m.gpa = gpa;
    m.encoding = PageEncoding::Plain;
    for (uint64_t i = 0; i < block.size() / kPage; ++i) {
        auto page = block.subspan(i * kPage, kPage);
        if (std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; })) continue;
        m.page_indices.push_back(i);
        auto* p = reinterpret_cast<const uint8_t*>(page.data());
        m.pages.insert(m.pages.end(), p, p + kPage);
    }
    return m;
}

void restore_plain_memory_block(const MemoryBlockState& state, std::span<std::byte> block) {
    std::fill(block.begin(), block.end(), std::byte{0});
    for (size_t n = 0; n < state.page_indices.size(); ++n)
        std::memcpy(block.data() + state.page_indices[n] * kPage, state.pages.data() + n * kPage, kPage);
}

}  // namespace kite

#include "devices/virtio/block.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "devices/virtio/block_ring.h"
#include "devices/virtio/chain_io.h"
#include "devices/virtio/spec.h"

namespace kite {

namespace {

// Feature bits (spec 5.2.3).
constexpr uint64_t kFeatureSegMax = 1ull << 2;
constexpr uint64_t kFeatureRo = 1ull << 5;
constexpr uint64_t kFeatureBlkSize = 1ull << 6;
constexpr uint64_t kFeatureFlush = 1ull << 9;
constexpr uint64_t kFeatureDiscard = 1ull << 13;
constexpr uint64_t kFeatureWriteZeroes = 1ull << 14;

// Request types and status values (spec 5.2.6).
constexpr uint32_t kTypeIn = 0;
constexpr uint32_t kTypeOut = 1;
constexpr uint32_t kTypeFlush = 4;
constexpr uint32_t kTypeGetId = 8;
constexpr uint32_t kTypeDiscard = 11;
constexpr uint32_t kTypeWriteZeroes = 13;
constexpr uint8_t kStatusOk = 0;
constexpr uint8_t kStatusIoErr = 1;
constexpr uint8_t kStatusUnsupp = 2;

constexpr size_t kIdBytes = 20;
constexpr uint32_t kWriteZeroesUnmap = 1;

struct RequestHeader {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};
struct DiscardSegment {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};
static_assert(sizeof(RequestHeader) == 16 && sizeof(DiscardSegment) == 16);

// struct virtio_blk_config field offsets (spec 5.2.4).
constexpr size_t kCfgCapacity = 0;
constexpr size_t kCfgSegMax = 12;
constexpr size_t kCfgBlkSize = 20;
constexpr size_t kCfgMaxDiscardSectors = 36;
constexpr size_t kCfgMaxDiscardSeg = 40;
constexpr size_t kCfgDiscardAlignment = 44;
constexpr size_t kCfgMaxWriteZeroesSectors = 48;
constexpr size_t kCfgMaxWriteZeroesSeg = 52;
constexpr size_t kCfgWriteZeroesMayUnmap = 56;
constexpr size_t kCfgSize = 60;

template <class T>
void put(std::vector<uint8_t>& config, size_t offset, T value) {
    std::memcpy(config.data() + offset, &value, sizeof value);
}

// True if [sector, sector + count) lies inside an image of `capacity` sectors (overflow-safe).
bool sectors_fit(uint64_t sector, uint64_t count, uint64_t capacity) {
    return sector <= capacity && count <= capacity - sector;
}

}  // namespace

Result<std::shared_ptr<BlockDevice>> BlockDevice::open(const BlockOptions& options) {
    UniqueFd fd(::open(options.path.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("virtio-blk: open " + options.path));
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    if (size < 0) return std::unexpected(errno_error("virtio-blk: size of " + options.path));
    std::string serial = options.serial;
    if (serial.empty()) serial = options.path.substr(options.path.find_last_of('/') + 1);
    serial.resize(std::min(serial.size(), kIdBytes));
    // The ring is made now, before the sandbox (block_ring.h), and serves every activation.
    std::unique_ptr<BlockRing> ring;
    if (options.try_io_uring) {
        auto made = BlockRing::create(kBlockRingEntries);
        if (made) ring = std::move(*made);
        else spdlog::info("virtio-blk: io_uring unavailable ({}), using synchronous I/O", made.error().message);
    }
    return std::shared_ptr<BlockDevice>(new BlockDevice(std::move(fd), uint64_t(size) / kSectorSize,
                                                        options.read_only, std::move(serial), std::move(ring)));
}

BlockDevice::BlockDevice(UniqueFd fd, uint64_t capacity, bool read_only, std::string serial,
                         std::unique_ptr<BlockRing> ring)
    : fd_(std::move(fd)),
      capacity_(capacity),
      read_only_(read_only),
      serial_(std::move(serial)),
      ring_(std::move(ring)),
      config_(kCfgSize, 0) {
    put<uint64_t>(config_, kCfgCapacity, capacity_);
    put<uint32_t>(config_, kCfgSegMax, kQueueSize - 2);  // header and status take two descriptors
    put<uint32_t>(config_, kCfgBlkSize, kSectorSize);
    put<uint32_t>(config_, kCfgMaxDiscardSectors, kMaxDiscardSectors);
    put<uint32_t>(config_, kCfgMaxDiscardSeg, 1);
    put<uint32_t>(config_, kCfgDiscardAlignment, 1);
    put<uint32_t>(config_, kCfgMaxWriteZeroesSectors, kMaxDiscardSectors);
    put<uint32_t>(config_, kCfgMaxWriteZeroesSeg, 1);
    put<uint8_t>(config_, kCfgWriteZeroesMayUnmap, 1);
}

uint32_t BlockDevice::device_id() const { return virtio::kIdBlock; }

uint64_t BlockDevice::device_features() const {
    uint64_t f = virtio::kCommonFeatures | kFeatureSegMax | kFeatureBlkSize | kFeatureFlush;
    if (read_only_) return f | kFeatureRo;
    return f | kFeatureDiscard | kFeatureWriteZeroes;
}

void BlockDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
    // guest-controlled: offset and size.
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = offset < config_.size() && i < config_.size() - offset ? config_[offset + i] : 0;
}

Result<void> BlockDevice::activate(ActivateContext ctx) {
    auto engine = BlockEngine::create(fd_.get(), ctx.io, [this](uint64_t tag, int64_t r) { on_done(tag, r); },
                                      ring_.get());
    if (!engine) return std::unexpected(engine.error());
    if (auto r = active_.activate(ctx, queue_max_sizes(), [this](uint16_t) { process(); }); !r) return r;
    features_ = ctx.driver_features;
    engine_ = std::move(*engine);
    process();
    return {};
}

void BlockDevice::reset() {
    if (engine_) engine_->cancel_all();  // the kernel is done with guest memory before we return
    pending_.clear();
    active_.reset();
    engine_.reset();
}

void BlockDevice::quiesce() {
    if (engine_) engine_->finish_all();
}

void BlockDevice::process() {
    if (active_.queues.empty() || !active_.queues[0]) return;
    Queue& q = active_.queues[0]->queue;
    in_process_ = true;
    active_.queues[0]->drain([this](DescriptorChain& chain) {
        handle(chain);
        return true;
    });
    in_process_ = false;
    notify_or_flag(q, 0, *active_.interrupt);
}

void BlockDevice::complete(uint16_t head, std::optional<GuestAddress> status, uint8_t status_value,
                           uint32_t used_len) {
    if (active_.queues.empty() || !active_.queues[0]) return;
    Queue& q = active_.queues[0]->queue;
    if (status && !active_.memory->write_obj(*status, status_value)) used_len = 0;
    if (!q.add_used(head, used_len)) log_.warn("virtio-blk: cannot return request {}", head);
    if (!in_process_) notify_or_flag(q, 0, *active_.interrupt);
}

void BlockDevice::on_done(uint64_t tag, int64_t result) {
    auto it = pending_.find(tag);
    if (it == pending_.end()) return;
    Pending p = it->second;
    pending_.erase(it);
    bool ok = result >= 0 && uint64_t(result) == p.expected;
    if (!ok) log_.warn("virtio-blk: I/O failed or short: {} of {} bytes", result, p.expected);
    complete(p.head, p.status, ok ? kStatusOk : kStatusIoErr, p.used_len);
}

void BlockDevice::handle(DescriptorChain& chain) {
    uint16_t head = chain.head();
    auto buffers = chain.collect();
    if (!buffers) {
        log_.warn("virtio-blk: bad descriptor chain: {}", buffers.error().message);
        return complete(head, std::nullopt, 0, 0);
    }
    auto status = take_last_byte(buffers->writable);
    if (!status) {
        log_.warn("virtio-blk: request without a status byte");
        return complete(head, std::nullopt, 0, 0);
    }
    ChainReader reader(*active_.memory, std::move(buffers->readable));
    ChainWriter writer(*active_.memory, std::move(buffers->writable));
    auto header = reader.read_obj<RequestHeader>();  // guest-controlled
    if (!header) return complete(head, status, kStatusIoErr, 1);

    BlockOp op;
    op.tag = next_tag_++;
    Pending pending{head, *status, 1, 0};
    switch (header->type) {
        case kTypeIn:
        case kTypeOut: {
            bool in = header->type == kTypeIn;
            uint64_t length = in ? writer.remaining() : reader.remaining();
            if (!in && read_only_) return complete(head, status, kStatusIoErr, 1);
            if (length % kSectorSize != 0 || !sectors_fit(header->sector, length / kSectorSize, capacity_)) {
                log_.warn("virtio-blk: {} of {} bytes at sector {} outside the image or not whole sectors",
                          in ? "read" : "write", length, header->sector);
                return complete(head, status, kStatusIoErr, 1);
            }
            auto iov = in ? writer.take_iovecs(length) : reader.take_iovecs(length);
            if (!iov) return complete(head, status, kStatusIoErr, 1);
            op.kind = in ? BlockOp::Kind::kRead : BlockOp::Kind::kWrite;
            op.offset = header->sector * kSectorSize;
            op.length = length;
            op.iov = std::move(*iov);
            pending.expected = length;
            pending.used_len = in ? uint32_t(length + 1) : 1;
            break;
        }
        case kTypeFlush: op.kind = BlockOp::Kind::kFlush; break;
        case kTypeGetId: {
            std::array<char, kIdBytes> id{};
            std::memcpy(id.data(), serial_.data(), serial_.size());
            size_t n = static_cast<size_t>(std::min<uint64_t>(writer.remaining(), kIdBytes));
            if (!writer.write(std::as_bytes(std::span(id).first(n)))) return complete(head, status, kStatusIoErr, 1);
            return complete(head, status, kStatusOk, uint32_t(n + 1));
        }
        case kTypeDiscard:
        case kTypeWriteZeroes: {
            bool discard = header->type == kTypeDiscard;
            if (!(features_ & (discard ? kFeatureDiscard : kFeatureWriteZeroes)))
                return complete(head, status, kStatusUnsupp, 1);
            if (read_only_) return complete(head, status, kStatusIoErr, 1);
            // max_discard_seg and max_write_zeroes_seg are 1: exactly one segment.
            if (reader.remaining() != sizeof(DiscardSegment)) return complete(head, status, kStatusIoErr, 1);
            auto seg = reader.read_obj<DiscardSegment>();  // guest-controlled
            if (!seg) return complete(head, status, kStatusIoErr, 1);
            uint32_t allowed_flags = discard ? 0 : kWriteZeroesUnmap;
            if (seg->flags & ~allowed_flags) return complete(head, status, kStatusUnsupp, 1);
            if (seg->num_sectors > kMaxDiscardSectors || !sectors_fit(seg->sector, seg->num_sectors, capacity_))
                return complete(head, status, kStatusIoErr, 1);
            op.kind = discard ? BlockOp::Kind::kDiscard : BlockOp::Kind::kWriteZeroes;
            op.offset = seg->sector * kSectorSize;
            op.length = uint64_t{seg->num_sectors} * kSectorSize;
            break;
        }
        default: return complete(head, status, kStatusUnsupp, 1);
    }
    pending_.emplace(op.tag, pending);
    engine_->submit(std::move(op));
}

}  // namespace kite

// Little-endian byte writer and bounded reader for the snapshot format. The reader never reads past its
// span: every get fails (returns false / nullopt) on overflow, and the caller turns that into an error
// naming the section ("section overflow").
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

namespace kite {

class ByteWriter {
public:
    void u32(uint32_t v) { raw(&v, sizeof v); }
    void u64(uint64_t v) { raw(&v, sizeof v); }
    void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
    void raw(const void* p, size_t n) {
        auto* b = static_cast<const uint8_t*>(p);
        out_.insert(out_.end(), b, b + n);
    }
    // A trivially copyable struct as its bytes, prefixed by its size (so a size change is detected).
    template <class T>
    void sized(const T& v) {
        static_assert(std::is_trivially_copyable_v<T>);
        u32(sizeof(T));
        raw(&v, sizeof v);
    }
    std::vector<uint8_t>& data() { return out_; }

private:
    std::vector<uint8_t> out_;
};

class ByteReader {
public:
    explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}
    size_t remaining() const { return in_.size() - pos_; }
    size_t position() const { return pos_; }
    bool done() const { return pos_ == in_.size(); }

    std::optional<uint32_t> u32() { return pod<uint32_t>(); }
    std::optional<uint64_t> u64() { return pod<uint64_t>(); }
    std::optional<std::span<const uint8_t>> bytes(uint64_t n) {
        if (n > remaining()) return std::nullopt;
        auto s = in_.subspan(pos_, static_cast<size_t>(n));
        pos_ += static_cast<size_t>(n);
        return s;
    }
    template <class T>
    std::optional<T> pod() {
        static_assert(std::is_trivially_copyable_v<T>);
        auto b = bytes(sizeof(T));
        if (!b) return std::nullopt;
        T v;
        std::memcpy(&v, b->data(), sizeof v);
        return v;
    }
    // Reads what ByteWriter::sized wrote; fails if the stored size is not sizeof(T).
    template <class T>
    std::optional<T> sized() {
        auto n = u32();
        if (!n || *n != sizeof(T)) return std::nullopt;
        return pod<T>();
    }

private:
    std::span<const uint8_t> in_;
    size_t pos_ = 0;
};

}  // namespace kite

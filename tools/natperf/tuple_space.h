// The test's 4-tuples (RFC 9693, RFC 4814): every combination of a
// source port in [src_lo, src_hi] and a destination port in [dst_lo, dst_hi] is one tuple,
// numbered 0..N-1 (index = src_offset * dst_count + dst_offset). Phase 1 walks all of them
// exactly once in a seeded pseudorandom order (a bijection on [0, N), so no per-tuple memory);
// phase 2 draws tuples pseudorandomly with a seeded generator.
//
// Pure C++, no DPDK: unit-tested in tests/unit/natperf_tuple_space_test.cpp.
#pragma once

#include <cstdint>

namespace natperf {

__extension__ typedef unsigned __int128 uint128;  // GCC/Clang builtin (pedantic-clean)

struct PortRange {
    uint16_t lo = 0;
    uint16_t hi = 0;
    uint32_t size() const { return uint32_t{hi} - lo + 1; }
};

struct Tuple {
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
};

// A seeded permutation of [0, n): a 4-round Feistel network over the smallest even-bit domain
// that holds n, with cycle walking (values >= n are permuted again). The domain is less than
// 4n, so a step walks fewer than 4 times on average. O(1) memory for any n.
class Permutation {
public:
    Permutation(uint64_t n, uint64_t seed);
    uint64_t size() const { return n_; }
    // The element at position i (i < size()).
    uint64_t at(uint64_t i) const;

private:
    uint64_t feistel(uint64_t x) const;
    uint64_t n_;
    unsigned half_bits_ = 1;
    uint64_t half_mask_ = 1;
    uint64_t keys_[4]{};
};

class TupleSpace {
public:
    TupleSpace(PortRange src, PortRange dst, uint64_t seed);

    uint64_t size() const { return uint64_t{src_.size()} * dst_.size(); }
    PortRange src() const { return src_; }
    PortRange dst() const { return dst_; }

    // The tuple with this index (index < size()).
    Tuple tuple(uint64_t index) const {
        return Tuple{static_cast<uint16_t>(src_.lo + index / dst_.size()),
                     static_cast<uint16_t>(dst_.lo + index % dst_.size())};
    }
    // The index of a tuple, or -1 if it lies outside the ranges.
    int64_t index_of(uint16_t src_port, uint16_t dst_port) const;

    // The index sent at step i of the preliminary phase (i < size()): a permutation.
    uint64_t phase1_index(uint64_t step) const { return perm_.at(step); }

private:
    PortRange src_;
    PortRange dst_;
    Permutation perm_;
};

// splitmix64: the seeded generator for phase-2 draws (fast, no state beyond 64 bits).
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32).
    uint64_t below(uint64_t n) {
        return static_cast<uint64_t>((static_cast<uint128>(next()) * n) >> 64);
    }

private:
    uint64_t state_;
};

// Mixes a seed with a stream number (so the Initiator and Responder draw different streams).
uint64_t mix_seed(uint64_t seed, uint64_t stream);

}  // namespace natperf

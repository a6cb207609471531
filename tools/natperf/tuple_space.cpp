// Tuple numbering and the seeded permutation; see tuple_space.h.
#include "tuple_space.h"

namespace natperf {

namespace {

uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace

uint64_t mix_seed(uint64_t seed, uint64_t stream) { return splitmix(seed ^ splitmix(stream + 1)); }

Permutation::Permutation(uint64_t n, uint64_t seed) : n_(n) {
    unsigned bits = 2;
    while (bits < 64 && (uint64_t{1} << bits) < n) bits += 2;
    half_bits_ = bits / 2;
    half_mask_ = (uint64_t{1} << half_bits_) - 1;
    for (int r = 0; r < 4; ++r) keys_[r] = mix_seed(seed, static_cast<uint64_t>(r));
}

uint64_t Permutation::feistel(uint64_t x) const {
    uint64_t left = x >> half_bits_, right = x & half_mask_;
    for (uint64_t key : keys_) {
        const uint64_t f = splitmix(right ^ key) & half_mask_;
        const uint64_t next_right = left ^ f;
        left = right;
        right = next_right;
    }
    return (left << half_bits_) | right;
}

uint64_t Permutation::at(uint64_t i) const {
    // Cycle walking: the Feistel network permutes the whole domain, so following it from an
    // element of [0, n) reaches another element of [0, n) - the restriction is a bijection.
    uint64_t x = feistel(i);
    while (x >= n_) x = feistel(x);
    return x;
}

TupleSpace::TupleSpace(PortRange src, PortRange dst, uint64_t seed)
    : src_(src), dst_(dst), perm_(uint64_t{src.size()} * dst.size(), seed) {}

int64_t TupleSpace::index_of(uint16_t src_port, uint16_t dst_port) const {
    if (src_port < src_.lo || src_port > src_.hi || dst_port < dst_.lo || dst_port > dst_.hi)
        return -1;
    return static_cast<int64_t>(uint64_t{static_cast<uint32_t>(src_port - src_.lo)} * dst_.size() +
                                static_cast<uint32_t>(dst_port - dst_.lo));
}

}  // namespace natperf

// Internet checksums: full computation (RFC 1071) and incremental update (RFC 1624).
//
// All values are handled exactly as they sit in the packet (network byte order, read with
// memcpy). The one's-complement sum is byte-order independent, so no swaps are needed as long
// as old and new values are taken from the same wire positions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace snatgw::csum {

// Sum of 16-bit words, not folded, not complemented. Odd trailing byte padded with zero.
inline uint32_t partial(const uint8_t* data, std::size_t len, uint32_t sum = 0) {
    std::size_t i = 0;
    for (; i + 1 < len; i += 2) {
        uint16_t w;
        std::memcpy(&w, data + i, 2);
        sum += w;
        if (sum >= 0x80000000u) sum = (sum & 0xffff) + (sum >> 16);
    }
    if (i < len) {
        uint8_t tail[2] = {data[i], 0};
        uint16_t w;
        std::memcpy(&w, tail, 2);
        sum += w;
    }
    return sum;
}

inline uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// The checksum field value for the given bytes (checksum field itself must be zero or skipped).
inline uint16_t finish(uint32_t sum) { return static_cast<uint16_t>(~fold(sum)); }

inline uint16_t compute(const uint8_t* data, std::size_t len) { return finish(partial(data, len)); }

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). 16-bit field change.
inline uint16_t update16(uint16_t check, uint16_t old_val, uint16_t new_val) {
    uint32_t sum = static_cast<uint16_t>(~check);
    sum += static_cast<uint16_t>(~old_val);
    sum += new_val;
    return static_cast<uint16_t>(~fold(sum));
}

// 32-bit field change (an IPv4 address), as two 16-bit halves.
inline uint16_t update32(uint16_t check, uint32_t old_val, uint32_t new_val) {
    uint32_t sum = static_cast<uint16_t>(~check);
    sum += static_cast<uint16_t>(~old_val & 0xffff) + static_cast<uint16_t>(~old_val >> 16);
    sum += (new_val & 0xffff) + (new_val >> 16);
    return static_cast<uint16_t>(~fold(sum));
}

// Read and write a 16/32-bit field at a (possibly unaligned) address, raw wire order.
inline uint16_t load16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
inline uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

}  // namespace snatgw::csum

// libFuzzer harness: arbitrary frames through a live NatWorker from both sides, in bursts, with
// the clock moving and sessions and fragmented datagrams expiring; every forwarded inside frame
// can be answered from the outside so the session hit path and the outside->inside translation
// run too. Bursts carry cookies (as the worker loop's mbufs), so fragments that come before
// their datagram's first one are held by the engine and come back through take_released().
//
// Input:
//   byte 0   engine shape (fuzz_support.h engine_shape: workers, worker id, table sizes)
//   byte 1   options: bit 0 give the engine cookies (it may hold fragments);
//            bits 1-2 n: bursts come from worker (n - 1) % workers (a handoff), 0: from the port
//   records  ctl (1 byte), length (2 bytes, big endian), that many frame bytes (fewer at the end)
//     ctl bit 0     side the frame arrives on: 0 inside, 1 outside
//         bit 1     repair its checksums first (IPv4 header, L4, ICMP error's embedded header)
//         bits 2-4  advance the clock by kAdvanceMs[n] before it (ends the burst before it)
//         bit 5     answer it from the outside if it is forwarded (inside frames)
//         bit 6     end the burst after it
//         bit 7     run expire() after the burst
// Consecutive frames of one side form one burst (one process() call, up to kBurstMax).
//
// Asserted: per frame, check_frame (fuzz_checks.h: forwarded frames parse, keep valid
// checksums, carry public/inside addresses, a later fragment only has its address changed;
// other verdicts leave the frame untouched); an answer that is forwarded reaches exactly the
// inside address and port that sent the original; a held frame comes back exactly once, on its
// side, checked like any other (its buffer stays valid until then and is freed right after, so
// ASan sees any later use); after every burst, check_worker (tables, port counts, host table
// and counters agree).
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "fuzz_checks.h"

namespace snatgw::fuzz {
namespace {

constexpr uint32_t kAdvanceMs[8] = {0, 1, 50, 1000, 5000, 65000, 250000, 8000000};
constexpr uint32_t kBurstMax = 40;     // more than the engine's chunk of 32
constexpr uint32_t kFramesMax = 512;   // per input, to keep runs fast

struct Pending {
    std::vector<uint8_t> before;  // as fed
    std::vector<uint8_t> frame;   // given to the engine, translated in place
    bool answer = false;          // inside frame: answer it from the outside if forwarded
    std::vector<uint8_t> answer_to;  // an answer: the inside frame it answers, as fed
    Side side = Side::Inside;
};

// The reply the remote end would send to a forwarded inside frame (not for ICMP errors or
// RSTs): addresses and ports swapped, echo request -> reply, TCP SYN -> SYN+ACK, else an ACK
// of what was sent (with FIN if it carried one). Checksums computed from scratch.
std::vector<uint8_t> make_answer(const std::vector<uint8_t>& sent) {
    std::vector<uint8_t> f = sent;
    PacketView v;
    if (parse_frame(f.data(), static_cast<uint32_t>(f.size()), v).cls != FrameClass::Ipv4 ||
        v.icmp == IcmpKind::Error)
        return {};
    uint8_t mac[6];
    std::memcpy(mac, f.data(), 6);
    std::memmove(f.data(), f.data() + 6, 6);
    std::memcpy(f.data() + 6, mac, 6);
    uint8_t* ip = v.l3();
    uint8_t* l4 = v.l4();
    const uint32_t src = load_be32(ip + ipv4_off::kSrc);
    store_be32(ip + ipv4_off::kSrc, load_be32(ip + ipv4_off::kDst));
    store_be32(ip + ipv4_off::kDst, src);
    ip[ipv4_off::kTtl] = 64;
    if (v.proto == kProtoIcmp) {
        l4[l4_off::kIcmpType] = kIcmpEchoReply;
    } else {
        const uint16_t sport = load_be16(l4 + l4_off::kSport);
        store_be16(l4 + l4_off::kSport, load_be16(l4 + l4_off::kDport));
        store_be16(l4 + l4_off::kDport, sport);
    }
    if (v.proto == kProtoTcp) {
        const uint8_t flags = l4[l4_off::kTcpFlags];
        if (flags & kTcpRst) return {};
        const uint32_t seq = load_be32(l4 + l4_off::kTcpSeq), ack = load_be32(l4 + l4_off::kTcpAck);
        const uint32_t doff = (l4[l4_off::kTcpDataOff] >> 4) * 4u;
        const uint32_t data = v.l4_len - doff;
        if ((flags & (kTcpSyn | kTcpAck)) == kTcpSyn) {
            store_be32(l4 + l4_off::kTcpSeq, 0x10000000u);
            store_be32(l4 + l4_off::kTcpAck, seq + 1);
            l4[l4_off::kTcpFlags] = kTcpSyn | kTcpAck;
        } else {
            store_be32(l4 + l4_off::kTcpSeq, ack);
            store_be32(l4 + l4_off::kTcpAck, seq + data + ((flags & (kTcpSyn | kTcpFin)) ? 1 : 0));
            l4[l4_off::kTcpFlags] = static_cast<uint8_t>(kTcpAck | (flags & kTcpFin));
        }
        store_be16(l4 + l4_off::kTcpWindow, 65535);
    }
    fix_checksums(f.data(), f.size(), true, false);
    return f;
}

// The inside (address, port) of a frame that arrived from the inside, before translation.
std::pair<uint32_t, uint16_t> inside_endpoint(const std::vector<uint8_t>& before) {
    std::vector<uint8_t> copy = before;
    PacketView v;
    parse_frame(copy.data(), static_cast<uint32_t>(copy.size()), v, true, true);
    if (v.later_fragment()) return {load_be32(v.l3() + ipv4_off::kSrc), 0};
    const uint16_t port = load_be16(v.l4() + (v.proto == kProtoIcmp ? l4_off::kIcmpId : l4_off::kSport));
    return {load_be32(v.l3() + ipv4_off::kSrc), port};
}

class Run {
public:
    Run(uint8_t shape_byte, uint8_t options)
        : shape_(engine_shape(shape_byte)),
          cfg_(fuzz_nat_config(shape_.workers)),
          worker_(&cfg_, worker_params(shape_)),
          cookies_((options & 1) != 0),
          from_((options >> 1) & 3 ? static_cast<uint16_t>((((options >> 1) & 3) - 1) % shape_.workers)
                                   : kFromPort) {}

    void add(Side side, std::vector<uint8_t> frame, bool answer) {
        if (!burst_.empty() && side != side_) flush();
        side_ = side;
        auto p = std::make_unique<Pending>();
        p->before = frame;
        p->frame = std::move(frame);
        p->answer = answer;
        burst_.push_back(std::move(p));
        if (burst_.size() == kBurstMax) flush();
    }

    void advance(uint32_t ms) {
        if (ms == 0) return;
        flush();
        now_ += ms;
    }

    void want_expire() { expire_ = true; }

    void flush() {
        if (!burst_.empty()) {
            std::vector<std::unique_ptr<Pending>> answers = process(side_, std::move(burst_));
            burst_.clear();
            if (!answers.empty()) process(Side::Outside, std::move(answers));
            check_worker(worker_, cfg_, shape_);
        }
        if (expire_) {
            worker_.expire(now_, 64);
            expire_ = false;
            take_released();
            check_worker(worker_, cfg_, shape_);
        }
    }

    // End of input: every fragment still held comes back, exactly once.
    void finish() {
        flush();
        worker_.drop_held();
        take_released();
        FUZZ_CHECK(held_.empty(), "%zu held fragments never came back", held_.size());
        FUZZ_CHECK(worker_.counters().fragments_waiting == 0, "fragments_waiting %llu after drop_held",
                   static_cast<unsigned long long>(worker_.counters().fragments_waiting));
        check_worker(worker_, cfg_, shape_);
    }

private:
    // Runs one burst, checks every frame; returns the answers to send back (inside bursts).
    // Frames the engine holds (fragments ahead of their first) move to held_ until released.
    std::vector<std::unique_ptr<Pending>> process(Side side, std::vector<std::unique_ptr<Pending>> frames) {
        const uint32_t n = static_cast<uint32_t>(frames.size());
        std::vector<Frame> fs(n);
        std::vector<FrameResult> rs(n);
        std::vector<void*> cookies(n);
        for (uint32_t i = 0; i < n; ++i) {
            fs[i] = Frame{frames[i]->frame.data(), static_cast<uint32_t>(frames[i]->frame.size())};
            cookies[i] = frames[i].get();
            frames[i]->side = side;
        }
        BurstOrigin origin;
        origin.cookies = cookies_ ? cookies.data() : nullptr;
        origin.from_worker = from_;
        worker_.process(side, fs.data(), rs.data(), n, now_, origin);

        std::vector<std::unique_ptr<Pending>> answers;
        for (uint32_t i = 0; i < n; ++i) {
            Pending& p = *frames[i];
            if (rs[i].held) {
                FUZZ_CHECK(cookies_, "a frame was held although the burst came without cookies");
                held_[frames[i].get()] = std::move(frames[i]);
                continue;
            }
            const uint32_t len = static_cast<uint32_t>(p.frame.size());
            check_frame(side, p.before.data(), p.frame.data(), len, rs[i], cfg_, shape_);
            if (side == Side::Outside && !p.answer_to.empty() && rs[i].verdict == Verdict::Forward) {
                // An answer that gets through goes to whoever sent the original.
                const auto [addr, port] = inside_endpoint(p.answer_to);
                std::vector<uint8_t> copy = p.frame;
                PacketView v;
                parse_frame(copy.data(), len, v, true, true);
                const uint32_t dst = load_be32(v.l3() + ipv4_off::kDst);
                FUZZ_CHECK(dst == addr, "the answer to a frame from %s was delivered to %s",
                           test::ip_str(addr).c_str(), test::ip_str(dst).c_str());
                if (!v.later_fragment()) {
                    const uint16_t dport = load_be16(v.l4() + (v.proto == kProtoIcmp ? l4_off::kIcmpId : l4_off::kDport));
                    FUZZ_CHECK(dport == port, "the answer to a frame from %s:%u was delivered to port %u",
                               test::ip_str(addr).c_str(), port, dport);
                }
            }
            if (side == Side::Inside && p.answer && rs[i].verdict == Verdict::Forward) {
                std::vector<uint8_t> a = make_answer(p.frame);
                if (a.empty()) continue;
                auto q = std::make_unique<Pending>();
                q->before = a;
                q->frame = std::move(a);
                q->answer_to = p.before;
                answers.push_back(std::move(q));
            }
        }
        take_released();
        return answers;
    }

    // Held fragments whose fate is decided: each comes back once, translated or dropped like
    // any frame, on the side it arrived.
    void take_released() {
        ReleasedFrame out[16];
        while (const uint32_t n = worker_.take_released(out, 16)) {
            for (uint32_t i = 0; i < n; ++i) {
                const auto it = held_.find(out[i].cookie);
                FUZZ_CHECK(it != held_.end(), "take_released returned a cookie that is not held");
                Pending& p = *it->second;
                FUZZ_CHECK(out[i].side == p.side, "a held fragment came back on the other side");
                FUZZ_CHECK(!out[i].result.held, "a released fragment is marked held");
                check_frame(p.side, p.before.data(), p.frame.data(), static_cast<uint32_t>(p.frame.size()),
                            out[i].result, cfg_, shape_);
                held_.erase(it);
            }
        }
    }

    EngineShape shape_;
    NatConfig cfg_;
    NatWorker worker_;
    bool cookies_;
    uint16_t from_;
    uint32_t now_ = 1000;
    Side side_ = Side::Inside;
    bool expire_ = false;
    std::vector<std::unique_ptr<Pending>> burst_;
    std::map<void*, std::unique_ptr<Pending>> held_;
};

}  // namespace
}  // namespace snatgw::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    snatgw::fuzz::init_eal();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace snatgw;
    using namespace snatgw::fuzz;
    if (size == 0) return 0;
    Reader in(data, size);
    const uint8_t shape = in.u8();
    Run run(shape, in.u8());
    for (uint32_t frames = 0; !in.empty() && frames < kFramesMax; ++frames) {
        const uint8_t ctl = in.u8();
        const uint16_t len = in.u16();
        std::vector<uint8_t> frame = in.bytes(len);
        if (ctl & 0x02) fix_checksums(frame.data(), frame.size(), true, true);
        run.advance(kAdvanceMs[(ctl >> 2) & 7]);
        run.add((ctl & 1) ? Side::Outside : Side::Inside, std::move(frame), (ctl & 0x20) != 0);
        if (ctl & 0x80) run.want_expire();
        if (ctl & 0x40) run.flush();
    }
    run.finish();
    return 0;
}

// lookup/smimea_source.cpp — DNS SMIMEA lookups validated by libunbound (see smimea_source.hpp).
//
// One libunbound context per source, in thread mode (ub_ctx_async(ctx, 1)): queries are
// submitted with ub_resolve_async() from the calling threads; one event thread of ours polls
// ub_fd() and runs ub_process(), whose callbacks hand each result to the waiting caller by a
// slot in a map the source owns (never a pointer into the caller's stack: a late callback after
// a timeout erases its abandoned slot and frees the result). libunbound is never called with
// our lock held: ub_process() may hold libunbound's locks while it runs the callbacks, which
// take ours.
#include "lookup/smimea_source.hpp"

#include "base/ascii.hpp"
#include "base/encoding.hpp"
#include "base/file.hpp"
#include "base/handle.hpp"
#include "base/mutex.hpp"
#include "base/worker_thread.hpp"

#include <openssl/evp.h>
#include <poll.h>
#include <unbound.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <sstream>
#include <system_error>
#include <thread>

namespace sealmilter::lookup {
namespace {

using UbCtxPtr = std::unique_ptr<ub_ctx, base::Deleter<ub_ctx_delete>>;
using UbResultPtr = std::unique_ptr<ub_result, base::Deleter<ub_resolve_free>>;

constexpr int kTypeSmimea = 53;  // RFC 8162 §2
constexpr int kClassIn = 1;
constexpr int kRcodeNxdomain = 3;
constexpr size_t kOwnerHashOctets = 28;  // RFC 8162 §3: SHA-256 truncated to 28 octets
constexpr size_t kRememberedCertificates = 4096;

std::string sha256(std::string_view bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
    return {reinterpret_cast<const char*>(md), len};
}

bool dns_name_ok(std::string_view domain) {
    if (domain.empty() || domain.size() > 253) return false;
    size_t label = 0;
    for (const char c : domain) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x80 || !(std::isalnum(u) != 0 || c == '-' || c == '_')) return false;
        if (++label > 63) return false;
    }
    return label > 0;
}

std::string usage_name(int usage) {
    switch (usage) {
    case 0: return "usage 0 (PKIX-TA)";
    case 1: return "usage 1 (PKIX-EE)";
    case 2: return "usage 2 (DANE-TA)";
    case 3: return "usage 3 (DANE-EE)";
    default: return "usage " + std::to_string(usage);
    }
}

// Strips ';' and '#' comments of one zone-file line (DS and DNSKEY data holds neither).
std::string_view strip_comment(std::string_view line) {
    const size_t at = line.find_first_of(";#");
    return at == std::string_view::npos ? line : line.substr(0, at);
}

bool is_anchor_record(const std::string& record) {
    std::istringstream words(record);
    std::string w;
    while (words >> w) {
        if (base::iequals(w, "DS") || base::iequals(w, "DNSKEY")) return true;
    }
    return false;
}

}  // namespace

std::optional<std::string> smimea_owner_name(std::string_view address) {
    const size_t at = address.rfind('@');
    if (at == std::string_view::npos || at == 0) return std::nullopt;
    std::string domain = base::to_lower(address.substr(at + 1));
    if (!domain.empty() && domain.back() == '.') domain.pop_back();
    if (!dns_name_ok(domain)) return std::nullopt;
    const std::string digest = sha256(address.substr(0, at));
    if (digest.size() < kOwnerHashOctets) return std::nullopt;
    return base::to_hex(std::string_view(digest).substr(0, kOwnerHashOctets)) + "._smimecert." + domain;
}

std::optional<SmimeaRecord> parse_smimea_rdata(std::string_view rdata) {
    if (rdata.size() < 4) return std::nullopt;  // usage, selector, matching type, >= 1 data octet
    SmimeaRecord r;
    r.usage = static_cast<unsigned char>(rdata[0]);
    r.selector = static_cast<unsigned char>(rdata[1]);
    r.matching = static_cast<unsigned char>(rdata[2]);
    r.data = std::string(rdata.substr(3));
    return r;
}

SmimeaCandidates smimea_candidates(const std::vector<std::string>& rdatas) {
    SmimeaCandidates out;
    for (const std::string& rdata : rdatas) {
        const std::optional<SmimeaRecord> r = parse_smimea_rdata(rdata);
        if (!r) {
            out.ignored.emplace_back("a record shorter than 4 octets");
            continue;
        }
        const std::string what = usage_name(r->usage) + " selector " + std::to_string(r->selector) +
                                 " matching type " + std::to_string(r->matching);
        if (r->matching != 0) {
            out.ignored.push_back(what + ": a digest only confirms a certificate found elsewhere, never alone");
        } else if (r->selector != 0) {
            out.ignored.push_back(what + ": a bare public key (CMS needs a certificate)");
        } else if (r->usage != 1 && r->usage != 3) {
            out.ignored.push_back(what + ": a CA constraint, not a recipient certificate");
        } else {
            crypto::ParsedCertificates parsed = crypto::parse_certificates(r->data);
            if (parsed.certificates.size() != 1 || r->data.rfind("-----", 0) == 0) {
                out.ignored.push_back(what + ": not one DER certificate" +
                                      (parsed.error.empty() ? "" : " (" + parsed.error + ")"));
                continue;
            }
            out.certificates.push_back(std::move(parsed.certificates.front()));
            out.dane_ee.push_back(r->usage == 3);
        }
    }
    return out;
}

std::vector<std::string> read_trust_anchors(const std::string& path) {
    std::string text;
    try {
        text = base::read_file(path, size_t{1} << 20);
    } catch (const std::system_error& e) {
        throw SmimeaError("dns.trust_anchor: " + std::string(e.what()));
    }
    std::vector<std::string> records;
    std::string record;
    int depth = 0;  // open parentheses: a record continues on the next line
    int line_no = 0;
    int record_line = 0;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        ++line_no;
        const std::string_view body = base::trim(strip_comment(line));
        if (body.empty()) continue;
        if (record.empty()) record_line = line_no;
        for (const char c : body) {
            if (c == '(') ++depth;
            else if (c == ')') --depth;
            else record += c;
        }
        record += ' ';
        if (depth < 0) throw SmimeaError(path + ":" + std::to_string(line_no) + ": unbalanced ')'");
        if (depth > 0) continue;
        if (!is_anchor_record(record))
            throw SmimeaError(path + ":" + std::to_string(record_line) + ": not a DS or DNSKEY record");
        records.push_back(std::string(base::trim(record)));
        record.clear();
    }
    if (depth != 0) throw SmimeaError(path + ":" + std::to_string(record_line) + ": unclosed '('");
    if (records.empty()) throw SmimeaError("dns.trust_anchor: " + path + " holds no DS or DNSKEY record");
    return records;
}

struct SmimeaSource::Impl {
    // One outstanding query. Its map node is the callback's data (std::map nodes never move);
    // it is erased by the caller once done, or by the callback when the caller gave up.
    struct Slot {
        Impl* impl = nullptr;  // set before submission, then read-only
        bool done = false;
        bool abandoned = false;  // the caller timed out: the callback erases the slot
        int err = 0;
        UbResultPtr result;
    };

    SmimeaOptions options;
    UbCtxPtr ctx;
    base::Mutex mutex;
    std::condition_variable_any changed;  // a slot finished, or an in-flight place came free
    std::map<uint64_t, Slot> slots SEALMILTER_GUARDED_BY(mutex);
    uint64_t next_seq SEALMILTER_GUARDED_BY(mutex) = 1;
    // DANE-EE certificates by SHA-256 fingerprint (true) or published with usage 1 (false);
    // the oldest are forgotten first.
    std::map<std::string, bool> dane_ee SEALMILTER_GUARDED_BY(mutex);
    std::deque<std::string> dane_ee_order SEALMILTER_GUARDED_BY(mutex);
    std::atomic<bool> stopping{false};
    std::thread events;

    static void on_result(void* data, int err, ub_result* result);
    void run_events();
    void remember(const SmimeaCandidates& c);
    SourceAnswer interpret(const std::string& owner, int err, UbResultPtr result);
};

// Runs inside ub_process() on the event thread. A query stays outstanding (and counts
// against max_inflight) until its callback runs, even when its caller timed out: libunbound
// bounds its own retries, and an abandoned query must not let the count grow without limit.
void SmimeaSource::Impl::on_result(void* data, int err, ub_result* result) {
    UbResultPtr owned(result);
    auto* slot = static_cast<Slot*>(data);
    Impl* impl = slot->impl;
    const base::MutexLock lock(impl->mutex);
    if (slot->abandoned) {
        for (auto it = impl->slots.begin(); it != impl->slots.end(); ++it)
            if (&it->second == slot) {
                impl->slots.erase(it);
                break;
            }
    } else {
        slot->done = true;
        slot->err = err;
        slot->result = std::move(owned);
    }
    impl->changed.notify_all();
}

void SmimeaSource::Impl::run_events() {
    const int fd = ub_fd(ctx.get());
    while (!stopping.load()) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0 && (p.revents & POLLIN) != 0) ub_process(ctx.get());
    }
}

void SmimeaSource::Impl::remember(const SmimeaCandidates& c) {
    const base::MutexLock lock(mutex);
    for (size_t i = 0; i < c.certificates.size(); ++i) {
        const std::string fp = c.certificates[i].fingerprint_sha256();
        const auto [it, inserted] = dane_ee.insert_or_assign(fp, static_cast<bool>(c.dane_ee[i]));
        if (!inserted) continue;
        dane_ee_order.push_back(fp);
        if (dane_ee_order.size() > kRememberedCertificates) {
            dane_ee.erase(dane_ee_order.front());
            dane_ee_order.pop_front();
        }
    }
}

SourceAnswer SmimeaSource::Impl::interpret(const std::string& owner, int err, UbResultPtr result) {
    SourceAnswer a;
    a.outcome = Outcome::TempError;
    if (err != 0 || !result) {
        a.reason = owner + ": resolver error: " + ub_strerror(err);
        return a;
    }
    if (result->bogus != 0) {  // RFC 4035 §5.5: bogus data is never used, and never "none"
        a.reason = owner + ": DNSSEC bogus" +
                   (result->why_bogus != nullptr ? std::string(": ") + result->why_bogus : std::string());
        return a;
    }
    if (result->rcode != 0 && result->rcode != kRcodeNxdomain) {
        a.reason = owner + ": DNS rcode " + std::to_string(result->rcode) + " (server failure or refused)";
        return a;
    }
    a.outcome = Outcome::NotFound;
    if (result->secure == 0) {
        a.reason = owner + ": insecure answer (zone not signed or no DS): ignored";
        return a;
    }
    if (result->havedata == 0) {
        a.reason = owner + (result->nxdomain != 0 ? ": no such name (secure)" : ": no SMIMEA record (secure)");
        return a;
    }
    std::vector<std::string> rdatas;
    for (int i = 0; result->data[i] != nullptr; ++i)
        rdatas.emplace_back(result->data[i], static_cast<size_t>(result->len[i]));
    SmimeaCandidates c = smimea_candidates(rdatas);
    remember(c);
    std::string ignored;
    for (const std::string& why : c.ignored) ignored += (ignored.empty() ? "" : "; ") + why;
    if (c.certificates.empty()) {
        a.reason = owner + ": no usable SMIMEA record: " + ignored;
        return a;
    }
    a.outcome = Outcome::Found;
    a.candidates = std::move(c.certificates);
    a.max_age = result->ttl;
    if (!ignored.empty()) a.reason = "ignored: " + ignored;
    return a;
}

SmimeaSource::SmimeaSource(SmimeaOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->options = std::move(options);
    const std::vector<std::string> anchors = read_trust_anchors(impl_->options.trust_anchor_file);
    impl_->ctx.reset(ub_ctx_create());
    if (!impl_->ctx) throw SmimeaError("dns: ub_ctx_create failed");
    ub_ctx* ctx = impl_->ctx.get();
    auto check = [](int rc, const std::string& what) {
        if (rc != 0) throw SmimeaError(what + ": " + ub_strerror(rc));
    };
    for (const std::string& ta : anchors) check(ub_ctx_add_ta(ctx, ta.c_str()), "dns.trust_anchor");
    if (!impl_->options.forwarders.empty()) {
        // The forwarders may be on loopback (a local resolver, or a test's authoritative server).
        check(ub_ctx_set_option(ctx, "do-not-query-localhost:", "no"), "dns: do-not-query-localhost");
        for (const std::string& f : impl_->options.forwarders)
            check(ub_ctx_set_fwd(ctx, f.c_str()), "dns.forwarders: '" + f + "'");
    }
    check(ub_ctx_async(ctx, 1), "dns: ub_ctx_async");
    impl_->events = base::start_worker_thread([impl = impl_.get()] { impl->run_events(); });
}

SmimeaSource::~SmimeaSource() {
    impl_->stopping.store(true);
    if (impl_->events.joinable()) impl_->events.join();
    impl_->ctx.reset();
    // ub_ctx_delete (the handle's deleter, before the slots go) drops what is still
    // outstanding; the slots, their callback data, are ours and freed with the map.
}

bool SmimeaSource::vouches_for(const crypto::Certificate& candidate) const {
    const base::MutexLock lock(impl_->mutex);
    const auto it = impl_->dane_ee.find(candidate.fingerprint_sha256());
    return it != impl_->dane_ee.end() && it->second;
}

bool SmimeaSource::vouches_for_validity(const crypto::Certificate& candidate) const {
    return vouches_for(candidate);
}

SourceAnswer SmimeaSource::lookup(const Query& query) {
    return lookup_many({query}).front();
}

std::vector<SourceAnswer> SmimeaSource::lookup_many(const std::vector<Query>& queries) {
    Impl& im = *impl_;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(im.options.timeout_ms);
    std::vector<SourceAnswer> answers(queries.size());
    std::vector<Impl::Slot*> slots(queries.size(), nullptr);
    std::vector<uint64_t> seqs(queries.size(), 0);
    std::vector<std::string> owners(queries.size());
    for (size_t i = 0; i < queries.size(); ++i) {
        const std::optional<std::string> owner = smimea_owner_name(queries[i].written());
        if (!owner) {
            answers[i].outcome = Outcome::NotFound;
            answers[i].reason = "not an address with a DNS domain";
            continue;
        }
        owners[i] = *owner;
        {
            base::UniqueMutexLock lock(im.mutex);
            const bool room = im.changed.wait_until(lock, deadline, [&]() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS {
                return im.slots.size() < static_cast<size_t>(im.options.max_inflight);
            });
            if (!room) {
                answers[i].reason = owners[i] + ": " + std::to_string(im.options.max_inflight) +
                                    " DNS queries outstanding: no place within the timeout";
                continue;
            }
            seqs[i] = im.next_seq++;
            slots[i] = &im.slots[seqs[i]];
            slots[i]->impl = &im;
        }
        // Outside our lock: ub_resolve_async takes libunbound's locks, its callbacks ours.
        int async_id = 0;
        const int rc = ub_resolve_async(im.ctx.get(), owners[i].c_str(), kTypeSmimea, kClassIn, slots[i],
                                        &Impl::on_result, &async_id);
        if (rc != 0) {
            const base::MutexLock lock(im.mutex);
            slots[i]->done = true;
            slots[i]->err = rc;
        }
    }
    base::UniqueMutexLock lock(im.mutex);
    for (size_t i = 0; i < queries.size(); ++i) {
        if (slots[i] == nullptr) continue;
        Impl::Slot* slot = slots[i];
        im.changed.wait_until(lock, deadline, [&]() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS { return slot->done; });
        if (!slot->done) {
            slot->abandoned = true;  // its callback erases it
            answers[i].reason =
                owners[i] + ": no DNS answer within " + std::to_string(im.options.timeout_ms) + " ms";
            continue;
        }
        const int err = slot->err;
        UbResultPtr result = std::move(slot->result);
        im.slots.erase(seqs[i]);
        im.changed.notify_all();
        lock.unlock();
        answers[i] = im.interpret(owners[i], err, std::move(result));
        lock.lock();
    }
    return answers;
}

}  // namespace sealmilter::lookup

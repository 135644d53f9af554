// lookup/chain.cpp — ordered resolution with validation and caching (see chain.hpp).
#include "lookup/chain.hpp"

#include "base/worker_thread.hpp"
#include "lookup/issued_source.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <stdexcept>
#include <thread>

namespace sealmilter::lookup {
namespace {

bool shares_certificate(const std::vector<crypto::Certificate>& a, const std::vector<crypto::Certificate>& b) {
    for (const crypto::Certificate& x : a)
        for (const crypto::Certificate& y : b)
            if (x.fingerprint_sha256() == y.fingerprint_sha256()) return true;
    return false;
}

}  // namespace

struct Chain::Pending {
    LookupResult result;
    Query query;  // the address: normalised and as written
    bool done = false;
    bool had_error = false;
    std::vector<std::string> skip;     // sources with a fresh negative cache entry
    std::optional<CacheEntry> stale;   // an expired entry still servable on error
    // A fallback source's usable answer (the issued source), kept aside until every later
    // step has had its say; `superseded` is that source when a usable answer beat it.
    CertificateSource* fallback = nullptr;
    std::string fallback_step;
    std::vector<crypto::Certificate> fallback_selected;
    CertificateSource* superseded = nullptr;
};

// One source's share of a step: the addresses it is asked and its answers.
struct Chain::Asked {
    CertificateSource* source = nullptr;
    std::vector<Query> queries;
    std::vector<Pending*> pending;
    std::vector<SourceAnswer> answers;
    std::exception_ptr failure;  // a broken invariant in the source, rethrown on the caller's thread
    std::chrono::microseconds elapsed{0};  // how long lookup_many took (the lookup latency metric)
};

Chain::Chain(std::vector<std::string> order, std::vector<CertificateSource*> sources, const Validator& validator,
             CertificateCache* cache, EncryptTo encrypt_to, const base::Clock* clock)
    : order_(std::move(order)),
      sources_(std::move(sources)),
      validator_(validator),
      cache_(cache),
      encrypt_to_(encrypt_to),
      clock_(clock) {
    for (const std::string& step : order_)
        if (step != "cache" && source_named(step) == nullptr)
            throw std::invalid_argument("lookup.order names '" + step + "' but no such source is configured");
}

CertificateSource* Chain::source_named(const std::string& name) const {
    auto it = std::find_if(sources_.begin(), sources_.end(), [&](CertificateSource* s) { return s->name() == name; });
    return it == sources_.end() ? nullptr : *it;
}

// `origin` (may be null) is the source the candidates came from; it decides per candidate
// whether it vouches for it (no chain check).
bool Chain::use_candidates(Pending& p, StepTrace& trace, const std::vector<crypto::Certificate>& candidates,
                           const CertificateSource* origin) const {
    std::vector<bool> vouched(candidates.size(), false);
    std::vector<bool> dates_vouched(candidates.size(), false);
    if (origin != nullptr)
        for (size_t i = 0; i < candidates.size(); ++i) {
            vouched[i] = origin->vouches_for(candidates[i]);
            dates_vouched[i] = vouched[i] && origin->vouches_for_validity(candidates[i]);
        }
    trace.verdicts = validator_.validate(p.result.email, candidates, vouched, dates_vouched);
    // A certificate our CA issued and then revoked (or retired) may still come back from
    // another source (issue.publish put it into the directory; a cache filled before): never
    // used again, whichever step found it.
    for (CertificateSource* s : sources_) {
        const auto* issued = dynamic_cast<const IssuedSource*>(s);
        if (issued == nullptr || issued == origin) continue;
        for (Verdict& v : trace.verdicts)
            if (v.usable && issued->withdrawn(p.result.email, v.cert)) {
                v.usable = false;
                v.reason = "issued by our CA and withdrawn (revoked or retired)";
            }
    }
    std::vector<crypto::Certificate> usable = select(trace.verdicts, encrypt_to_);
    if (usable.empty()) {
        trace.reason = "no usable certificate among " + std::to_string(candidates.size()) + " candidate(s)";
        for (const Verdict& v : trace.verdicts)  // every rejection, with why (SPEC §6)
            trace.reason += "; " + v.cert.fingerprint_sha256().substr(0, 23) + "...: " + v.reason;
        return false;
    }
    p.result.selected = std::move(usable);
    p.result.outcome = Outcome::Found;
    p.result.source = trace.step;
    p.done = true;
    return true;
}

void Chain::cache_step(std::vector<Pending>& pending) const {
    if (cache_ == nullptr) return;
    const std::time_t now = base::now_from(clock_);
    for (Pending& p : pending) {
        if (p.done) continue;
        std::optional<CacheEntry> entry = cache_->get(p.result.email);
        StepTrace trace{"cache", Outcome::NotFound, {}, {}, {}};
        if (!entry) {  // a miss: recorded without a reason (it explains nothing), metrics count it
            p.result.trace.push_back(std::move(trace));
            continue;
        }
        if (!entry->fresh(now)) {
            trace.reason = "stale entry from " + entry->source + " (revalidating)";
            if (entry->servable_stale(now)) p.stale = std::move(entry);
        } else if (entry->negative) {
            trace.reason = "negative entry from " + entry->source + ": " + entry->reason;
            p.skip.push_back(entry->source);
        } else {
            trace.outcome = Outcome::Found;
            if (!use_candidates(p, trace, entry->certificates, source_named(entry->source)))
                trace.outcome = Outcome::NotFound;
        }
        p.result.trace.push_back(std::move(trace));
    }
}

void Chain::take_answer(CertificateSource& source, Pending& p, SourceAnswer& a,
                        std::chrono::microseconds elapsed) const {
    const SourceProperties props = source.properties();
    StepTrace trace{source.name(), a.outcome, a.reason, {}, elapsed};
    if (p.done) {  // asked in parallel with a source of higher priority that answered
        trace.reason = "not used: " + p.result.source + " has priority" + (a.reason.empty() ? "" : " (" + a.reason + ")");
        if (a.outcome == Outcome::Found) trace.reason += ", " + std::to_string(a.candidates.size()) + " candidate(s)";
        // Only a different certificate is the recipient's own: the same one (published to the
        // directory, or imported into the store) found by the higher-priority source retires nothing.
        if (a.outcome == Outcome::Found && props.fallback && p.result.outcome == Outcome::Found &&
            !shares_certificate(a.candidates, p.result.selected))
            p.superseded = &source;
    } else if (a.outcome == Outcome::Found && props.fallback) {
        hold_fallback(source, p, trace, a.candidates);
    } else if (a.outcome == Outcome::Found && a.not_modified && p.stale && !p.stale->negative) {
        trace.reason = "not modified (cached certificates revalidated)";
        if (use_candidates(p, trace, p.stale->certificates, &source) && cache_ != nullptr)
            cache_->revalidated(p.result.email, a.max_age);
    } else if (a.outcome == Outcome::Found && !a.not_modified) {
        const bool used = use_candidates(p, trace, a.candidates, &source);
        if (used) p.result.capabilities = a.capabilities;
        // Local sources (the admin's store, harvested certificates) declare themselves not
        // cacheable: caching a harvested answer would also put it ahead of the directory.
        if (used && cache_ != nullptr && props.cacheable)
            cache_->put_positive(p.result.email, p.result.selected, source.name(), a.max_age, a.stale_if_error,
                                 a.etag);
    } else if (a.outcome == Outcome::NotFound) {
        // Only a definite answer (the directory's 404/410) is worth remembering.
        if (cache_ != nullptr && props.negative_authoritative)
            cache_->put_negative(p.result.email, source.name(), a.reason);
    } else {
        p.had_error = true;
        if (a.outcome == Outcome::Found) trace.reason = "304 without a cached entry";
    }
    p.result.trace.push_back(std::move(trace));
}

// A fallback source's usable certificates wait in `p` (the later steps still run); the trace
// says so. An unusable answer is traced like any other.
void Chain::hold_fallback(CertificateSource& source, Pending& p, StepTrace& trace,
                          const std::vector<crypto::Certificate>& candidates) const {
    if (!use_candidates(p, trace, candidates, &source)) return;
    p.fallback = &source;
    p.fallback_step = trace.step;
    p.fallback_selected = std::move(p.result.selected);
    p.result.selected.clear();
    p.result.outcome = Outcome::TempError;
    p.result.source.clear();
    p.done = false;
    trace.reason = "held: used only when no later step has a usable certificate";
}

Chain::Asked Chain::prepare(CertificateSource& source, std::vector<Pending>& pending) const {
    Asked asked;
    asked.source = &source;
    for (Pending& p : pending) {
        if (p.done || std::find(p.skip.begin(), p.skip.end(), source.name()) != p.skip.end()) continue;
        Query q = p.query;
        if (p.stale && !p.stale->negative && p.stale->source == source.name()) q.if_none_match = p.stale->etag;
        asked.queries.push_back(std::move(q));
        asked.pending.push_back(&p);
    }
    return asked;
}

void Chain::take_answers(Asked& asked) const {
    CertificateSource& source = *asked.source;
    for (size_t i = 0; i < asked.pending.size() && i < asked.answers.size(); ++i)
        take_answer(source, *asked.pending[i], asked.answers[i], asked.elapsed);
    for (size_t i = asked.answers.size(); i < asked.pending.size(); ++i) {  // a source that answered short
        asked.pending[i]->had_error = true;
        asked.pending[i]->result.trace.push_back({source.name(), Outcome::TempError, "no answer", {}, asked.elapsed});
    }
}

// Consecutive sources are asked at once, each on its own thread (the first on the caller's);
// their answers are then taken in configured priority, so the first usable one wins whichever
// came back first. Each source bounds its own time (timeouts), so the step lasts as long as
// the slowest source, not their sum.
void Chain::sources_step(const std::vector<CertificateSource*>& sources, std::vector<Pending>& pending) const {
    std::vector<Asked> asked;
    for (CertificateSource* source : sources) {
        Asked a = prepare(*source, pending);
        if (!a.queries.empty()) asked.push_back(std::move(a));
    }
    auto ask = [](Asked& a) {
        try {
            const auto started = std::chrono::steady_clock::now();
            a.answers = a.source->lookup_many(a.queries);
            a.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        } catch (...) {
            a.failure = std::current_exception();
        }
    };
    std::vector<std::thread> threads;
    for (size_t i = 1; i < asked.size(); ++i) threads.push_back(base::start_worker_thread([&ask, &a = asked[i]] { ask(a); }));
    if (!asked.empty()) ask(asked.front());
    for (std::thread& t : threads) t.join();
    for (Asked& a : asked)
        if (a.failure) std::rethrow_exception(a.failure);
    for (Asked& a : asked) take_answers(a);
}

// After every step: a stale entry when a source failed, else the final outcome and why.
void Chain::finish(Pending& p) const {
    // A stale negative entry never hides a held fallback answer.
    if (!p.done && p.had_error && p.stale && !(p.stale->negative && p.fallback != nullptr)) {
        StepTrace trace{"cache (stale)", p.stale->negative ? Outcome::NotFound : Outcome::Found,
                        "served stale because a source failed", {}, {}};
        if (p.stale->negative) {
            p.result.outcome = Outcome::NotFound;
            p.result.source = "cache (stale)";
            p.result.reason = p.stale->reason;
            p.done = true;
        } else {
            use_candidates(p, trace, p.stale->certificates, source_named(p.stale->source));
        }
        p.result.trace.push_back(std::move(trace));
    }
    // A later step that found the fallback's own certificate (our issued certificate harvested
    // from the recipient's signed reply, or published to the directory) is no certificate of the
    // recipient's own: the issued one stays current.
    if (p.done && p.result.outcome == Outcome::Found && p.fallback != nullptr &&
        !shares_certificate(p.result.selected, p.fallback_selected))
        p.superseded = p.fallback;
    if (p.superseded != nullptr) p.superseded->superseded(p.query, p.result.source);
    if (p.done) return;
    if (p.fallback != nullptr) {  // nothing later was usable: the fallback answers
        p.result.outcome = Outcome::Found;
        p.result.source = p.fallback_step;
        p.result.selected = std::move(p.fallback_selected);
        p.done = true;
        return;
    }
    p.result.outcome = p.had_error ? Outcome::TempError : Outcome::NotFound;
    std::string why;
    for (const StepTrace& t : p.result.trace)
        if (!t.reason.empty()) why += (why.empty() ? "" : "; ") + t.step + ": " + t.reason;
    p.result.reason = why.empty() ? "no source has a certificate" : why;
}

std::vector<LookupResult> Chain::resolve(const std::vector<std::string>& emails) const {
    std::vector<Pending> pending(emails.size());
    for (size_t i = 0; i < emails.size(); ++i) {
        pending[i].query = make_query(emails[i]);
        pending[i].result.email = pending[i].query.email;
        pending[i].result.as_written = emails[i];
    }
    std::vector<CertificateSource*> group;  // consecutive sources, asked in parallel
    for (const std::string& step : order_) {
        if (step == "cache") {
            if (!group.empty()) sources_step(group, pending);
            group.clear();
            cache_step(pending);
        } else {
            group.push_back(source_named(step));
        }
    }
    if (!group.empty()) sources_step(group, pending);
    std::vector<LookupResult> out;
    out.reserve(pending.size());
    for (Pending& p : pending) {
        finish(p);
        out.push_back(std::move(p.result));
    }
    return out;
}

}  // namespace sealmilter::lookup

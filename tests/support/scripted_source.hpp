// tests/support/scripted_source.hpp — a CertificateSource that answers from a table and
// records how it was asked (unknown addresses: NotFound "HTTP 404"). It vouches for every
// candidate so tests of the chain and the milter need no PKI (the Validator has its own
// tests), and declares the properties it is given (by default those of a directory:
// cacheable, negative answers authoritative).
#pragma once

#include "base/mutex.hpp"
#include "lookup/source.hpp"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sealmilter::testing {

class ScriptedSource final : public lookup::CertificateSource {
public:
    explicit ScriptedSource(std::string name,
                            lookup::SourceProperties properties = {.cacheable = true, .negative_authoritative = true},
                            bool vouches = true)
        : name_(std::move(name)), properties_(properties), vouches_(vouches) {}
    std::string name() const override { return name_; }
    lookup::SourceProperties properties() const override { return properties_; }
    bool vouches_for(const crypto::Certificate& /*candidate*/) const override { return vouches_; }
    lookup::SourceAnswer lookup(const lookup::Query& q) override {
        const base::MutexLock lock(mutex_);
        ++calls;
        queries.push_back(q);
        auto it = answers.find(q.email);
        if (it != answers.end()) return it->second;
        lookup::SourceAnswer a;
        a.outcome = lookup::Outcome::NotFound;
        a.reason = "HTTP 404";
        return a;
    }
    std::vector<lookup::SourceAnswer> lookup_many(const std::vector<lookup::Query>& qs) override {
        {
            const base::MutexLock lock(mutex_);
            ++batches;
            batch_sizes.push_back(qs.size());
            if (on_batch) on_batch(qs);
        }
        return CertificateSource::lookup_many(qs);
    }
    // Set before lookups start; read after they end. on_batch runs under the source's lock
    // (it may block to hold a batch, or throw to simulate a broken invariant).
    std::map<std::string, lookup::SourceAnswer> answers;
    std::function<void(const std::vector<lookup::Query>&)> on_batch;
    std::vector<lookup::Query> queries;
    std::vector<size_t> batch_sizes;
    int calls = 0;
    int batches = 0;

private:
    std::string name_;
    lookup::SourceProperties properties_;
    bool vouches_;
    base::Mutex mutex_;
};

}  // namespace sealmilter::testing

// tests/support/scripted_source.hpp — a CertificateSource that answers from a table and
// records how it was asked (unknown addresses: NotFound "HTTP 404"). trusted() is true so
// tests of the chain and the milter need no PKI; the Validator has its own tests.
#pragma once

#include "lookup/source.hpp"

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sealmilter::testing {

class ScriptedSource final : public lookup::CertificateSource {
public:
    explicit ScriptedSource(std::string name) : name_(std::move(name)) {}
    std::string name() const override { return name_; }
    bool trusted() const override { return true; }
    lookup::SourceAnswer lookup(const lookup::Query& q) override {
        const std::lock_guard<std::mutex> lock(mutex_);
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
            const std::lock_guard<std::mutex> lock(mutex_);
            ++batches;
        }
        return CertificateSource::lookup_many(qs);
    }
    // Set before lookups start; read after they end.
    std::map<std::string, lookup::SourceAnswer> answers;
    std::vector<lookup::Query> queries;
    int calls = 0;
    int batches = 0;

private:
    std::string name_;
    std::mutex mutex_;
};

}  // namespace sealmilter::testing

// The Chain: order, validation of every candidate, caching (positive, negative, stale,
// revalidation) and batching, with scripted sources, a real SQLite cache and a manual clock.
#include "lookup/cache.hpp"
#include "lookup/chain.hpp"
#include "lookup/store.hpp"
#include "tests/support/manual_clock.hpp"
#include "tests/support/scripted_source.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace lookup = sealmilter::lookup;
namespace crypto = sealmilter::crypto;
using sealmilter::testing::ScriptedSource;
using sealmilter::testing::make_identity;

namespace {

using sealmilter::testing::ManualClock;

lookup::SourceAnswer found(const crypto::Certificate& c, std::string etag = {}) {
    lookup::SourceAnswer a;
    a.outcome = lookup::Outcome::Found;
    a.candidates = {c};
    a.max_age = 600;
    a.etag = std::move(etag);
    return a;
}

lookup::SourceAnswer answer(lookup::Outcome o, std::string reason) {
    lookup::SourceAnswer a;
    a.outcome = o;
    a.reason = std::move(reason);
    return a;
}

class ChainTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("sealmilter-chain-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_ / "store");
        lookup::CacheOptions co;
        co.path = (dir_ / "cache.db").string();
        co.min_ttl = 300;
        co.max_ttl = 3600;
        co.negative_ttl = 120;
        co.max_stale = 86400;
        co.clock = &clock_;
        cache_ = std::make_unique<lookup::SqliteCache>(co);
        lookup::ValidatorOptions vo;
        vo.clock = &clock_;
        validator_ = std::make_unique<lookup::Validator>(vo);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    lookup::Chain chain(std::vector<std::string> order, std::vector<lookup::CertificateSource*> sources) {
        return lookup::Chain(std::move(order), std::move(sources), *validator_, cache_.get(),
                             lookup::EncryptTo::AllValid, &clock_);
    }

    ManualClock clock_;
    std::filesystem::path dir_;
    std::unique_ptr<lookup::SqliteCache> cache_;
    std::unique_ptr<lookup::Validator> validator_;
    ScriptedSource directory_{"directory"};
};

TEST_F(ChainTest, DirectoryAnswerIsValidatedCachedAndServedFromCache) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    directory_.answers["bob@partner.example"] = found(bob.cert, "\"v1\"");
    auto c = chain({"cache", "directory"}, {&directory_});
    auto r = c.resolve({"Bob@Partner.Example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(r[0].source, "directory");
    ASSERT_EQ(r[0].selected.size(), 1u);
    EXPECT_EQ(r[0].selected[0].fingerprint_sha256(), bob.cert.fingerprint_sha256());
    r = c.resolve({"bob@partner.example"});
    EXPECT_EQ(r[0].outcome, lookup::Outcome::Found);
    EXPECT_EQ(r[0].source, "cache");
    EXPECT_EQ(directory_.calls, 1);
}

TEST_F(ChainTest, WrongAddressFromDirectoryIsRejectedAndNeverCached) {
    const auto eve = make_identity({.email = "eve@evil.example"});
    directory_.answers["bob@partner.example"] = found(eve.cert);
    auto c = chain({"cache", "directory"}, {&directory_});
    auto r = c.resolve({"bob@partner.example"});
    EXPECT_EQ(r[0].outcome, lookup::Outcome::NotFound);
    ASSERT_FALSE(r[0].trace.empty());
    ASSERT_EQ(r[0].trace.back().verdicts.size(), 1u);
    EXPECT_FALSE(r[0].trace.back().verdicts[0].usable);
    EXPECT_FALSE(r[0].trace.back().verdicts[0].reason.empty());
    EXPECT_FALSE(cache_->get("bob@partner.example").has_value());
}

TEST_F(ChainTest, AuthoritativeNegativeIsCachedAndSkipsTheDirectory) {
    directory_.answers["gone@partner.example"] = answer(lookup::Outcome::NotFound, "HTTP 410 (opted out)");
    auto c = chain({"cache", "directory"}, {&directory_});
    EXPECT_EQ(c.resolve({"gone@partner.example"})[0].outcome, lookup::Outcome::NotFound);
    EXPECT_EQ(c.resolve({"gone@partner.example"})[0].outcome, lookup::Outcome::NotFound);
    EXPECT_EQ(directory_.calls, 1);
    clock_.t += 121;  // negative_ttl passed: asked again
    c.resolve({"gone@partner.example"});
    EXPECT_EQ(directory_.calls, 2);
}

TEST_F(ChainTest, SourceErrorWithoutCacheIsTempError) {
    directory_.answers["bob@partner.example"] = answer(lookup::Outcome::TempError, "HTTP 503");
    auto c = chain({"cache", "directory"}, {&directory_});
    const auto r = c.resolve({"bob@partner.example"});
    EXPECT_EQ(r[0].outcome, lookup::Outcome::TempError);
    EXPECT_NE(r[0].reason.find("HTTP 503"), std::string::npos);
}

TEST_F(ChainTest, StaleEntryServedWhileTheDirectoryFails) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    directory_.answers["bob@partner.example"] = found(bob.cert);
    auto c = chain({"cache", "directory"}, {&directory_});
    ASSERT_EQ(c.resolve({"bob@partner.example"})[0].outcome, lookup::Outcome::Found);
    clock_.t += 700;  // past max-age 600: stale
    directory_.answers["bob@partner.example"] = answer(lookup::Outcome::TempError, "timeout");
    const auto r = c.resolve({"bob@partner.example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(r[0].source, "cache (stale)");
    clock_.t += 90000;  // beyond max_stale: no longer served
    EXPECT_EQ(c.resolve({"bob@partner.example"})[0].outcome, lookup::Outcome::TempError);
}

TEST_F(ChainTest, StaleEntryRevalidatedWithEtag) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    directory_.answers["bob@partner.example"] = found(bob.cert, "\"abc\"");
    auto c = chain({"cache", "directory"}, {&directory_});
    c.resolve({"bob@partner.example"});
    clock_.t += 700;
    lookup::SourceAnswer not_modified;
    not_modified.outcome = lookup::Outcome::Found;
    not_modified.not_modified = true;
    not_modified.max_age = 600;
    directory_.answers["bob@partner.example"] = not_modified;
    const auto r = c.resolve({"bob@partner.example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(directory_.queries.back().if_none_match, "\"abc\"");
    ASSERT_TRUE(cache_->get("bob@partner.example").has_value());
    EXPECT_TRUE(cache_->get("bob@partner.example")->fresh(clock_.now()));
}

TEST_F(ChainTest, StoreAnswersFirstAndIsNotCached) {
    const auto alice = make_identity({.email = "alice@partner.example"});
    {
        std::ofstream f(dir_ / "store" / "alice.pem");
        crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
        PEM_write_bio_X509(mem.get(), alice.cert.native());
        char* data = nullptr;
        const long n = BIO_get_mem_data(mem.get(), &data);
        f.write(data, n);
    }
    std::ofstream(dir_ / "store" / "junk.pem") << "not a certificate";
    lookup::StoreSource store((dir_ / "store").string());
    EXPECT_EQ(store.size(), 1u);
    EXPECT_EQ(store.problems().size(), 1u);
    // The store is a local, admin-pinned source that vouches for nothing, so its certificate must
    // chain: this self-signed test certificate does not, and is rejected with a reason.
    auto c = chain({"store", "cache", "directory"}, {&store, &directory_});
    const auto r = c.resolve({"ALICE@partner.example"});
    ASSERT_FALSE(r[0].trace.empty());
    EXPECT_EQ(r[0].trace[0].step, "store");
    ASSERT_EQ(r[0].trace[0].verdicts.size(), 1u);
    EXPECT_NE(r[0].trace[0].verdicts[0].reason.find("chain"), std::string::npos) << r[0].trace[0].verdicts[0].reason;
    EXPECT_EQ(directory_.calls, 1);  // went on to the directory
}

TEST_F(ChainTest, OneBatchPerSourceForManyRecipients) {
    std::vector<std::string> emails;
    for (int i = 0; i < 50; ++i) {
        const std::string e = "r" + std::to_string(i) + "@partner.example";
        emails.push_back(e);
        if (i % 2 == 0) directory_.answers[e] = found(make_identity({.email = e, .key = "ec-p256"}).cert);
    }
    auto c = chain({"cache", "directory"}, {&directory_});
    const auto r = c.resolve(emails);
    ASSERT_EQ(r.size(), 50u);
    EXPECT_EQ(directory_.batches, 1);
    EXPECT_EQ(directory_.calls, 50);
    for (int i = 0; i < 50; ++i)
        EXPECT_EQ(r[static_cast<size_t>(i)].outcome, i % 2 == 0 ? lookup::Outcome::Found : lookup::Outcome::NotFound) << i;
}

TEST_F(ChainTest, UnknownStepIsAConfigurationError) {
    EXPECT_THROW(chain({"ldap"}, {&directory_}), std::invalid_argument);
}

}  // namespace

// What a source declares, not its name, decides caching: a non-cacheable source's answer and
// a non-authoritative NotFound leave the cache untouched; a source of any name that declares
// itself cacheable and authoritative is cached like the directory.
TEST_F(ChainTest, PropertiesNotNamesDecideCaching) {
    const auto bob = make_identity({.email = "bob@partner.example"});
    ScriptedSource local("directory", {.cacheable = false, .negative_authoritative = false});
    local.answers["bob@partner.example"] = found(bob.cert);
    auto c1 = chain({"cache", "directory"}, {&local});
    ASSERT_EQ(c1.resolve({"bob@partner.example"})[0].outcome, lookup::Outcome::Found);
    EXPECT_EQ(c1.resolve({"nobody@partner.example"})[0].outcome, lookup::Outcome::NotFound);
    EXPECT_FALSE(cache_->get("bob@partner.example").has_value());
    EXPECT_FALSE(cache_->get("nobody@partner.example").has_value());

    ScriptedSource ldap("ldap");  // cacheable, authoritative (ScriptedSource's default)
    ldap.answers["bob@partner.example"] = found(bob.cert);
    auto c2 = chain({"cache", "ldap"}, {&ldap});
    ASSERT_EQ(c2.resolve({"bob@partner.example"})[0].outcome, lookup::Outcome::Found);
    c2.resolve({"nobody@partner.example"});
    ASSERT_TRUE(cache_->get("bob@partner.example").has_value());
    EXPECT_EQ(cache_->get("bob@partner.example")->source, "ldap");
    ASSERT_TRUE(cache_->get("nobody@partner.example").has_value());
    EXPECT_TRUE(cache_->get("nobody@partner.example")->negative);
}

// Trust is decided per candidate by the source that gave it, also when the candidate comes
// back from the cache: only the chain check is skipped for a vouched candidate.
TEST_F(ChainTest, OnlyVouchedCandidatesSkipTheChainCheck) {
    const auto bob = make_identity({.email = "bob@partner.example"});  // self-signed: no chain
    ScriptedSource unvouched("directory", {.cacheable = true, .negative_authoritative = true}, false);
    unvouched.answers["bob@partner.example"] = found(bob.cert);
    auto c1 = chain({"directory"}, {&unvouched});
    const auto r1 = c1.resolve({"bob@partner.example"});
    EXPECT_EQ(r1[0].outcome, lookup::Outcome::NotFound);
    ASSERT_EQ(r1[0].trace.back().verdicts.size(), 1u);
    EXPECT_NE(r1[0].trace.back().verdicts[0].reason.find("chain"), std::string::npos);

    directory_.answers["bob@partner.example"] = found(bob.cert);  // vouches for its candidates
    auto c2 = chain({"cache", "directory"}, {&directory_});
    ASSERT_EQ(c2.resolve({"bob@partner.example"})[0].outcome, lookup::Outcome::Found);
    const auto cached = c2.resolve({"bob@partner.example"});  // from the cache, vouched by its origin
    EXPECT_EQ(cached[0].outcome, lookup::Outcome::Found);
    EXPECT_EQ(cached[0].source, "cache");
    // The same cache entry read through a chain whose "directory" vouches for nothing.
    auto c3 = chain({"cache", "directory"}, {&unvouched});
    EXPECT_NE(c3.resolve({"bob@partner.example"})[0].source, "cache");
}

// The query carries the address as written beside its normalised form; the result keeps
// what the caller gave.
TEST_F(ChainTest, QueryCarriesTheAddressAsWritten) {
    auto c = chain({"directory"}, {&directory_});
    const auto r = c.resolve({"Bob.Smith@Partner.Example"});
    EXPECT_EQ(r[0].email, "bob.smith@partner.example");
    EXPECT_EQ(r[0].as_written, "Bob.Smith@Partner.Example");
    ASSERT_EQ(directory_.queries.size(), 1u);
    EXPECT_EQ(directory_.queries[0].email, "bob.smith@partner.example");
    EXPECT_EQ(directory_.queries[0].written(), "Bob.Smith@Partner.Example");
}

// Part 3 of issue 14: consecutive sources are asked at once. Each scripted source holds its
// batch until the other has started its own (bounded): asked one after the other, the first
// would wait out the bound alone and see only itself.
TEST_F(ChainTest, ConsecutiveSourcesAreAskedAtOnce) {
    ScriptedSource dns("dns", {}, true);
    std::atomic<int> started{0};
    std::atomic<int> saw_both{0};
    auto hold = [&](const std::vector<lookup::Query>&) {
        ++started;
        for (int i = 0; i < 5000 && started.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (started.load() == 2) ++saw_both;
    };
    directory_.on_batch = hold;
    dns.on_batch = hold;
    auto c = chain({"cache", "directory", "dns"}, {&directory_, &dns});
    const auto r = c.resolve({"bob@partner.example"});
    EXPECT_EQ(saw_both.load(), 2);
    EXPECT_EQ(directory_.calls, 1);
    EXPECT_EQ(dns.calls, 1);
    EXPECT_EQ(r[0].outcome, lookup::Outcome::NotFound);  // both said "none"
}

// No usable certificate and one source failed: a failure, whichever said "none" and in any
// order; a usable answer from any source still wins over another's failure.
TEST_F(ChainTest, AFailureBesideANoneIsAFailure) {
    for (const bool dns_first : {false, true}) {
        ScriptedSource dns("dns", {}, true);
        dns.answers["bob@partner.example"] = answer(lookup::Outcome::TempError, "DNSSEC bogus");
        dns.answers["carol@partner.example"] = answer(lookup::Outcome::TempError, "timeout");
        directory_.answers["carol@partner.example"] = found(make_identity({.email = "carol@partner.example"}).cert);
        auto c = dns_first ? chain({"dns", "directory"}, {&directory_, &dns})
                           : chain({"directory", "dns"}, {&directory_, &dns});
        const auto r = c.resolve({"bob@partner.example", "carol@partner.example"});
        EXPECT_EQ(r[0].outcome, lookup::Outcome::TempError) << dns_first << " " << r[0].reason;
        EXPECT_NE(r[0].reason.find("DNSSEC bogus"), std::string::npos) << r[0].reason;
        EXPECT_EQ(r[1].outcome, lookup::Outcome::Found) << dns_first << " " << r[1].reason;
        EXPECT_EQ(r[1].source, "directory");
        cache_->purge_all();
    }
}

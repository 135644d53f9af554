// The `issued` source and the Chain's fallback rule (issue 13, docs/issuing.md): an issued
// certificate answers only when no later step has a usable one, a cached negative or a
// directory 404 never hides it, the recipient's own certificate wins and retires it; with
// scripted sources, a real SQLite cache and a manual clock.
#include "lookup/cache.hpp"
#include "lookup/chain.hpp"
#include "lookup/issued_source.hpp"
#include "lookup/settings.hpp"
#include "tests/support/manual_clock.hpp"
#include "tests/support/scripted_source.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <set>

#include <filesystem>
#include <map>
#include <mutex>
#include <unistd.h>

namespace lookup = sealmilter::lookup;
namespace crypto = sealmilter::crypto;
using sealmilter::testing::make_identity;
using sealmilter::testing::ScriptedSource;

namespace {

using sealmilter::testing::ManualClock;

// What the issuer would answer: a certificate per address, and who was retired and why.
class FakeIssued final : public lookup::IssuedCertificates {
public:
    std::optional<crypto::Certificate> current(std::string_view address) const override {
        const std::lock_guard<std::mutex> lock(mu_);
        const auto it = certs.find(std::string(address));
        if (it == certs.end()) return std::nullopt;
        return it->second;
    }
    void superseded(std::string_view address, const std::string& reason) override {
        const std::lock_guard<std::mutex> lock(mu_);
        retired[std::string(address)] = reason;
        certs.erase(std::string(address));
    }
    bool withdrawn(std::string_view /*address*/, const crypto::Certificate& candidate) const override {
        const std::lock_guard<std::mutex> lock(mu_);
        return withdrawn_fingerprints.count(candidate.fingerprint_sha256()) != 0;
    }
    std::map<std::string, crypto::Certificate> certs;
    std::map<std::string, std::string> retired;
    std::set<std::string> withdrawn_fingerprints;

private:
    mutable std::mutex mu_;
};

lookup::SourceAnswer found(const crypto::Certificate& c) {
    lookup::SourceAnswer a;
    a.outcome = lookup::Outcome::Found;
    a.candidates = {c};
    a.max_age = 600;
    return a;
}

lookup::SourceAnswer answer(lookup::Outcome o, std::string reason) {
    lookup::SourceAnswer a;
    a.outcome = o;
    a.reason = std::move(reason);
    return a;
}

class IssuedSourceTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("sealmilter-issued-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        lookup::CacheOptions co;
        co.path = (dir_ / "cache.db").string();
        co.min_ttl = 300;
        co.max_ttl = 3600;
        co.negative_ttl = 3600;
        co.max_stale = 86400;
        co.clock = &clock_;
        cache_ = std::make_unique<lookup::SqliteCache>(co);
        lookup::ValidatorOptions vo;
        vo.clock = &clock_;
        validator_ = std::make_unique<lookup::Validator>(vo);
        issued_ = std::make_shared<FakeIssued>();
        source_ = std::make_unique<lookup::IssuedSource>(issued_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    // The default order: store, issued, cache, directory, harvest (store and harvest omitted).
    lookup::Chain chain(std::vector<std::string> order = {"issued", "cache", "directory"}) {
        return lookup::Chain(std::move(order), {source_.get(), &directory_, &store_}, *validator_, cache_.get(),
                             lookup::EncryptTo::AllValid, &clock_);
    }

    ManualClock clock_;
    std::filesystem::path dir_;
    std::unique_ptr<lookup::SqliteCache> cache_;
    std::unique_ptr<lookup::Validator> validator_;
    std::shared_ptr<FakeIssued> issued_;
    std::unique_ptr<lookup::IssuedSource> source_;
    ScriptedSource directory_{"directory"};
    ScriptedSource store_{"store", {}};
};

TEST_F(IssuedSourceTest, IssuedAnswersWhenTheDirectorySaysNotFoundAndIsNeverCached) {
    const auto ours = make_identity({.email = "new@customer.example"});
    issued_->certs.insert_or_assign("new@customer.example", ours.cert);
    auto c = chain();
    const auto r = c.resolve({"New@Customer.Example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(r[0].source, "issued");
    ASSERT_EQ(r[0].selected.size(), 1u);
    EXPECT_EQ(r[0].selected[0].fingerprint_sha256(), ours.cert.fingerprint_sha256());
    EXPECT_EQ(directory_.calls, 1);  // the directory is still asked: the recipient's own may appear
    EXPECT_TRUE(issued_->retired.empty());
    const auto entry = cache_->get("new@customer.example");
    ASSERT_TRUE(entry.has_value());  // only the directory's negative
    EXPECT_TRUE(entry->negative);
    EXPECT_EQ(entry->source, "directory");
}

TEST_F(IssuedSourceTest, ACachedNegativeNeverHidesTheIssuedCertificate) {
    auto c = chain();
    auto r = c.resolve({"new@customer.example"});  // before issuance: a definite miss, negative-cached
    EXPECT_EQ(r[0].outcome, lookup::Outcome::NotFound);
    ASSERT_TRUE(cache_->get("new@customer.example").has_value());
    const auto ours = make_identity({.email = "new@customer.example"});
    issued_->certs.insert_or_assign("new@customer.example", ours.cert);
    r = c.resolve({"new@customer.example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(r[0].source, "issued");
    EXPECT_EQ(directory_.calls, 1);  // the fresh negative entry still skips the directory
}

TEST_F(IssuedSourceTest, TheRecipientsOwnCertificateWinsAndRetiresTheIssuedOne) {
    const auto ours = make_identity({.email = "new@customer.example"});
    const auto own = make_identity({.email = "new@customer.example"});
    issued_->certs.insert_or_assign("new@customer.example", ours.cert);
    directory_.answers["new@customer.example"] = found(own.cert);
    auto c = chain();
    auto r = c.resolve({"new@customer.example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(r[0].source, "directory");
    ASSERT_EQ(r[0].selected.size(), 1u);
    EXPECT_EQ(r[0].selected[0].fingerprint_sha256(), own.cert.fingerprint_sha256());
    ASSERT_EQ(issued_->retired.count("new@customer.example"), 1u);
    EXPECT_NE(issued_->retired["new@customer.example"].find("directory"), std::string::npos);
    // From now on the cache answers with the recipient's own certificate.
    r = c.resolve({"new@customer.example"});
    EXPECT_EQ(r[0].source, "cache");
    EXPECT_EQ(r[0].selected[0].fingerprint_sha256(), own.cert.fingerprint_sha256());
}

// The recipient installed the key we issued and replied signed with it, or the issued
// certificate was published to the directory: a later step finding that same certificate is no
// certificate of the recipient's own, so nothing is retired.
TEST_F(IssuedSourceTest, TheIssuedCertificateItselfFoundLaterRetiresNothing) {
    const auto ours = make_identity({.email = "new@customer.example"});
    issued_->certs.insert_or_assign("new@customer.example", ours.cert);
    directory_.answers["new@customer.example"] = found(ours.cert);
    auto c = chain();
    const auto r = c.resolve({"new@customer.example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    ASSERT_EQ(r[0].selected.size(), 1u);
    EXPECT_EQ(r[0].selected[0].fingerprint_sha256(), ours.cert.fingerprint_sha256());
    EXPECT_TRUE(issued_->retired.empty());
    EXPECT_TRUE(issued_->current("new@customer.example").has_value());
}

TEST_F(IssuedSourceTest, ACachedOwnCertificateAlsoRetiresTheIssuedOne) {
    const auto own = make_identity({.email = "new@customer.example"});
    cache_->put_positive("new@customer.example", {own.cert}, "directory", 600, std::nullopt, "");
    issued_->certs.insert_or_assign("new@customer.example", make_identity({.email = "new@customer.example"}).cert);
    auto c = chain();
    const auto r = c.resolve({"new@customer.example"});
    EXPECT_EQ(r[0].source, "cache");
    EXPECT_EQ(directory_.calls, 0);
    EXPECT_EQ(issued_->retired.count("new@customer.example"), 1u);
}

TEST_F(IssuedSourceTest, TheIssuedCertificateServesWhenTheDirectoryFails) {
    issued_->certs.insert_or_assign("new@customer.example", make_identity({.email = "new@customer.example"}).cert);
    directory_.answers["new@customer.example"] = answer(lookup::Outcome::TempError, "timeout");
    auto c = chain();
    const auto r = c.resolve({"new@customer.example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(r[0].source, "issued");
    EXPECT_TRUE(issued_->retired.empty());
}

TEST_F(IssuedSourceTest, AStoreCertificateAskedInParallelHasPriorityAndRetiresTheIssuedOne) {
    const auto admin = make_identity({.email = "new@customer.example"});
    store_.answers["new@customer.example"] = found(admin.cert);
    issued_->certs.insert_or_assign("new@customer.example", make_identity({.email = "new@customer.example"}).cert);
    auto c = chain({"store", "issued", "cache", "directory"});
    const auto r = c.resolve({"new@customer.example"});
    EXPECT_EQ(r[0].source, "store");
    EXPECT_EQ(r[0].selected[0].fingerprint_sha256(), admin.cert.fingerprint_sha256());
    EXPECT_EQ(issued_->retired.count("new@customer.example"), 1u);
    EXPECT_EQ(directory_.calls, 0);
}

TEST_F(IssuedSourceTest, WithoutAnIssuedCertificateTheChainIsUnchanged) {
    auto c = chain();
    const auto r = c.resolve({"nobody@customer.example"});
    EXPECT_EQ(r[0].outcome, lookup::Outcome::NotFound);
    EXPECT_TRUE(issued_->retired.empty());
    ASSERT_FALSE(r[0].trace.empty());
    EXPECT_EQ(r[0].trace.front().step, "issued");
    EXPECT_EQ(r[0].trace.front().outcome, lookup::Outcome::NotFound);
}

TEST_F(IssuedSourceTest, AnIssuedCertificateForAnotherAddressIsNotUsed) {
    issued_->certs.insert_or_assign("new@customer.example", make_identity({.email = "other@customer.example"}).cert);
    auto c = chain();
    const auto r = c.resolve({"new@customer.example"});
    EXPECT_EQ(r[0].outcome, lookup::Outcome::NotFound);  // the validator still checks the address
}

TEST(IssuedRegistry, OffWithoutAnIssuerOnWithOne) {
    lookup::SourceRegistry r = lookup::builtin_sources();
    const lookup::SourceFactory* f = r.find("issued");
    ASSERT_NE(f, nullptr);
    const lookup::MapSettings settings({});
    lookup::BuiltSource off = (*f)(settings);
    EXPECT_EQ(off.source, nullptr);
    ASSERT_EQ(off.notes.size(), 1u);
    EXPECT_NE(off.notes[0].find("issued: off"), std::string::npos);
    lookup::add_issued_source(r, std::make_shared<FakeIssued>());
    lookup::BuiltSource on = (*r.find("issued"))(settings);
    ASSERT_NE(on.source, nullptr);
    EXPECT_EQ(on.source->name(), "issued");
    EXPECT_TRUE(on.source->properties().fallback);
    EXPECT_FALSE(on.source->properties().cacheable);
    EXPECT_FALSE(on.source->properties().negative_authoritative);
}

// Review finding 9: a higher-priority source asked in parallel (the store, where an admin
// imported the issued certificate) that finds the issued certificate itself retires nothing.
TEST_F(IssuedSourceTest, TheIssuedCertificateFoundInParallelByTheStoreRetiresNothing) {
    const auto ours = make_identity({.email = "new@customer.example"});
    store_.answers["new@customer.example"] = found(ours.cert);
    issued_->certs.insert_or_assign("new@customer.example", ours.cert);
    auto c = chain({"store", "issued", "cache", "directory"});
    const auto r = c.resolve({"new@customer.example"});
    ASSERT_EQ(r[0].outcome, lookup::Outcome::Found) << r[0].reason;
    EXPECT_EQ(r[0].source, "store");
    EXPECT_TRUE(issued_->retired.empty());
    EXPECT_TRUE(issued_->current("new@customer.example").has_value());
}

// Review finding 10: a revoked issued certificate published to the directory (issue.publish)
// is never used from there, nor from the cache.
TEST_F(IssuedSourceTest, AWithdrawnIssuedCertificateIsNotUsedFromAnotherSource) {
    const auto revoked = make_identity({.email = "new@customer.example"});
    issued_->withdrawn_fingerprints.insert(revoked.cert.fingerprint_sha256());
    directory_.answers["new@customer.example"] = found(revoked.cert);
    auto c = chain();
    auto r = c.resolve({"new@customer.example"});
    EXPECT_NE(r[0].outcome, lookup::Outcome::Found);
    ASSERT_FALSE(r[0].trace.empty());
    EXPECT_NE(r[0].reason.find("withdrawn"), std::string::npos) << r[0].reason;
    // A cache entry made before the revocation is refused the same way.
    cache_->put_positive("cached@customer.example", {make_identity({.email = "cached@customer.example"}).cert},
                         "directory", 600, std::nullopt, "");
    const auto cached_revoked = make_identity({.email = "other@customer.example"});
    issued_->withdrawn_fingerprints.insert(cached_revoked.cert.fingerprint_sha256());
    cache_->put_positive("other@customer.example", {cached_revoked.cert}, "directory", 600, std::nullopt, "");
    r = c.resolve({"other@customer.example", "cached@customer.example"});
    EXPECT_NE(r[0].outcome, lookup::Outcome::Found);
    EXPECT_EQ(r[1].outcome, lookup::Outcome::Found) << r[1].reason;
}

}  // namespace

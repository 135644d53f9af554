// The freshness rules every cache backend shares (lookup/certificate_cache.hpp), as pure
// functions in table rows; the parsed-certificate memo (lookup/certificate_memo.hpp); and
// the SQLite cache serving a warm hit without parsing the stored DER again.
#include "lookup/cache.hpp"
#include "lookup/certificate_cache.hpp"
#include "lookup/certificate_memo.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <unistd.h>

namespace lookup = sealmilter::lookup;
namespace crypto = sealmilter::crypto;
using sealmilter::testing::make_identity;

namespace {

constexpr std::time_t kNow = 1'700'000'000;
constexpr std::time_t kFar = kNow + 10 * 365 * 86400;  // a notAfter that never caps

struct PositiveRow {
    const char* name;
    std::optional<long long> max_age, stale_if_error;
    std::time_t not_after;
    std::time_t expires, stale_until;
};

TEST(FreshnessRules, PositiveLifetime) {
    const lookup::FreshnessRules r{.min_ttl = 300, .max_ttl = 3600, .negative_ttl = 120, .max_stale = 86400};
    const PositiveRow rows[] = {
        {"no_max_age_is_min_ttl", std::nullopt, std::nullopt, kFar, kNow + 300, kNow + 300 + 86400},
        {"max_age_inside", 600, std::nullopt, kFar, kNow + 600, kNow + 600 + 86400},
        {"max_age_below_min", 10, std::nullopt, kFar, kNow + 300, kNow + 300 + 86400},
        {"max_age_above_max", 99999, std::nullopt, kFar, kNow + 3600, kNow + 3600 + 86400},
        {"stale_if_error_smaller_wins", 600, 60, kFar, kNow + 600, kNow + 660},
        {"stale_if_error_larger_is_capped", 600, 999999, kFar, kNow + 600, kNow + 600 + 86400},
        {"negative_stale_if_error_is_zero", 600, -5, kFar, kNow + 600, kNow + 600},
        {"not_after_caps_freshness", 600, std::nullopt, kNow + 100, kNow + 100, kNow + 100},
        {"not_after_caps_staleness", 600, std::nullopt, kNow + 1000, kNow + 600, kNow + 1000},
    };
    for (const PositiveRow& row : rows) {
        const lookup::Lifetime l = lookup::positive_lifetime(r, kNow, row.max_age, row.stale_if_error, row.not_after);
        EXPECT_EQ(l.expires_at, row.expires) << row.name;
        EXPECT_EQ(l.stale_until, row.stale_until) << row.name;
    }
}

TEST(FreshnessRules, ClampNeverNegativeEvenWhenMinExceedsMax) {
    const lookup::FreshnessRules bad{.min_ttl = 7200, .max_ttl = 3600, .negative_ttl = 0, .max_stale = 0};
    EXPECT_EQ(lookup::clamp_ttl(bad, std::nullopt), 3600);
    const lookup::FreshnessRules zero{.min_ttl = 0, .max_ttl = 0, .negative_ttl = 0, .max_stale = 0};
    EXPECT_EQ(lookup::clamp_ttl(zero, -50), 0);
}

TEST(FreshnessRules, NegativeAndRevalidatedLifetime) {
    const lookup::FreshnessRules r{.min_ttl = 300, .max_ttl = 3600, .negative_ttl = 120, .max_stale = 86400};
    const lookup::Lifetime n = lookup::negative_lifetime(r, kNow);
    EXPECT_EQ(n.expires_at, kNow + 120);
    EXPECT_EQ(n.stale_until, kNow + 120 + 86400);
    const lookup::Lifetime v = lookup::revalidated_lifetime(r, kNow, 900, kFar, 60);
    EXPECT_EQ(v.expires_at, kNow + 900);
    EXPECT_EQ(v.stale_until, kNow + 960);
    const lookup::Lifetime capped = lookup::revalidated_lifetime(r, kNow, 900, kNow + 500, 60);
    EXPECT_EQ(capped.expires_at, kNow + 500);
    EXPECT_EQ(capped.stale_until, kNow + 500);
}

std::string der_of(const crypto::Certificate& c) {
    const std::vector<unsigned char> d = c.der();
    return {d.begin(), d.end()};
}

TEST(CertificateMemo, SameDerIsParsedOnce) {
    const auto a = make_identity({.email = "a@example.org", .key = "ec-p256"}).cert;
    lookup::CertificateMemo memo(8);
    const auto first = memo.get_or_parse(der_of(a));
    const auto second = memo.get_or_parse(der_of(a));
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->native(), second->native());  // the same parsed object, not a re-parse
    EXPECT_EQ(first->fingerprint_sha256(), a.fingerprint_sha256());
    EXPECT_EQ(memo.misses(), 1u);
    EXPECT_EQ(memo.hits(), 1u);
}

TEST(CertificateMemo, BoundedLeastRecentlyUsedGoesFirst) {
    const auto a = make_identity({.email = "a@example.org", .key = "ec-p256"}).cert;
    const auto b = make_identity({.email = "b@example.org", .key = "ec-p256"}).cert;
    const auto c = make_identity({.email = "c@example.org", .key = "ec-p256"}).cert;
    lookup::CertificateMemo memo(2);
    memo.get_or_parse(der_of(a));
    memo.get_or_parse(der_of(b));
    memo.get_or_parse(der_of(a));  // a is now the most recent
    memo.get_or_parse(der_of(c));  // evicts b
    EXPECT_EQ(memo.size(), 2u);
    const size_t misses = memo.misses();
    memo.get_or_parse(der_of(a));
    EXPECT_EQ(memo.misses(), misses);  // still there
    memo.get_or_parse(der_of(b));
    EXPECT_EQ(memo.misses(), misses + 1);  // was evicted
}

TEST(CertificateMemo, GarbageIsNotACertificateAndNotRemembered) {
    lookup::CertificateMemo memo(4);
    EXPECT_FALSE(memo.get_or_parse("not a certificate").has_value());
    EXPECT_FALSE(memo.get_or_parse("").has_value());
    EXPECT_EQ(memo.size(), 0u);
}

TEST(SqliteCacheMemo, WarmHitDoesNotParseTheStoredDerAgain) {
    const std::string dir = ::testing::TempDir() + "sealmilter-memo-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    const auto a = make_identity({.email = "a@example.org", .key = "ec-p256"}).cert;
    {
        lookup::CacheOptions o;
        o.path = dir + "/cache.db";
        lookup::SqliteCache cache(o);
        cache.put_positive("a@example.org", {a}, "directory", 3600, std::nullopt, "");
        const auto first = cache.get("a@example.org");
        const auto second = cache.get("a@example.org");
        ASSERT_TRUE(first && second);
        ASSERT_EQ(first->certificates.size(), 1u);
        EXPECT_EQ(first->certificates[0].fingerprint_sha256(), a.fingerprint_sha256());
        EXPECT_EQ(first->certificates[0].native(), second->certificates[0].native());
    }
    std::filesystem::remove_all(dir);
}

}  // namespace

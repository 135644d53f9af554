// tests/unit/pickup/test_guard.cpp — the pickup's security primitives on their own: codes,
// CSRF tokens, trusted proxies and the last X-Forwarded-For hop, the bounded limiter table.
#include "pickup/guard.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace sealmilter::pickup {
namespace {

TEST(PickupGuard, CodesUseTheAlphabetAndDiffer) {
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        const std::string c = make_code();
        ASSERT_EQ(c.size(), 8u);
        for (const char ch : c) EXPECT_NE(kCodeAlphabet.find(ch), std::string_view::npos) << c;
        seen.insert(c);
    }
    EXPECT_EQ(seen.size(), 200u);
    EXPECT_EQ(normalise_code(" ab-cd 23k7 "), "ABCD23K7");
    EXPECT_EQ(normalise_code("ab<cd"), "");
    EXPECT_TRUE(well_formed_token(random_token()));
    EXPECT_FALSE(well_formed_token(random_token() + "A"));
}

TEST(PickupGuard, CsrfIsBoundToTheLinkTheFormAndTime) {
    const Csrf csrf;
    const std::time_t now = 1800000000;
    const std::string t = csrf.issue("aa", "code", now);
    EXPECT_TRUE(csrf.check(t, "aa", "code", now + 10));
    EXPECT_FALSE(csrf.check(t, "ab", "code", now));
    EXPECT_FALSE(csrf.check(t, "aa", "download", now));
    EXPECT_FALSE(csrf.check(t, "aa", "code", now + Csrf::kLifetime + 1));
    EXPECT_FALSE(Csrf().check(t, "aa", "code", now)) << "another process's secret";
    EXPECT_FALSE(csrf.check("", "aa", "code", now));
}

TEST(PickupGuard, TrustedProxiesAndTheLastHop) {
    std::string error;
    const auto p = TrustedProxies::parse("10.0.0.1, 192.0.2.0/24, ::1", &error);
    ASSERT_TRUE(p) << error;
    EXPECT_EQ(p->client("10.0.0.1", "1.2.3.4, 5.6.7.8"), "5.6.7.8");
    EXPECT_EQ(p->client("192.0.2.200", "5.6.7.8"), "5.6.7.8");
    EXPECT_EQ(p->client("::1", "2001:db8::1"), "2001:db8::1");
    EXPECT_EQ(p->client("10.0.0.2", "5.6.7.8"), "10.0.0.2");
    EXPECT_EQ(p->client("10.0.0.1", "not an address"), "10.0.0.1");
    EXPECT_FALSE(TrustedProxies::parse("10.0.0.1/33", &error));
    EXPECT_FALSE(TrustedProxies::parse("proxy.example", &error));
    EXPECT_NE(error.find("proxy.example"), std::string::npos);
}

TEST(PickupGuard, TheLimiterTableStaysBounded) {
    ClientLimiter l(20, 20, 100);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(l.allow("c" + std::to_string(i), 1000));
    // Full, nobody refilled yet: a new client is refused rather than evicting anyone.
    EXPECT_FALSE(l.allow("late", 1000));
    EXPECT_TRUE(l.allow("c7", 1000)) << "a known client goes on";
    // Three seconds later the others have refilled (20 per minute) and make room.
    for (int i = 0; i < 10000; ++i) EXPECT_TRUE(l.allow("d" + std::to_string(i), 2000 + i * 3)) << i;
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(l.allow("one", 100000));
    EXPECT_FALSE(l.allow("one", 100000));
    EXPECT_TRUE(l.allow("one", 100003)) << "refilled at 20 per minute";
}

// Review of issue 13, finding 5: flooding the table with new addresses does not reset the bucket
// of a client that is being limited.
TEST(PickupGuard, AFloodOfAddressesDoesNotResetALimitedClient) {
    ClientLimiter l(20, 20, 100);
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(l.allow("203.0.113.9", 1000));
    EXPECT_FALSE(l.allow("203.0.113.9", 1000));
    int refused = 0;
    for (int i = 0; i < 10000; ++i)
        if (!l.allow("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1", 1000)) ++refused;
    EXPECT_EQ(refused, 10000 - 99);
    EXPECT_FALSE(l.allow("203.0.113.9", 1000)) << "still limited";
}

TEST(PickupGuard, AnIpv6ClientCountsAsItsSlash64) {
    EXPECT_EQ(ClientLimiter::bucket_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
    EXPECT_EQ(ClientLimiter::bucket_key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
    EXPECT_EQ(ClientLimiter::bucket_key("192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(ClientLimiter::bucket_key("unknown"), "unknown");
    ClientLimiter l(20, 20);
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(l.allow("2001:db8:1:2::" + std::to_string(i + 1), 1000));
    EXPECT_FALSE(l.allow("2001:db8:1:2:ffff::9", 1000)) << "another interface id of the same /64";
    EXPECT_TRUE(l.allow("2001:db8:1:3::1", 1000)) << "another /64";
}

}  // namespace
}  // namespace sealmilter::pickup

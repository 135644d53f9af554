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
    for (int i = 0; i < 10000; ++i) EXPECT_TRUE(l.allow("c" + std::to_string(i), 1000));
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(l.allow("one", 2000));
    EXPECT_FALSE(l.allow("one", 2000));
    EXPECT_TRUE(l.allow("one", 2003)) << "refilled at 20 per minute";
}

}  // namespace
}  // namespace sealmilter::pickup

// The notice worker (issue 13, docs/issuing.md "Notices") with an in-memory registry, a
// recording re-injector and a manual clock: a due notice leaves once with a fresh 256-bit link
// whose hash (only) is in the record, written before the mail leaves; resend sends at once,
// a new issuance waits for issue.notice_interval; a failed send keeps it due with back-off and
// the previous link; bounded work per pass; the thread is woken and stops cleanly.
#include "keys/issued.hpp"
#include "milter/notices.hpp"
#include "tests/support/manual_clock.hpp"
#include "tests/support/fake_mta.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

namespace core = sealmilter::core;
namespace keys = sealmilter::keys;
namespace milter = sealmilter::milter;
using sealmilter::testing::FakeReinjector;

namespace {

using sealmilter::testing::ManualClock;

class MemoryBook final : public milter::NoticeBook {
public:
    std::vector<keys::IssuedRecord> list_due(size_t limit, std::string* /*error*/) override {
        const std::lock_guard<std::mutex> lock(mu_);
        std::vector<keys::IssuedRecord> out;
        for (const auto& [a, r] : records)
            if (r.notice_due && out.size() < limit) out.push_back(r);
        ++listed;
        return out;
    }
    bool update(std::string_view address, const Change& change, std::string* /*error*/) override {
        const std::lock_guard<std::mutex> lock(mu_);
        const auto it = records.find(std::string(address));
        std::optional<keys::IssuedRecord> cur;
        if (it != records.end()) cur = it->second;
        std::optional<keys::IssuedRecord> next = change(cur);
        if (next) {
            records[std::string(address)] = *next;
            ++writes;
        }
        return true;
    }
    keys::IssuedRecord at(const std::string& a) const {
        const std::lock_guard<std::mutex> lock(mu_);
        return records.at(a);
    }
    std::map<std::string, keys::IssuedRecord> records;
    int writes = 0;
    int listed = 0;

private:
    mutable std::mutex mu_;
};

// Records every copy; checks, at send time, that the record already carries the link's hash.
class CheckingReinjector final : public milter::Reinjector {
public:
    explicit CheckingReinjector(MemoryBook& book) : book_(book) {}
    std::string send(const std::string& sender, const std::vector<std::string>& rcpts,
                     const std::function<void(sealmilter::crypto::ByteSink&)>& write) override {
        sealmilter::crypto::StringSink s;
        write(s);
        const keys::IssuedRecord r = book_.at(rcpts.at(0));
        record_written_first.push_back(!r.notice_due && !r.token_hash.empty());
        if (!fail.empty()) return fail;
        copies.push_back({sender, rcpts, s.out});
        return {};
    }
    std::string target() const override { return "test"; }
    std::vector<FakeReinjector::Copy> copies;
    std::vector<bool> record_written_first;
    std::string fail;

private:
    MemoryBook& book_;
};

keys::IssuedRecord record(const std::string& address, std::time_t issued_at) {
    keys::IssuedRecord r;
    r.address = address;
    r.issued_at = issued_at;
    r.state_changed_at = issued_at;
    r.notice_due = true;
    r.code_hash = "stale";
    r.wrong_codes = 3;
    r.locked = true;
    return r;
}

std::string token_in(const std::string& notice) {
    static const std::regex link("https://secure\\.bank\\.example/p/([A-Za-z0-9_-]+)");
    std::smatch m;
    return std::regex_search(notice, m, link) ? m[1].str() : std::string();
}

class NoticeWorkerTest : public ::testing::Test {
protected:
    void SetUp() override {
        book_ = std::make_shared<MemoryBook>();
        reinjector_ = std::make_shared<CheckingReinjector>(*book_);
        options_.notice.org_name = "Example Bank";
        options_.notice.from = "notices@bank.example";
        options_.notice.pickup_url = "https://secure.bank.example";
        options_.interval = 86400;
        options_.token_ttl = 1209600;
        options_.clock = &clock_;
    }
    std::unique_ptr<milter::NoticeWorker> worker() {
        return std::make_unique<milter::NoticeWorker>(
            book_, reinjector_, options_, [this](std::string* why) -> std::optional<core::Signer> {
                ++signer_asked_;
                *why = "no key for notices@bank.example";
                return std::nullopt;
            },
            [this](const std::string& line) {
                const std::lock_guard<std::mutex> lock(mu_);
                audit_.push_back(line);
            },
            sealmilter::base::Logger::to_function([this](sealmilter::base::LogLevel, const std::string& l) {
                const std::lock_guard<std::mutex> lock(mu_);
                logs_.push_back(l);
            }));
    }

    ManualClock clock_{1767225600};
    std::shared_ptr<MemoryBook> book_;
    std::shared_ptr<CheckingReinjector> reinjector_;
    milter::NoticeOptions options_;
    int signer_asked_ = 0;
    std::mutex mu_;
    std::vector<std::string> audit_;
    std::vector<std::string> logs_;
};

TEST(NoticeToken, Is43Base64UrlCharactersAndFresh) {
    const std::string a = milter::make_token();
    const std::string b = milter::make_token();
    EXPECT_EQ(a.size(), 43u);
    EXPECT_TRUE(std::regex_match(a, std::regex("[A-Za-z0-9_-]{43}")));
    EXPECT_NE(a, b);
}

TEST_F(NoticeWorkerTest, ADueNoticeLeavesOnceWithALinkWhoseHashIsRecordedFirst) {
    book_->records["new@customer.example"] = record("new@customer.example", clock_.t - 5);
    auto w = worker();
    EXPECT_EQ(w->pass(), 1u);
    ASSERT_EQ(reinjector_->copies.size(), 1u);
    EXPECT_TRUE(reinjector_->record_written_first.at(0));
    const auto& copy = reinjector_->copies[0];
    EXPECT_EQ(copy.sender, "notices@bank.example");
    EXPECT_EQ(copy.rcpts, std::vector<std::string>{"new@customer.example"});
    const std::string token = token_in(copy.message);
    ASSERT_EQ(token.size(), 43u) << copy.message.substr(0, 3000);
    const keys::IssuedRecord r = book_->at("new@customer.example");
    EXPECT_FALSE(r.notice_due);
    EXPECT_EQ(r.notice_sent_at, clock_.t);
    EXPECT_EQ(r.token_hash, keys::sha256_hex(token));
    EXPECT_EQ(copy.message.find(token.substr(0, 20) + "x"), std::string::npos);
    EXPECT_EQ(r.token_expires, clock_.t + 1209600);
    EXPECT_FALSE(r.locked);
    EXPECT_EQ(r.wrong_codes, 0u);
    EXPECT_TRUE(r.code_hash.empty());
    EXPECT_EQ(signer_asked_, 1);
    ASSERT_EQ(audit_.size(), 1u);
    EXPECT_EQ(audit_[0].rfind("pickup: event=notice address=new@customer.example client=-", 0), 0u) << audit_[0];
    EXPECT_EQ(w->pass(), 0u);  // nothing due any more
    EXPECT_EQ(reinjector_->copies.size(), 1u);
}

TEST_F(NoticeWorkerTest, ResendIsSentAtOnceWithANewLink) {
    book_->records["new@customer.example"] = record("new@customer.example", clock_.t - 5);
    auto w = worker();
    ASSERT_EQ(w->pass(), 1u);
    const std::string first = book_->at("new@customer.example").token_hash;
    clock_.t += 60;
    book_->records["new@customer.example"].notice_due = true;  // `issued resend`
    EXPECT_EQ(w->pass(), 1u);
    EXPECT_NE(book_->at("new@customer.example").token_hash, first);
    EXPECT_EQ(reinjector_->copies.size(), 2u);
}

TEST_F(NoticeWorkerTest, ANewIssuanceWithinTheIntervalWaits) {
    keys::IssuedRecord r = record("new@customer.example", clock_.t - 10);
    r.notice_sent_at = clock_.t - 3600;  // a notice went out an hour ago for an earlier certificate
    r.issued_at = clock_.t - 10;         // issued again since
    book_->records[r.address] = r;
    auto w = worker();
    EXPECT_EQ(w->pass(), 0u);
    clock_.t += 86400 - 3600;
    EXPECT_EQ(w->pass(), 1u);
}

TEST_F(NoticeWorkerTest, AFailedSendStaysDueWithBackOffAndThePreviousLink) {
    keys::IssuedRecord r = record("new@customer.example", clock_.t - 100);
    r.notice_sent_at = clock_.t - 50;  // resend of a notice whose link is still live
    r.token_hash = keys::sha256_hex("old-token");
    r.token_expires = clock_.t + 1000;
    book_->records[r.address] = r;
    reinjector_->fail = "451 4.3.0 try later";
    auto w = worker();
    EXPECT_EQ(w->pass(), 0u);
    keys::IssuedRecord after = book_->at("new@customer.example");
    EXPECT_TRUE(after.notice_due);
    EXPECT_EQ(after.notice_attempts, 1u);
    EXPECT_EQ(after.token_hash, keys::sha256_hex("old-token"));
    EXPECT_EQ(after.notice_sent_at, clock_.t - 50);
    EXPECT_TRUE(audit_.empty());
    reinjector_->fail.clear();
    EXPECT_EQ(w->pass(), 0u);  // back-off: not before a minute
    clock_.t += 61;
    EXPECT_EQ(w->pass(), 1u);
    after = book_->at("new@customer.example");
    EXPECT_FALSE(after.notice_due);
    EXPECT_EQ(after.notice_attempts, 0u);
    EXPECT_NE(after.token_hash, keys::sha256_hex("old-token"));
}

TEST_F(NoticeWorkerTest, WorkPerPassIsBounded) {
    for (int i = 0; i < 5; ++i) {
        const std::string a = "n" + std::to_string(i) + "@customer.example";
        book_->records[a] = record(a, clock_.t - 100 + i);
    }
    options_.max_per_pass = 2;
    auto w = worker();
    EXPECT_EQ(w->pass(), 2u);
    EXPECT_EQ(w->pass(), 2u);
    EXPECT_EQ(w->pass(), 1u);
    EXPECT_EQ(reinjector_->copies.size(), 5u);
}

TEST_F(NoticeWorkerTest, TheThreadSendsWhenWokenAndStopsCleanly) {
    options_.rescan = std::chrono::hours(1);  // only the wake can start a pass
    auto w = worker();
    w->start();
    book_->records["new@customer.example"] = record("new@customer.example", clock_.t - 5);
    w->wake();
    for (int i = 0; i < 500; ++i) {  // bounded: 5 s
        {
            const std::lock_guard<std::mutex> lock(mu_);
            if (!audit_.empty()) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    w->stop();
    EXPECT_EQ(reinjector_->copies.size(), 1u);
    EXPECT_FALSE(book_->at("new@customer.example").notice_due);
}

// Review finding 2: a failed notice puts the previous link back exactly as it was: a locked
// link stays locked with its wrong-code count and code (no fresh guesses per failed attempt).
TEST_F(NoticeWorkerTest, AFailedSendRestoresThePreviousLinksLockAndWrongCodes) {
    keys::IssuedRecord r = record("new@customer.example", clock_.t - 100);
    r.notice_sent_at = clock_.t - 50;
    r.token_hash = keys::sha256_hex("old-token");
    r.token_expires = clock_.t + 1000;
    r.locked = true;
    r.wrong_codes = 5;
    r.code_hash = keys::sha256_hex("code");
    r.code_expires = clock_.t + 600;
    book_->records[r.address] = r;
    reinjector_->fail = "451 4.3.0 try later";
    auto w = worker();
    EXPECT_EQ(w->pass(), 0u);
    const keys::IssuedRecord after = book_->at("new@customer.example");
    EXPECT_TRUE(after.notice_due);
    EXPECT_EQ(after.token_hash, keys::sha256_hex("old-token"));
    EXPECT_TRUE(after.locked);
    EXPECT_EQ(after.wrong_codes, 5u);
    EXPECT_EQ(after.code_hash, keys::sha256_hex("code"));
    EXPECT_EQ(after.code_expires, clock_.t + 600);
}

// Review finding 2: `issued resend` (notice_attempts back to 0, sent_at cleared) after a failed
// send is not held back by the worker's in-memory back-off.
TEST_F(NoticeWorkerTest, AResendAfterAFailedSendIgnoresTheBackOff) {
    book_->records["new@customer.example"] = record("new@customer.example", clock_.t - 100);
    reinjector_->fail = "451 4.3.0 try later";
    auto w = worker();
    EXPECT_EQ(w->pass(), 0u);
    ASSERT_EQ(book_->at("new@customer.example").notice_attempts, 1u);
    reinjector_->fail.clear();
    clock_.t += 5;
    EXPECT_EQ(w->pass(), 0u);  // still backing off
    book_->update("new@customer.example", [](const std::optional<keys::IssuedRecord>& cur) {
        keys::IssuedRecord n = *cur;  // what keys::resend_issued writes
        n.notice_due = true;
        n.notice_sent_at = 0;
        n.notice_attempts = 0;
        n.token_hash.clear();
        n.token_expires = 0;
        return std::optional<keys::IssuedRecord>(n);
    }, nullptr);
    EXPECT_EQ(w->pass(), 1u);
    EXPECT_FALSE(book_->at("new@customer.example").notice_due);
    EXPECT_EQ(reinjector_->copies.size(), 1u);
}

// Review finding 3: a pass asks the book for due records only, and at most max_loaded.
TEST_F(NoticeWorkerTest, APassReadsOnlyDueRecordsBounded) {
    for (int i = 0; i < 6; ++i) {
        const std::string a = "n" + std::to_string(i) + "@customer.example";
        book_->records[a] = record(a, clock_.t - 100 + i);
        if (i >= 2) book_->records[a].notice_due = false;  // sent long ago
    }
    options_.max_loaded = 1;
    auto w = worker();
    EXPECT_EQ(w->pass(), 1u);
    EXPECT_EQ(w->pass(), 1u);
    EXPECT_EQ(w->pass(), 0u);
    EXPECT_EQ(book_->listed, 3);
    EXPECT_EQ(reinjector_->copies.size(), 2u);
}

}  // namespace

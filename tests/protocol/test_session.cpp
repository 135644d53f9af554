// The adapter's per-connection logic without libmilter (milter/session.hpp): a failure while
// accumulating — any exception, std or not — is kept and answered at end of message; it
// never escapes towards libmilter.
#include "milter/session.hpp"

#include <gtest/gtest.h>

namespace milter = sealmilter::milter;
namespace crypto = sealmilter::crypto;

namespace {

class NoActions final : public milter::MessageActions {
public:
    void change_header(const std::string&, int, const std::string&) override { ++calls; }
    void delete_header(const std::string&, int) override { ++calls; }
    void add_header(const std::string&, const std::string&) override { ++calls; }
    void insert_header(int, const std::string&, const std::string&) override { ++calls; }
    crypto::ByteSink& replace_body() override {
        ++calls;
        return sink;
    }
    void delete_recipient(const std::string&) override { ++calls; }
    crypto::StringSink sink;
    int calls = 0;
};

class NoReinjection final : public milter::Reinjector {
public:
    std::string send(const std::string&, const std::vector<std::string>&,
                     const std::function<void(crypto::ByteSink&)>&) override {
        return "not expected";
    }
};

std::shared_ptr<const milter::Services> services() {
    auto s = std::make_shared<milter::Services>();
    s->spool_dir = "/tmp";
    return s;
}

struct NotAStdException {};

TEST(Session, ANonStdExceptionWhileAccumulatingIsKeptForEndOfMessage) {
    milter::Session session("S7");
    session.begin(services(), "<a@bank.example>");
    EXPECT_NO_THROW(session.accumulate("header", [](milter::Transaction&) { throw NotAStdException{}; }));
    EXPECT_EQ(session.deferred_error(), "header: unknown exception");
    // Later callbacks of the message are skipped, not run on a half-built message.
    bool ran = false;
    session.accumulate("body", [&](milter::Transaction&) { ran = true; });
    EXPECT_FALSE(ran);
    NoActions actions;
    NoReinjection reinjector;
    try {
        session.end_of_message("4Q1", actions, reinjector);
        ADD_FAILURE() << "end of message must fail (the adapter answers 451 4.7.0)";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "header: unknown exception");
    }
    EXPECT_EQ(actions.calls, 0);
    // The next message of the connection starts clean.
    session.begin(services(), "<a@bank.example>");
    EXPECT_TRUE(session.deferred_error().empty());
}

TEST(Session, AStdExceptionWhileAccumulatingIsKeptWithItsText) {
    milter::Session session("S8");
    session.begin(services(), "<a@bank.example>");
    session.accumulate("body", [](milter::Transaction&) { throw std::runtime_error("spool full"); });
    EXPECT_EQ(session.deferred_error(), "body: spool full");
}

TEST(Session, AccumulatingWithoutMailIsKeptNotThrown) {
    milter::Session session("S9");
    EXPECT_NO_THROW(session.header("Subject", "x"));
    EXPECT_EQ(session.deferred_error(), "header: no transaction (MAIL FROM missing)");
    EXPECT_EQ(session.tag(), "S9");
}

TEST(Session, EndOfMessageEndsTheTransaction) {
    milter::Session session("S10");
    session.begin(services(), "<a@bank.example>");
    session.header("Subject", "hello");
    ASSERT_TRUE(session.deferred_error().empty());
    NoActions actions;
    NoReinjection reinjector;
    const milter::EomResult r = session.end_of_message("4Q2", actions, reinjector);
    EXPECT_EQ(r.verdict, milter::EomResult::Verdict::Accept) << r.summary;
    EXPECT_EQ(r.summary, "delivered plain to 0 recipient(s), 0 copies split off");
    EXPECT_EQ(session.tag(), "S10");  // back to the session id: no transaction
    EXPECT_THROW(session.end_of_message("4Q2", actions, reinjector), std::runtime_error);  // no MAIL
}

}  // namespace

// The RCPT-time resolver (lookup/resolver.hpp): a fixed number of worker threads, bursts of
// queued addresses resolved as few batches (one Chain::resolve -> one lookup_many each), and
// a chain that throws turning into TempError for that batch only. Scripted source, no network.
#include "lookup/resolver.hpp"

#include "tests/support/scripted_source.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>

namespace lookup = sealmilter::lookup;
using sealmilter::testing::ScriptedSource;

namespace {

// The "Threads:" line of /proc/self/status.
int thread_count() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
    return -1;
}

// Holds the source's first batch until released, so the test controls what is queued.
class Gate {
public:
    void wait() {
        std::unique_lock<std::mutex> lock(m_);
        entered_ = true;
        cv_.notify_all();
        cv_.wait(lock, [this] { return open_; });
    }
    void wait_entered() {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [this] { return entered_; });
    }
    void open() {
        const std::lock_guard<std::mutex> lock(m_);
        open_ = true;
        cv_.notify_all();
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool entered_ = false;
    bool open_ = false;
};

class ResolverTest : public ::testing::Test {
protected:
    lookup::Chain chain() {
        return lookup::Chain({"directory"}, {&source_}, validator_, nullptr, lookup::EncryptTo::AllValid);
    }
    ScriptedSource source_{"directory"};
    lookup::Validator validator_{lookup::ValidatorOptions{}};
};

TEST_F(ResolverTest, ThreadCountStaysAtWorkersFor300QueuedAddresses) {
    const lookup::Chain c = chain();
    int peak = 0;
    source_.on_batch = [&peak](const std::vector<lookup::Query>&) { peak = std::max(peak, thread_count()); };
    const int before = thread_count();
    ASSERT_GT(before, 0);
    std::vector<std::shared_future<lookup::LookupResult>> futures;
    {
        lookup::Resolver resolver(c, {.workers = 4, .max_batch = 16});
        EXPECT_EQ(resolver.workers(), 4u);
        for (int i = 0; i < 300; ++i) futures.push_back(resolver.start("r" + std::to_string(i) + "@x.example"));
        for (auto& f : futures) EXPECT_EQ(f.get().outcome, lookup::Outcome::NotFound);
        peak = std::max(peak, thread_count());
    }
    EXPECT_GT(peak, 0);
    EXPECT_LE(peak, before + 4);
    EXPECT_EQ(source_.calls, 300);
}

TEST_F(ResolverTest, ABurstBecomesFewBatches) {
    const lookup::Chain c = chain();
    Gate gate;
    bool first = true;
    source_.on_batch = [&](const std::vector<lookup::Query>&) {
        if (first) {
            first = false;
            gate.wait();  // the one worker is busy while the rest of the burst queues up
        }
    };
    lookup::Resolver resolver(c, {.workers = 1, .max_batch = 512});
    std::vector<std::shared_future<lookup::LookupResult>> futures;
    futures.push_back(resolver.start("first@x.example"));
    gate.wait_entered();
    for (int i = 0; i < 299; ++i) futures.push_back(resolver.start("r" + std::to_string(i) + "@x.example"));
    gate.open();
    for (auto& f : futures) f.get();
    EXPECT_EQ(source_.calls, 300);
    ASSERT_EQ(source_.batches, 2) << "300 addresses should take the held batch plus one more";
    EXPECT_EQ(source_.batch_sizes[1], 299u);
}

TEST_F(ResolverTest, AThrowingChainIsTempErrorForThatBatchOnly) {
    const lookup::Chain c = chain();
    source_.on_batch = [](const std::vector<lookup::Query>& qs) {
        for (const lookup::Query& q : qs)
            if (q.email == "boom@x.example") throw std::logic_error("scripted failure");
    };
    lookup::Resolver resolver(c, {.workers = 1, .max_batch = 128});
    const lookup::LookupResult boom = resolver.start("Boom@X.example").get();
    EXPECT_EQ(boom.outcome, lookup::Outcome::TempError);
    EXPECT_EQ(boom.email, "boom@x.example");
    EXPECT_NE(boom.reason.find("scripted failure"), std::string::npos) << boom.reason;
    const lookup::LookupResult after = resolver.start("ok@x.example").get();
    EXPECT_EQ(after.outcome, lookup::Outcome::NotFound) << after.reason;
}

}  // namespace

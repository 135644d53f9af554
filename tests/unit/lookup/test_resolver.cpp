// The RCPT-time resolver (lookup/resolver.hpp): a fixed number of worker threads, bursts of
// queued addresses resolved as few batches (one Chain::resolve -> one lookup_many each), and
// a chain that throws turning into TempError for that batch only. Scripted source, no network.
#include "lookup/http.hpp"
#include "lookup/resolver.hpp"

#include "tests/support/scripted_source.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <set>
#include <sstream>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unistd.h>

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

std::set<std::string> task_ids() {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) out.insert(e.path().filename());
    return out;
}

// Whether thread `tid` of this process blocks `sig` (the SigBlk mask of its status file).
bool blocks(const std::string& tid, int sig) {
    std::ifstream in("/proc/self/task/" + tid + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("SigBlk:", 0) != 0) continue;
        const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
        return (mask >> (sig - 1)) & 1ULL;
    }
    return false;
}

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

// The daemon stops on SIGTERM through libmilter's signal thread, which it arranges by blocking
// the signal in its own threads (milter/adapter.cpp). Threads lookup/ starts before that (the
// resolver's workers, the HTTP client's I/O thread) must not take it: the kernel may deliver
// SIGTERM to any thread that does not block it, and its default action killed the daemon
// (seen as "sealmilter run exited with -15" in the 1,000-recipient e2e test).
TEST_F(ResolverTest, WorkerThreadsNeverTakeTheDaemonsSignals) {
    const lookup::Chain c = chain();
    const std::set<std::string> before = task_ids();
    lookup::Resolver resolver(c, {.workers = 2, .max_batch = 8});
    lookup::HttpClient http(lookup::HttpOptions{});
    const std::set<std::string> after = task_ids();
    int started = 0;
    for (const std::string& tid : after) {
        if (before.count(tid) != 0) continue;
        ++started;
        EXPECT_TRUE(blocks(tid, SIGTERM)) << "thread " << tid << " takes SIGTERM";
        EXPECT_TRUE(blocks(tid, SIGHUP)) << "thread " << tid << " takes SIGHUP";
        EXPECT_TRUE(blocks(tid, SIGINT)) << "thread " << tid << " takes SIGINT";
    }
    EXPECT_EQ(started, 3);
    EXPECT_FALSE(blocks(std::to_string(::getpid()), SIGTERM)) << "the caller's own mask must be restored";
}

}  // namespace

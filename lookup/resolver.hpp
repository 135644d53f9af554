// lookup/resolver.hpp — RCPT-time lookups through a bounded pool of workers.
//
// Purpose:   the milter starts each recipient's lookup when RCPT arrives and collects the
//            answer at end of message (SPEC §4, §6). A thread per RCPT (std::async) let one
//            message to 300 Bcc recipients start ~250 threads and open as many connections to
//            the directory at once. Here a fixed number of workers take *every* address queued
//            at that moment as one batch and resolve it with one Chain::resolve call, so a
//            burst of RCPTs becomes one lookup_many: the directory runs those requests
//            concurrently on one multiplexed connection, under its per-host cap
//            (directory.max_connections). The thread count never exceeds `workers`.
// Ownership: borrows the Chain, which must outlive the Resolver; futures are shared values
//            that stay valid after the Resolver is gone.
// Threads:   start() from any thread. The destructor lets the workers finish what is queued
//            (each answer is bounded by the sources' timeouts) and joins them.
// Errors:    start() never throws for lookup problems; if the chain throws (a broken
//            invariant), every address of that batch gets a TempError naming the failure.
#pragma once

#include "base/mutex.hpp"
#include "lookup/chain.hpp"

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sealmilter::lookup {

struct ResolverOptions {
    size_t workers = 4;       // concurrent batches (threads)
    size_t max_batch = 128;   // addresses resolved by one Chain::resolve call
};

// Called on the worker with every finished result, before its future is ready (metrics);
// must not throw. Empty = nobody listens.
using LookupObserver = std::function<void(const LookupResult&)>;

class Resolver {
public:
    Resolver(const Chain& chain, ResolverOptions options = {}, LookupObserver observe = {});
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    std::shared_future<LookupResult> start(const std::string& address);

    size_t workers() const noexcept { return threads_.size(); }

private:
    struct Item {
        std::string address;
        std::promise<LookupResult> promise;
    };
    void run();
    void resolve_batch(std::vector<Item>& batch) const;

    const Chain& chain_;
    ResolverOptions options_;
    LookupObserver observe_;
    base::Mutex mutex_;
    std::condition_variable_any ready_;
    std::deque<Item> queue_ SEALMILTER_GUARDED_BY(mutex_);
    bool stopping_ SEALMILTER_GUARDED_BY(mutex_) = false;
    std::vector<std::thread> threads_;
};

}  // namespace sealmilter::lookup

// lookup/resolver.cpp — see resolver.hpp.
#include "lookup/resolver.hpp"

#include "base/worker_thread.hpp"

#include <algorithm>

namespace sealmilter::lookup {

Resolver::Resolver(const Chain& chain, ResolverOptions options, LookupObserver observe)
    : chain_(chain), options_(options), observe_(std::move(observe)) {
    options_.workers = std::max<size_t>(1, options_.workers);
    options_.max_batch = std::max<size_t>(1, options_.max_batch);
    threads_.reserve(options_.workers);
    for (size_t i = 0; i < options_.workers; ++i) threads_.push_back(base::start_worker_thread([this] { run(); }));
}

Resolver::~Resolver() {
    {
        const base::MutexLock lock(mutex_);
        stopping_ = true;
    }
    ready_.notify_all();
    for (std::thread& t : threads_) t.join();
}

std::shared_future<LookupResult> Resolver::start(const std::string& address) {
    Item item{address, {}};
    std::shared_future<LookupResult> f = item.promise.get_future().share();
    {
        const base::MutexLock lock(mutex_);
        queue_.push_back(std::move(item));
    }
    ready_.notify_one();
    return f;
}

void Resolver::run() {
    for (;;) {
        std::vector<Item> batch;
        {
            base::UniqueMutexLock lock(mutex_);
            // The predicate runs with the lock held (inside wait); the analysis cannot see that.
            ready_.wait(lock, [this]() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping and drained
            const size_t n = std::min(queue_.size(), options_.max_batch);
            for (size_t i = 0; i < n; ++i) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        resolve_batch(batch);
    }
}

void Resolver::resolve_batch(std::vector<Item>& batch) const {
    std::vector<std::string> addresses;
    addresses.reserve(batch.size());
    for (const Item& i : batch) addresses.push_back(i.address);
    std::vector<LookupResult> results;
    std::string failure;
    try {
        results = chain_.resolve(addresses);
    } catch (const std::exception& e) {
        failure = e.what();
    } catch (...) {
        failure = "unknown exception";
    }
    for (size_t i = 0; i < batch.size(); ++i) {
        if (i < results.size()) {
            if (observe_) observe_(results[i]);
            batch[i].promise.set_value(std::move(results[i]));
            continue;
        }
        LookupResult r;
        r.email = normalize_address(batch[i].address);
        r.outcome = Outcome::TempError;
        r.reason = failure.empty() ? "the lookup chain gave no answer" : "internal error in the lookup: " + failure;
        if (observe_) observe_(r);
        batch[i].promise.set_value(std::move(r));
    }
}

}  // namespace sealmilter::lookup

// lookup/publisher.cpp — background publishing of harvested certificates (see publisher.hpp).
#include "lookup/publisher.hpp"

#include "base/file.hpp"
#include "base/worker_thread.hpp"
#include "lookup/directory.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace sealmilter::lookup {
namespace {

std::atomic<unsigned long> g_counter{0};

// A queue file: the address on the first line, the PEM after it.
bool read_request(const fs::path& p, std::string& email, std::string& pem) {
    std::string text;
    try {
        text = base::read_file(p.string());
    } catch (const std::system_error&) {
        return false;
    }
    const size_t nl = text.find('\n');
    if (nl == std::string::npos || nl == 0) return false;
    email = text.substr(0, nl);
    pem = text.substr(nl + 1);
    return !pem.empty();
}

}  // namespace

Publisher::Publisher(PublishOptions options, std::function<void(const std::string&)> log, bool start_thread)
    : options_(std::move(options)), log_(std::move(log)), http_(std::make_unique<HttpClient>(options_.http)) {
    std::error_code ec;
    fs::create_directories(options_.queue_dir, ec);
    if (ec) throw std::runtime_error("cannot create the publish queue " + options_.queue_dir + ": " + ec.message());
    if (start_thread) thread_ = base::start_worker_thread([this] { run(); });
}

Publisher::Publisher(PublishOptions options, std::function<void(const std::string&)> log)
    : Publisher(std::move(options), std::move(log), true) {}

std::unique_ptr<Publisher> Publisher::without_thread(PublishOptions options, std::function<void(const std::string&)> log) {
    return std::unique_ptr<Publisher>(new Publisher(std::move(options), std::move(log), false));
}

Publisher::~Publisher() {
    {
        const base::MutexLock lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Publisher::enqueue(const std::string& email, const std::string& pem) {
    if (email.find('\n') != std::string::npos) throw std::runtime_error("publish: address with a line break");
    // Always the local file first (fast and durable, never a database call on the mail path);
    // with a shared queue the publisher's thread moves it there at once (pass()).
    const std::string name = std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "-" +
                             std::to_string(::getpid()) + "-" + std::to_string(++g_counter);
    const fs::path tmp = fs::path(options_.queue_dir) / ("." + name + ".tmp");
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << email << "\n" << pem;
        out.flush();
        if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    std::error_code ec;
    fs::rename(tmp, fs::path(options_.queue_dir) / (name + ".req"), ec);
    if (ec) throw std::runtime_error("cannot queue " + tmp.string() + ": " + ec.message());
    {
        const base::MutexLock lock(mutex_);
        woken_ = true;  // seen by run() even when it is not waiting yet
    }
    wake_.notify_all();
}

bool Publisher::send(const std::string& email, const std::string& pem, std::string& error) const {
    HttpRequest request;
    request.url = expand_url(options_.url_template, email);
    request.headers = {"Content-Type: application/pem-certificate-chain"};
    request.post = true;
    request.body = pem;
    const HttpResponse r = http_->perform({request}).front();
    switch (r.failure) {
    case HttpResponse::Failure::None: break;
    case HttpResponse::Failure::TooBig: error = "answer larger than directory.max_body"; return false;
    case HttpResponse::Failure::Timeout: error = "timed out"; return false;
    case HttpResponse::Failure::Transport:
    case HttpResponse::Failure::Setup: error = r.error; return false;
    }
    if (r.status < 200 || r.status > 299) {
        error = "HTTP " + std::to_string(r.status);
        return false;
    }
    return true;
}

// Whether `file` is due now (not waiting out a backoff); `stop` says the publisher stops.
bool Publisher::due(const std::string& file, bool honour_backoff, bool& stop) {
    const base::MutexLock lock(mutex_);
    stop = stop_;
    const auto r = retry_.find(file);
    return !honour_backoff || r == retry_.end() || std::chrono::steady_clock::now() >= r->second.next;
}

void Publisher::failed(const std::string& file, const std::string& email, const std::string& error) {
    long backoff_ms = 0;
    {
        const base::MutexLock lock(mutex_);
        Retry& r = retry_[file];
        r.backoff_ms =
            r.backoff_ms == 0 ? options_.initial_backoff_ms : std::min(r.backoff_ms * 2, options_.max_backoff_ms);
        r.next = std::chrono::steady_clock::now() + std::chrono::milliseconds(r.backoff_ms);
        backoff_ms = r.backoff_ms;
    }
    log_("publish: <" + email + "> failed (" + error + "), next attempt in " + std::to_string(backoff_ms / 1000) + " s");
}

size_t Publisher::pass(bool honour_backoff) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (fs::directory_iterator it(options_.queue_dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".req") files.push_back(it->path());
    std::sort(files.begin(), files.end());
    size_t remaining = 0;
    for (const fs::path& f : files) {
        bool stop = false;
        const bool now = due(f.string(), honour_backoff, stop);
        if (stop) return files.size();
        if (!now && !options_.shared) {
            ++remaining;
            continue;
        }
        std::string email;
        std::string pem;
        if (!read_request(f, email, pem)) {
            log_("publish: dropping unreadable queue file " + f.string());
            fs::remove(f, ec);
            continue;
        }
        if (options_.shared) {
            // Into the nodes' queue when it answers (whatever this node's own back-off for the
            // entry); otherwise this node sends it itself, when due.
            if (options_.shared->add(email, pem).empty()) {
                fs::remove(f, ec);
                const base::MutexLock lock(mutex_);
                retry_.erase(f.string());
                continue;
            }
            if (!now) {
                ++remaining;
                continue;
            }
        }
        std::string error;
        if (!send(email, pem, error)) {
            ++remaining;
            failed(f.string(), email, error);
            continue;
        }
        fs::remove(f, ec);
        {
            const base::MutexLock lock(mutex_);
            retry_.erase(f.string());
        }
        log_("publish: <" + email + "> published");
        if (options_.on_published) options_.on_published();
    }
    return remaining + (options_.shared ? pass_shared() : 0);
}

size_t Publisher::pass_shared() {
    // Bounded: at most this many entries per pass, so stop_ is looked at between batches.
    for (int n = 0; n < 1000; ++n) {
        if (stopping()) return 0;
        SharedPublishQueue::Entry e;
        bool claimed = false;
        const std::string error = options_.shared->claim(e, claimed);
        if (!error.empty()) {
            // One line per outage; this node's own spool is published by pass() meanwhile.
            if (!shared_down_)
                log_("publish: the shared queue is unavailable (" + error + "); this node publishes its own queue meanwhile");
            shared_down_ = true;
            return 1;  // unknown: at least one may be waiting there
        }
        if (shared_down_) log_("publish: the shared queue is answering again");
        shared_down_ = false;
        if (!claimed) return 0;
        std::string why;
        if (!send(e.email, e.pem, why)) {
            long backoff_ms = 0;
            const std::string f = options_.shared->failed(e.id, why, backoff_ms);
            log_("publish: <" + e.email + "> failed (" + why + "), next attempt in " +
                 (f.empty() ? std::to_string(backoff_ms / 1000) + " s" : "a while (its back-off was not recorded: " + f + ")"));
            continue;
        }
        const std::string d = options_.shared->done(e.id);
        // Not removed: published again after the claim's lease (a duplicate POST of the same
        // certificate, which the directory takes as the same publication), never lost.
        if (!d.empty()) log_("publish: <" + e.email + "> published, but not yet removed from the shared queue (" + d + ")");
        else log_("publish: <" + e.email + "> published");
        if (options_.on_published) options_.on_published();
    }
    return 1;
}

std::chrono::steady_clock::time_point Publisher::shared_due(std::chrono::steady_clock::time_point until) {
    const auto now = std::chrono::steady_clock::now();
    long long ms = -1;
    const std::string error = options_.shared->due_in(ms);
    if (!error.empty()) return std::min(until, now + std::chrono::milliseconds(options_.initial_backoff_ms));
    if (ms < 0) return until;
    return std::min(until, now + std::chrono::milliseconds(ms));
}

size_t Publisher::flush_once() { return pass(false); }

void Publisher::run() {
    for (;;) {
        {
            const base::MutexLock lock(mutex_);
            woken_ = false;  // what is queued from now on wakes the wait below
        }
        pass(true);
        // Wake for a new request, or when the earliest retry is due (at most a minute: files
        // queued by other processes, e.g. `sealmilter harvest`, are found too). The shared
        // queue's entries and back-offs live in the database, asked before taking the lock.
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        if (options_.shared) until = shared_due(until);
        base::UniqueMutexLock lock(mutex_);
        if (stop_) return;
        for (const auto& [file, r] : retry_) until = std::min(until, r.next);
        while (!stop_ && !woken_) {
            if (wake_.wait_until(lock, until) == std::cv_status::timeout) break;
        }
        if (stop_) return;
    }
}

bool Publisher::stopping() {
    const base::MutexLock lock(mutex_);
    return stop_;
}

}  // namespace sealmilter::lookup

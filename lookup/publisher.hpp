// lookup/publisher.hpp — publishing harvested certificates to the directory (SPEC §6).
//
// Purpose:   directory.publish_url receives every certificate the gateway harvests, so that
//            other systems of the organisation find it too: POST with Content-Type
//            application/pem-certificate-chain through the same HTTP client and TLS policy as
//            lookups (lookup/http: CA file, client certificate, bearer token). Never on the
//            mail path: enqueue() writes one file into a persistent
//            queue directory and returns; a background thread POSTs, deletes the file on 2xx
//            and otherwise retries with exponential backoff (initial_backoff_ms doubling up to
//            max_backoff_ms). What is queued survives restarts; nothing is dropped.
// Ownership: owns its thread; the destructor stops it (waiting for a request in flight, at
//            most timeout_ms).
// Threads:   enqueue() from any thread; one sender thread.
// Errors:    enqueue() throws std::runtime_error when the queue cannot be written; sending
//            failures are logged and retried, never thrown.
#pragma once

#include "base/mutex.hpp"
#include "lookup/http.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

namespace sealmilter::lookup {

struct PublishOptions {
    std::string url_template;      // directory.publish_url ({email} {local} {domain} allowed)
    HttpOptions http;              // the directory's TLS policy, token and timeout
    std::string queue_dir;         // persistent queue (harvest.dir/.publish)
    long initial_backoff_ms = 5000;
    long max_backoff_ms = 600000;
    // Called (on the publisher's thread) after each certificate the directory accepted: the
    // daemon counts them (sealmilter_published_certificates_total). Must not throw.
    std::function<void()> on_published;
};

class Publisher {
public:
    Publisher(PublishOptions options, std::function<void(const std::string&)> log);
    ~Publisher();
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;

    // Queues `pem` (the certificate, PEM) for `email`; returns at once.
    void enqueue(const std::string& email, const std::string& pem);
    // Sends everything queued now, once, in the calling thread (the CLI); returns how many
    // remain queued. Only for a Publisher made with start_thread = false.
    size_t flush_once();
    static std::unique_ptr<Publisher> without_thread(PublishOptions options, std::function<void(const std::string&)> log);

private:
    Publisher(PublishOptions options, std::function<void(const std::string&)> log, bool start_thread);
    void run();
    bool send(const std::string& email, const std::string& pem, std::string& error) const;
    size_t pass(bool honour_backoff);  // one sweep over the queue

    bool due(const std::string& file, bool honour_backoff, bool& stop) SEALMILTER_EXCLUDES(mutex_);
    void failed(const std::string& file, const std::string& email, const std::string& error)
        SEALMILTER_EXCLUDES(mutex_);

    PublishOptions options_;
    std::function<void(const std::string&)> log_;
    std::unique_ptr<HttpClient> http_;
    base::Mutex mutex_;
    std::condition_variable_any wake_;
    bool stop_ SEALMILTER_GUARDED_BY(mutex_) = false;
    struct Retry {
        long backoff_ms = 0;
        std::chrono::steady_clock::time_point next{};
    };
    std::map<std::string, Retry> retry_ SEALMILTER_GUARDED_BY(mutex_);  // queue file -> when to try again
    std::thread thread_;
};

}  // namespace sealmilter::lookup

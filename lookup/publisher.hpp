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
//            With a SharedPublishQueue (database.shared = publish, pg/publish.hpp) the queue
//            is the nodes' one queue: enqueue() still writes the local file (no database call
//            on the mail path), and each pass first moves the files in queue_dir into the
//            shared queue; when the database does not answer, this node sends its own files
//            itself (as without sharing), so nothing waits on the database and nothing is lost.
//            Then it claims due shared entries one at a time (no other node gets an entry it
//            holds) and publishes them; the back-off is kept in the shared queue.
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

// The publish queue shared by the nodes (implemented on PostgreSQL by pg/publish.hpp).
// Every call returns "" on success, else why not (the database unreachable, ...); never throws.
class SharedPublishQueue {
public:
    struct Entry {
        long long id = 0;
        std::string email;
        std::string pem;
    };
    virtual ~SharedPublishQueue() = default;
    // Queues (email, pem) once for all nodes: the same certificate already queued is not added again.
    virtual std::string add(const std::string& email, const std::string& pem) = 0;
    // Claims the earliest due entry for this node (claimed = true), or none is due (false).
    // A claimed entry is due again only after a lease (longer than one attempt), so a node
    // that dies holding it delays it, never loses it.
    virtual std::string claim(Entry& out, bool& claimed) = 0;
    // Published: the entry leaves the queue.
    virtual std::string done(long long id) = 0;
    // Not published: due again after a back-off doubling from initial to max (its new value in backoff_ms).
    virtual std::string failed(long long id, const std::string& why, long& backoff_ms) = 0;
    // Milliseconds until the earliest entry is due (0 = now); -1 = the queue is empty.
    virtual std::string due_in(long long& ms) = 0;
};

struct PublishOptions {
    std::string url_template;      // directory.publish_url ({email} {local} {domain} allowed)
    HttpOptions http;              // the directory's TLS policy, token and timeout
    std::string queue_dir;         // persistent queue (harvest.dir/.publish)
    long initial_backoff_ms = 5000;
    long max_backoff_ms = 600000;
    // Called (on the publisher's thread) after each certificate the directory accepted: the
    // daemon counts them (sealmilter_published_certificates_total). Must not throw.
    std::function<void()> on_published;
    // database.shared = publish: the nodes' one queue; null = the files in queue_dir only.
    std::shared_ptr<SharedPublishQueue> shared;
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
    size_t pass_shared();              // claims and publishes the shared queue's due entries
    // The earliest time a shared entry is due (at most `until`).
    std::chrono::steady_clock::time_point shared_due(std::chrono::steady_clock::time_point until);

    bool stopping() SEALMILTER_EXCLUDES(mutex_);
    bool due(const std::string& file, bool honour_backoff, bool& stop) SEALMILTER_EXCLUDES(mutex_);
    void failed(const std::string& file, const std::string& email, const std::string& error)
        SEALMILTER_EXCLUDES(mutex_);

    PublishOptions options_;
    std::function<void(const std::string&)> log_;
    std::unique_ptr<HttpClient> http_;
    base::Mutex mutex_;
    std::condition_variable_any wake_;
    bool stop_ SEALMILTER_GUARDED_BY(mutex_) = false;
    bool woken_ SEALMILTER_GUARDED_BY(mutex_) = false;  // enqueue() since run() began its pass
    bool shared_down_ = false;  // the shared queue did not answer (only the sending thread: run() or flush_once())
    struct Retry {
        long backoff_ms = 0;
        std::chrono::steady_clock::time_point next{};
    };
    std::map<std::string, Retry> retry_ SEALMILTER_GUARDED_BY(mutex_);  // queue file -> when to try again
    std::thread thread_;
};

}  // namespace sealmilter::lookup

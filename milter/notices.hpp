// milter/notices.hpp — the background worker that sends due pickup notices (issue 13,
// docs/issuing.md "Notices").
//
// Purpose:   NoticeWorker runs one thread (base::start_worker_thread): every rescan interval
//            (5 s, so a CLI `issued resend` reaches the daemon) and at once when woken (after
//            an issue), it lists the records whose notice is due (the registry's due index,
//            at most max_loaded per pass) and, for each one,
//              1. makes the link's token: 32 bytes from RAND_bytes, base64url (43 characters);
//              2. updates the record BEFORE the mail leaves (notice_due=false, notice_sent_at,
//                 token_hash=sha256_hex(token), token_expires=now+token_ttl, locked=false,
//                 wrong_codes=0, code_hash="") — re-checked under the registry's lock, so two
//                 nodes or threads never send the same notice twice;
//              3. composes the notice (core/notice), signs it when a signer exists for
//                 issue.notice_from, and hands it to the Reinjector (milter.reinject);
//              4. writes one audit line "pickup: event=notice address=<a> client=- ...".
//            A failed send puts the record back (notice_due, notice_attempts+1, the previous
//            link restored with its lock, wrong-code count and code) and tries again after a
//            back-off (1 min doubling to 1 h); an `issued resend` meanwhile (notice_attempts
//            back to 0) is sent at the next pass, whatever the back-off said.
//            issue.notice_interval: a notice for a new issuance waits until the interval since
//            the last notice has passed; a resend (notice_due without a new issuance since the
//            last notice) is sent at once. At most `max_per_pass` notices per pass.
// Ownership: the worker owns its thread, the Reinjector and the registry view it is given.
// Threads:   wake() from any thread; stop() (or the destructor) joins the thread.
// Errors:    nothing thrown out of the thread: every failure is a log line and a retry.
#pragma once

#include "base/clock.hpp"
#include "base/logger.hpp"
#include "base/mutex.hpp"
#include "core/notice.hpp"
#include "keys/issued.hpp"
#include "milter/transaction.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sealmilter::milter {

// The registry as the worker needs it (keys::IssuedRegistry; cli/wiring adapts it, tests
// use an in-memory one).
class NoticeBook {
public:
    using Change = std::function<std::optional<keys::IssuedRecord>(const std::optional<keys::IssuedRecord>&)>;
    virtual ~NoticeBook() = default;
    // At most `limit` records whose notice is due (keys::IssuedRegistry::list_due: the due
    // index, round robin), never every record ever issued.
    virtual std::vector<keys::IssuedRecord> list_due(size_t limit, std::string* error) = 0;
    // keys::IssuedRegistry::update: read-modify-write under the registry's lock.
    virtual bool update(std::string_view address, const Change& change, std::string* error) = 0;
};

struct NoticeOptions {
    core::NoticeSettings notice;               // org name, From, pickup URL, logo bytes
    core::SignSettings sign;                   // crypto.sign_format / digest for the signature
    long long interval = 86400;                // issue.notice_interval (s)
    long long token_ttl = 1209600;             // issue.token_ttl (s)
    std::chrono::milliseconds rescan{5000};    // how often the registry is listed
    size_t max_per_pass = 100;                 // notices per pass (bounded work)
    size_t max_loaded = 400;                   // due records read per pass (bounded memory)
    long long backoff_min = 60;                // after the first failed send (s)
    long long backoff_max = 3600;              // cap (s)
    const base::Clock* clock = nullptr;
};

// Who signs notices now (the snapshot's key ring changes on SIGHUP); nullopt + *why = unsigned.
using NoticeSigner = std::function<std::optional<core::Signer>(std::string* why)>;
// One audit line (pickup.audit_log or the daemon log).
using AuditSink = std::function<void(const std::string& line)>;

// A fresh link token: 32 random bytes, base64url without padding (43 characters).
std::string make_token();

class NoticeWorker {
public:
    NoticeWorker(std::shared_ptr<NoticeBook> book, std::shared_ptr<Reinjector> reinjector, NoticeOptions options,
                 NoticeSigner signer, AuditSink audit, base::Logger log);
    ~NoticeWorker();  // stop()
    NoticeWorker(const NoticeWorker&) = delete;
    NoticeWorker& operator=(const NoticeWorker&) = delete;

    void start();  // starts the thread (once)
    void wake();   // a pass now (after an issue)
    void stop();   // ends the current pass's send, joins the thread

    // One pass on the caller's thread (the thread runs these; tests call it directly).
    // Returns how many notices left.
    size_t pass();

private:
    enum class Due { No, Now, Later };
    Due due(const keys::IssuedRecord& r, std::time_t now) const;
    bool send_one(const keys::IssuedRecord& r, std::time_t now);
    void failed(const keys::IssuedRecord& before, const std::string& token_hash, const std::string& why, std::time_t now);
    void run();

    std::shared_ptr<NoticeBook> book_;
    std::shared_ptr<Reinjector> reinjector_;
    NoticeOptions options_;
    NoticeSigner signer_;
    AuditSink audit_;
    base::Logger log_;

    base::Mutex mu_;
    std::condition_variable_any cv_;
    bool stop_ SEALMILTER_GUARDED_BY(mu_) = false;
    bool woken_ SEALMILTER_GUARDED_BY(mu_) = false;
    struct Retry {
        std::time_t not_before = 0;
        unsigned attempts = 0;  // the record's notice_attempts that failed() wrote
    };
    std::map<std::string, Retry> retry_at_;  // address -> back-off (the worker thread only)
    std::thread thread_;
};

}  // namespace sealmilter::milter

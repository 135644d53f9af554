// milter/notices.cpp — sending due pickup notices (see notices.hpp).
#include "milter/notices.hpp"

#include "base/worker_thread.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <exception>

namespace sealmilter::milter {

std::string make_token() {
    std::array<unsigned char, 32> raw{};
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1)
        throw std::runtime_error("RAND_bytes failed for a pickup token");
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";  // RFC 4648 §5
    std::string out;
    unsigned bits = 0;
    int have = 0;
    for (const unsigned char c : raw) {
        bits = (bits << 8) | c;
        have += 8;
        while (have >= 6) {
            have -= 6;
            out += kAlphabet[(bits >> have) & 63];
        }
    }
    if (have > 0) out += kAlphabet[(bits << (6 - have)) & 63];
    OPENSSL_cleanse(raw.data(), raw.size());
    return out;  // 256 bits = 42 full sextets + 4 bits: 43 characters, no padding
}

NoticeWorker::NoticeWorker(std::shared_ptr<NoticeBook> book, std::shared_ptr<Reinjector> reinjector,
                           NoticeOptions options, NoticeSigner signer, AuditSink audit, base::Logger log)
    : book_(std::move(book)),
      reinjector_(std::move(reinjector)),
      options_(std::move(options)),
      signer_(std::move(signer)),
      audit_(std::move(audit)),
      log_(std::move(log)) {}

NoticeWorker::~NoticeWorker() { stop(); }

void NoticeWorker::start() {
    if (thread_.joinable()) return;
    thread_ = base::start_worker_thread([this] { run(); });
}

void NoticeWorker::wake() {
    {
        const base::MutexLock lock(mu_);
        woken_ = true;
    }
    cv_.notify_one();
}

void NoticeWorker::stop() {
    {
        const base::MutexLock lock(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void NoticeWorker::run() {
    for (;;) {
        {
            base::UniqueMutexLock lock(mu_);
            cv_.wait_for(lock, options_.rescan, [this]() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS { return stop_ || woken_; });
            if (stop_) return;
            woken_ = false;
        }
        try {
            pass();
        } catch (const std::exception& e) {  // never out of the thread: the next pass retries
            log_.error(std::string("pass failed: ") + e.what());
        }
    }
}

// A new issuance since the last notice waits for issue.notice_interval; notice_due without one
// is `issued resend` (forced). A failed send waits for its back-off.
NoticeWorker::Due NoticeWorker::due(const keys::IssuedRecord& r, std::time_t now) const {
    if (!r.notice_due) return Due::No;
    // The back-off holds only while the record still carries the failed attempt: `issued
    // resend` sets notice_attempts to 0 and is sent at once.
    if (const auto it = retry_at_.find(r.address);
        it != retry_at_.end() && r.notice_attempts == it->second.attempts && now < it->second.not_before)
        return Due::Later;
    const bool resend = r.notice_sent_at != 0 && r.issued_at <= r.notice_sent_at;
    if (!resend && r.notice_sent_at != 0 && now < r.notice_sent_at + options_.interval) return Due::Later;
    return Due::Now;
}

size_t NoticeWorker::pass() {
    const std::time_t now = base::now_from(options_.clock);
    std::string error;
    std::vector<keys::IssuedRecord> records = book_->list_due(options_.max_loaded, &error);
    if (!error.empty()) log_.warning("the due notices could not be listed completely: " + error);
    std::sort(records.begin(), records.end(),
              [](const keys::IssuedRecord& a, const keys::IssuedRecord& b) { return a.issued_at < b.issued_at; });
    size_t sent = 0;
    size_t attempted = 0;
    for (const keys::IssuedRecord& r : records) {
        if (attempted == options_.max_per_pass) break;  // the rest in the next pass
        if (due(r, now) != Due::Now) continue;
        ++attempted;
        if (send_one(r, now)) ++sent;
    }
    return sent;
}

bool NoticeWorker::send_one(const keys::IssuedRecord& r, std::time_t now) {
    const std::string token = make_token();
    const std::string token_hash = keys::sha256_hex(token);
    const std::time_t expires = now + options_.token_ttl;
    std::optional<keys::IssuedRecord> before;
    std::string error;
    // The record changes before the mail leaves: a crash after the send cannot send it twice.
    const bool written = book_->update(r.address, [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
        if (!cur || !cur->notice_due) return std::nullopt;  // another node or thread sent it
        before = cur;
        keys::IssuedRecord next = *cur;
        next.notice_due = false;
        next.notice_sent_at = now;
        next.token_hash = token_hash;
        next.token_expires = expires;
        next.locked = false;
        next.wrong_codes = 0;
        next.code_hash.clear();
        next.code_expires = 0;
        return next;
    }, &error);
    if (!written) {
        log_.error("<" + r.address + ">: the record cannot be updated (" + error + "); notice not sent");
        return false;
    }
    if (!before) return false;
    std::string why_unsigned;
    std::string send_error;
    std::string reply;
    try {
        core::NoticeFacts facts{r.address, token, expires, now};
        const std::string notice = core::compose_notice(options_.notice, facts);
        const std::optional<core::Signer> signer = signer_ ? signer_(&why_unsigned) : std::nullopt;
        if (!signer)
            log_.warning("<" + r.address + ">: sent unsigned: no signing key for " + options_.notice.from +
                         (why_unsigned.empty() ? "" : " (" + why_unsigned + ")"));
        send_error = reinjector_->hand_over(
            options_.notice.from, {r.address},
            [&](crypto::ByteSink& out) { core::write_notice(notice, signer ? &*signer : nullptr, options_.sign, out); },
            reply);
    } catch (const std::exception& e) {
        send_error = e.what();
    }
    if (!send_error.empty()) {
        failed(*before, token_hash, send_error, now);
        return false;
    }
    retry_at_.erase(r.address);
    if (before->notice_attempts != 0) {
        book_->update(r.address, [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
            if (!cur) return std::nullopt;
            keys::IssuedRecord next = *cur;
            next.notice_attempts = 0;
            return next;
        }, &error);
    }
    log_.info("<" + r.address + ">: notice handed over to " + reinjector_->target() +
              (reply.empty() ? "" : " (" + reply + ")") + "; link valid until " + crypto::format_time_utc(expires));
    if (audit_) audit_("pickup: event=notice address=" + r.address + " client=- expires=" + std::to_string(expires));
    return true;
}

// The notice did not leave: the record is due again with the previous link (if this attempt's
// link is still the record's), and the next try waits 1 min, 2 min, ... up to 1 h.
void NoticeWorker::failed(const keys::IssuedRecord& before, const std::string& token_hash, const std::string& why,
                          std::time_t now) {
    unsigned attempts = before.notice_attempts + 1;
    std::string error;
    const bool written = book_->update(before.address, [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
        if (!cur) return std::nullopt;
        keys::IssuedRecord next = *cur;
        next.notice_due = true;
        next.notice_attempts = attempts;
        if (keys::digests_equal(cur->token_hash, token_hash)) {
            // The previous link comes back as it was: with its lock, its wrong-code count and
            // its code (a failed notice never hands the old link fresh guesses).
            next.notice_sent_at = before.notice_sent_at;
            next.token_hash = before.token_hash;
            next.token_expires = before.token_expires;
            next.locked = before.locked;
            next.wrong_codes = before.wrong_codes;
            next.code_hash = before.code_hash;
            next.code_expires = before.code_expires;
        }
        return next;
    }, &error);
    long long wait = options_.backoff_min;
    for (unsigned i = 1; i < attempts && wait < options_.backoff_max; ++i) wait *= 2;
    wait = std::min(wait, options_.backoff_max);
    retry_at_[before.address] = Retry{now + static_cast<std::time_t>(wait), attempts};
    log_.warning("<" + before.address + ">: the notice could not be handed over (" + why + "); attempt " +
                 std::to_string(attempts) + ", next in " + std::to_string(wait) + " s" +
                 (written ? "" : "; the record could not be put back (" + error + ")"));
}

}  // namespace sealmilter::milter

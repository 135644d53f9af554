// milter/transaction.hpp — one SMTP transaction as the milter sees it, free of libmilter.
//
// Purpose:   the callbacks only accumulate (envelope, header fields, body into a spool);
//            lookups start at RCPT time on their own threads; every decision is made by core
//            at end of message (STYLE.md). A `require` recipient whose lookup is definite
//            before RCPT is answered gets its own reply there (550 5.7.1 / 451 4.7.1).
//            End of message:
//              - already-encrypted mail passes untouched;
//              - if any accepted recipient cannot get the right outcome now (a lookup failed,
//                or a require miss found late), the whole message is tempfailed: nothing is
//                lost, and on the retry the (now cached) answer is given per recipient at RCPT;
//              - otherwise groups[1..] are re-injected through the milter-bypassing endpoint
//                (a failure tempfails the whole message), their recipients are removed from
//                this transaction, and groups[0] is rewritten in place (header edits + body).
//            dry_run logs every decision and changes nothing.
// Ownership: a Transaction owns its spool and lookup futures; it borrows the actions and the
//            re-injector passed to end_of_message.
// Threads:   one Transaction per SMTP session thread; lookups run on helper threads.
// Errors:    end_of_message() throws on internal failure (I/O, OpenSSL): the adapter turns
//            that into 451 4.7.0; plaintext is never passed for a `require` recipient.
#pragma once

#include "crypto/base64.hpp"
#include "milter/services.hpp"

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::milter {

struct Reply {
    bool accept = true;
    bool temporary = false;  // 4xx when !accept
    std::string code;        // "550"
    std::string xcode;       // "5.7.1"
    std::string text;        // the sentence
};

Reply reply_from(const std::string& line);  // "550 5.7.1 sentence" -> Reply

// What the MTA can do to the message at end of data (libmilter's smfi_* or a test fake).
// Every method throws on failure (the adapter checks each smfi_* result).
class MessageActions {
public:
    virtual ~MessageActions() = default;
    virtual void change_header(const std::string& name, int index, const std::string& value) = 0;
    virtual void delete_header(const std::string& name, int index) = 0;
    virtual void add_header(const std::string& name, const std::string& value) = 0;
    virtual crypto::ByteSink& replace_body() = 0;  // chunks of the new body, in order
    virtual void delete_recipient(const std::string& address) = 0;
};

// Sends a copy of the message to some recipients, bypassing the milter. Returns "" on
// success (the next hop accepted it), else the reason.
class Reinjector {
public:
    virtual ~Reinjector() = default;
    virtual std::string send(const std::string& sender, const std::vector<std::string>& recipients,
                             const std::function<void(crypto::ByteSink&)>& write_message) = 0;
};

struct EomResult {
    enum class Verdict { Accept, Tempfail, Reject };
    Verdict verdict = Verdict::Accept;
    Reply reply;          // for Tempfail / Reject
    std::string summary;  // the one log line for the message
};

class Transaction {
public:
    Transaction(std::shared_ptr<const Services> services, std::string session_id);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    void mail_from(const std::string& sender);
    Reply recipient(const std::string& address);
    void header(const std::string& name, const std::string& value);
    void body(const char* data, size_t len);
    EomResult end_of_message(const std::string& queue_id, MessageActions& actions, Reinjector& reinjector);

    const std::string& tag() const { return tag_; }

private:
    struct Rcpt;
    void log(const std::string& line) const;
    std::vector<lookup::LookupResult> collect_lookups();
    EomResult apply(const core::Decision& d, MessageActions& actions, Reinjector& reinjector);
    core::TransformOptions options_for(const core::Decision& d, const core::EnvelopeGroup& g) const;
    void harvest_inbound();  // never throws, never changes the message

    std::shared_ptr<const Services> services_;
    std::string tag_;  // session id, then the queue id
    std::string sender_;
    std::vector<std::unique_ptr<Rcpt>> rcpts_;
    std::unique_ptr<core::Message> message_;
    bool too_big_ = false;
};

// Strips the angle brackets libmilter leaves around envelope addresses.
std::string bare_address(const std::string& arg);

}  // namespace sealmilter::milter

// milter/transaction.hpp — one SMTP transaction as the milter sees it, free of libmilter.
//
// Purpose:   accumulation and applying a plan, nothing else (STYLE.md). The callbacks only
//            accumulate (envelope, header fields, body into a spool); lookups start at RCPT
//            time through the bounded resolver. A `require` recipient whose answer is definite
//            before RCPT is answered gets its reply there (core::rcpt_reply); an `issue`
//            recipient without a certificate is checked against the issuer there (550 5.7.1
//            when it cannot be issued for, 451 4.7.1 when no key pair is ready) and gets its
//            certificate at end of message, before the plan (docs/issuing.md). At end of message
//            core decides everything (core::plan_message: verdict, header edits, groups,
//            copies, summary); the transaction applies the plan: copies first through the
//            re-injector with the journal (a failure tempfails the whole message before
//            anything changed), then removes their recipients, edits headers and replaces the
//            body of the group that stays.
// Ownership: a Transaction owns its spool and lookup futures; it borrows the actions and the
//            re-injector passed to end_of_message.
// Threads:   one Transaction per SMTP session thread; lookups run on the resolver's workers.
// Logging:   through the snapshot's logger bound to the tag: the session id, then the queue
//            id (one line "queue id X" maps them).
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
    // At 0-based position `index` of the header section (smfi_insheader; 0 = first).
    virtual void insert_header(int index, const std::string& name, const std::string& value) = 0;
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
    // send(), also telling the next hop's final reply ("250 2.0.0 Ok: queued as 4Xyz") so the
    // log can say where the copy went; the default knows no reply.
    virtual std::string hand_over(const std::string& sender, const std::vector<std::string>& recipients,
                                  const std::function<void(crypto::ByteSink&)>& write_message, std::string& reply) {
        reply.clear();
        return send(sender, recipients, write_message);
    }
    // Where copies go, for the log ("127.0.0.1:10027"); empty when unknown.
    virtual std::string target() const { return {}; }
};

struct EomResult {
    enum class Verdict { Accept, Tempfail, Reject };
    Verdict verdict = Verdict::Accept;
    Reply reply;          // for Tempfail / Reject
    std::string summary;  // the one log line for the message
    core::MessageSummary details;  // the same, structured (metrics)
};

class Transaction {
public:
    Transaction(std::shared_ptr<const Services> services, std::string session_id);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    // queue_id: the MTA's {i} at MAIL FROM when it sends it (Postfix does); from then on every
    // line of the message starts with it, after one line mapping the session id to it.
    void mail_from(const std::string& sender, const std::string& queue_id = {});
    Reply recipient(const std::string& address);
    void header(const std::string& name, const std::string& value);
    void body(const char* data, size_t len);
    EomResult end_of_message(const std::string& queue_id, MessageActions& actions, Reinjector& reinjector);

    const std::string& tag() const { return log_.tag(); }
    const base::Logger& log() const { return log_; }

private:
    struct Rcpt;
    core::TransactionFacts facts();  // waits for the lookups
    void check_issuable(core::RecipientDecision& d) const;
    void issue_certificates(core::TransactionFacts& f);
    std::string hand_over_copies(const core::MessagePlan& plan, Reinjector& reinjector);
    void apply(const core::MessagePlan& plan, MessageActions& actions);

    std::shared_ptr<const Services> services_;
    base::Logger log_;  // bound to the session id, then the queue id
    std::string sender_;
    std::vector<std::unique_ptr<Rcpt>> rcpts_;
    std::unique_ptr<core::Message> message_;
    bool too_big_ = false;
};

// Strips the angle brackets libmilter leaves around envelope addresses.
std::string bare_address(const std::string& arg);

}  // namespace sealmilter::milter

// milter/session.hpp — one MTA connection's state, free of libmilter.
//
// Purpose:   what the xxfi_* trampolines in adapter.cpp drive: the negotiated protocol
//            options, the current Transaction, and a failure met while accumulating. Header
//            and body callbacks may run without a reply (SMFIP_NR_HDR / SMFIP_NR_BODY: one
//            round trip less each), so a failure there cannot be answered where it happens:
//            it is kept and the message is tempfailed at end of message.
// Ownership: a Session owns its Transaction; the adapter owns the Session through
//            smfi_setpriv (created by the first callback, freed at close).
// Threads:   one Session per MTA connection, used by that connection's thread only.
// Errors:    accumulate() catches everything (std or not): exceptions never reach libmilter.
//            begin(), recipient() and end_of_message() throw; the adapter's guarded()
//            dispatcher answers 451 4.7.0.
#pragma once

#include "milter/transaction.hpp"

#include <functional>
#include <memory>
#include <string>

namespace sealmilter::milter {

class Session {
public:
    explicit Session(std::string id) : id_(std::move(id)) {}

    bool leadspc = false;  // the MTA keeps the leading space of header values (SMFIP_HDR_LEADSPC)
    bool no_reply_hdr = false;   // SMFIP_NR_HDR negotiated
    bool no_reply_body = false;  // SMFIP_NR_BODY negotiated

    const std::string& id() const { return id_; }
    // The tag of the current message (the session id before MAIL FROM).
    const std::string& tag() const { return tx_ ? tx_->tag() : id_; }

    // MAIL FROM; queue_id is the MTA's {i} macro when it has one already (Postfix), else empty.
    void begin(std::shared_ptr<const Services> services, const std::string& sender, const std::string& queue_id = {});
    Reply recipient(const std::string& arg);
    void header(const std::string& name, const std::string& value);
    void body(const char* data, size_t len);
    // Runs `fn` on the transaction unless an earlier step failed; any failure is kept for
    // end_of_message(). Never throws.
    void accumulate(const char* step, const std::function<void(Transaction&)>& fn) noexcept;
    const std::string& deferred_error() const { return deferred_error_; }

    // Throws the kept failure (or "no MAIL"); else applies the plan, logs the summary line
    // (info; warning when the message is refused or tempfailed) and ends the transaction.
    EomResult end_of_message(const std::string& queue_id, MessageActions& actions, Reinjector& reinjector);
    void abort();

private:
    std::string id_;
    std::unique_ptr<Transaction> tx_;
    std::string deferred_error_;
};

}  // namespace sealmilter::milter

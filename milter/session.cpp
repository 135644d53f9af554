// milter/session.cpp — per-connection state (see session.hpp).
#include "milter/session.hpp"

#include <stdexcept>

namespace sealmilter::milter {

void Session::begin(std::shared_ptr<const Services> services, const std::string& sender, const std::string& queue_id) {
    deferred_error_.clear();
    tx_ = std::make_unique<Transaction>(std::move(services), id_);
    tx_->mail_from(sender, queue_id);
}

Reply Session::recipient(const std::string& arg) {
    if (!tx_) throw std::runtime_error("RCPT without MAIL");
    return tx_->recipient(arg);
}

void Session::accumulate(const char* step, const std::function<void(Transaction&)>& fn) noexcept {
    if (!deferred_error_.empty()) return;
    try {
        if (!tx_) throw std::runtime_error("no transaction (MAIL FROM missing)");
        fn(*tx_);
    } catch (const std::exception& e) {
        deferred_error_ = std::string(step) + ": " + e.what();
    } catch (...) {  // a non-std exception (a C library's callback, a thrown int) must not reach libmilter
        deferred_error_ = std::string(step) + ": unknown exception";
    }
    if (!deferred_error_.empty() && tx_) tx_->log().debug("failed, answered at end of message: " + deferred_error_);
}

void Session::header(const std::string& name, const std::string& value) {
    // Without SMFIP_HDR_LEADSPC the MTA strips the space after the colon; the model keeps it.
    accumulate("header", [&](Transaction& tx) { tx.header(name, leadspc ? value : " " + value); });
}

void Session::body(const char* data, size_t len) {
    accumulate("body", [&](Transaction& tx) { tx.body(data, len); });
}

EomResult Session::end_of_message(const std::string& queue_id, MessageActions& actions, Reinjector& reinjector) {
    if (!deferred_error_.empty() || !tx_) {
        const std::string why = tx_ ? deferred_error_ : "end of message without MAIL";
        deferred_error_.clear();
        tx_.reset();
        throw std::runtime_error(why);
    }
    // On a throw the transaction stays until abort / the next MAIL, so the failure is logged
    // under its queue id.
    EomResult r = tx_->end_of_message(queue_id, actions, reinjector);
    const core::MessageSummary& d = r.details;
    std::string sources;
    for (const std::string& s : d.sources) sources += (sources.empty() ? "" : ",") + s;
    tx_->log().debug("lookups waited " + std::to_string(d.lookup_wait.count()) + " ms, planned in " +
                     std::to_string(d.planning.count()) + " ms, sources " + (sources.empty() ? "-" : sources));
    tx_->log().log(r.verdict == EomResult::Verdict::Accept ? base::LogLevel::Info : base::LogLevel::Warning, r.summary);
    tx_.reset();
    return r;
}

void Session::abort() {
    tx_.reset();
    deferred_error_.clear();
}

}  // namespace sealmilter::milter

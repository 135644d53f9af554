// milter/reinject.hpp — hands a split-off copy to the MTA's milter-bypassing SMTP service.
//
// Purpose:   a minimal, blocking SMTP client (RFC 5321): EHLO, MAIL FROM, RCPT TO (every one
//            must be accepted), DATA with dot-stuffing, the final reply must be 2xx. Used for
//            the copies of a split message (SPEC §4) through e.g. Postfix's
//            `127.0.0.1:10027 inet ... smtpd -o smtpd_milters=` service.
// Ownership: one connection per send(), closed before it returns.
// Threads:   send() is re-entrant; one SmtpReinjector may serve many sessions.
// Errors:    every failure (connect, timeout, a non-2xx/3xx reply) is a returned reason.
#pragma once

#include "milter/transaction.hpp"

#include <string>

namespace sealmilter::milter {

class SmtpReinjector final : public Reinjector {
public:
    SmtpReinjector(std::string host, int port, long timeout_ms, std::string helo = "sealmilter.localhost")
        : host_(std::move(host)), port_(port), timeout_ms_(timeout_ms), helo_(std::move(helo)) {}
    std::string send(const std::string& sender, const std::vector<std::string>& recipients,
                     const std::function<void(crypto::ByteSink&)>& write_message) override;
    std::string hand_over(const std::string& sender, const std::vector<std::string>& recipients,
                          const std::function<void(crypto::ByteSink&)>& write_message, std::string& reply) override;
    std::string target() const override;

private:
    std::string host_;
    int port_;
    long timeout_ms_;
    std::string helo_;
};

}  // namespace sealmilter::milter

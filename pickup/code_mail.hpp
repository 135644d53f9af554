// pickup/code_mail.hpp — the mail that carries a one-time code (proof of the mailbox).
//
// Purpose:   one text/plain part, "Your code XXXXXXXX" (the code is the one token directly after
//            the word "code", docs/issuing.md), From issue.notice_from, To the address, never
//            encrypted; signed with core/sign (write_signed_message) when a signer exists for
//            the From address, else sent unsigned with a warning line. It leaves through the
//            milter.reinject service (milter::Reinjector), so the milter does not see it again.
// Ownership: borrows the reinjector and the signer source.
// Threads:   re-entrant.
// Errors:    send_code_mail returns "" or the reason the mail did not leave (never throws).
#pragma once

#include "base/logger.hpp"
#include "core/sign.hpp"
#include "milter/transaction.hpp"

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::pickup {

struct MailSigner {
    core::Signer signer;
    core::SignedEntityOptions options;
};
// Who signs mail from `from`; nullopt and *why when nobody can (then the mail goes unsigned).
using SignerFor = std::function<std::optional<MailSigner>(std::string_view from, std::string* why)>;

// The unsigned message (CRLF): header section, empty line, body.
std::string code_mail(std::string_view org_name, std::string_view from, std::string_view to, std::string_view code,
                      std::time_t now);

std::string send_code_mail(milter::Reinjector& out, const SignerFor& signer_for, const base::Logger& log,
                           std::string_view org_name, std::string_view from, std::string_view to,
                           std::string_view code, std::time_t now);

}  // namespace sealmilter::pickup

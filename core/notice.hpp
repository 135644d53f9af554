// core/notice.hpp — the pickup notice: the separate mail that tells a recipient a secure message
// arrived and how to read it (issue 13, docs/issuing.md "Notices").
//
// Purpose:   compose_notice() builds the RFC 5322 message (CRLF) with GMime: From
//            issue.notice_from, To the address, Subject "<org>: a secure message for you",
//            Date, Message-ID, Auto-Submitted: auto-generated (RFC 3834 §5, so no autoresponder
//            answers it), multipart/alternative text/plain + text/html (inside
//            multipart/related with the logo as an inline image when issue.logo_file is set):
//            a secure message arrived; open the link `<pickup.url>/p/<token>`, prove the
//            address with a code that is mailed to it, choose a password, download the key and
//            import it into Outlook, Thunderbird or Apple Mail; when the link expires. It never
//            carries a key or a code. Every text from configuration is HTML-escaped.
//            write_notice() writes it signed (core/sign, write_signed_message) when a signer
//            exists for the From address, else unchanged (the caller logs the warning).
// Ownership: values in, the message out as a string; write_notice borrows the sink.
// Threads:   re-entrant.
// Errors:    std::runtime_error when GMime cannot write the message; signing errors throw as
//            in core/sign (the caller keeps the notice due and retries).
#pragma once

#include "base/encoding.hpp"  // base::html_escape

#include "core/sign.hpp"
#include "crypto/base64.hpp"

#include <ctime>
#include <string>

namespace sealmilter::core {

using base::html_escape;  // the one HTML escaping (base/encoding.hpp)

struct NoticeSettings {
    std::string org_name = "Example Bank";  // issue.org_name
    std::string from;                       // issue.notice_from
    std::string pickup_url;                 // pickup.url (no trailing slash needed)
    std::string logo_png;                   // the bytes of issue.logo_file; empty = no logo
};

struct NoticeFacts {
    std::string to;             // the recipient (lower-case addr-spec)
    std::string token;          // 43 characters base64url: the link's secret
    std::time_t expires = 0;    // when the link stops working
    std::time_t now = 0;        // the Date field
};

// The pickup link: "<pickup_url>/p/<token>" (one slash between them).
std::string pickup_link(const std::string& pickup_url, const std::string& token);


// The unsigned notice (CRLF line endings).
std::string compose_notice(const NoticeSettings& settings, const NoticeFacts& facts);

// The notice as it leaves: signed by `signer` (detached, as crypto.sign_format says in `sign`)
// or, when `signer` is null, as composed.
void write_notice(const std::string& notice, const Signer* signer, const SignSettings& sign, crypto::ByteSink& out);

}  // namespace sealmilter::core

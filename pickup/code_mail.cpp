// pickup/code_mail.cpp — composing and sending the code mail (see code_mail.hpp).
#include "pickup/code_mail.hpp"

#include "core/message.hpp"
#include "crypto/base64.hpp"
#include "pickup/guard.hpp"

#include <exception>

namespace sealmilter::pickup {

namespace {

std::string rfc5322_date(std::time_t now) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
}

// The organisation's name in a display name / subject: printable ASCII only, no specials that
// would need quoting (the body is where the name is shown in full).
std::string header_safe(std::string_view s) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == ',' || c == ';' ||
            c == ':' || c == '(' || c == ')' || c == '@' || c == '[' || c == ']')
            continue;
        out.push_back(c);
    }
    return out.empty() ? "Secure mail" : out;
}

std::string ascii_only(std::string_view s) {
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
    }
    return out;
}

}  // namespace

std::string code_mail(std::string_view org_name, std::string_view from, std::string_view to, std::string_view code,
                      std::time_t now) {
    const std::string org = header_safe(org_name);
    const size_t at = from.rfind('@');
    const std::string domain = at == std::string_view::npos ? "localhost" : std::string(from.substr(at + 1));
    std::string m;
    m += "From: " + org + " <" + std::string(from) + ">\r\n";
    m += "To: <" + std::string(to) + ">\r\n";
    m += "Subject: Your code for your secure messages from " + org + "\r\n";
    m += "Date: " + rfc5322_date(now) + "\r\n";
    m += "Message-ID: <" + random_token(18) + "@" + domain + ">\r\n";
    m += "Auto-Submitted: auto-generated\r\n";
    m += "MIME-Version: 1.0\r\n";
    m += "Content-Type: text/plain; charset=us-ascii\r\n";
    m += "Content-Transfer-Encoding: 7bit\r\n\r\n";
    m += "Hello,\r\n\r\n";
    // The code stands alone directly after the word "code" (no punctuation a reader or a tool
    // could take for part of it).
    m += "Your code " + std::string(code) + "\r\n\r\n";
    m += "Enter it on the page where you asked for it. It is valid for 15 minutes and\r\n";
    m += "works once.\r\n\r\n";
    m += "If you did not ask for a code, you can ignore this mail; nobody can use\r\n";
    m += "the code without also having the link from your earlier mail.\r\n\r\n";
    m += ascii_only(org_name) + "\r\n";
    return m;
}

std::string send_code_mail(milter::Reinjector& out, const SignerFor& signer_for, const base::Logger& log,
                           std::string_view org_name, std::string_view from, std::string_view to,
                           std::string_view code, std::time_t now) {
    try {
        std::string text = code_mail(org_name, from, to, code, now);
        std::string why = "no signer is configured";
        const std::optional<MailSigner> signer = signer_for ? signer_for(from, &why) : std::nullopt;
        if (signer) {
            core::Message message;
            core::MessageSplitter split(message);
            split.feed(text.data(), text.size());
            split.finish();
            crypto::StringSink signed_text;
            core::write_signed_message(message, signer->signer, signer->options, "\r\n", signed_text);
            text = std::move(signed_text.out);
        } else {
            log.warning("pickup: the code mail to <" + std::string(to) + "> goes unsigned: no signing key for <" +
                        std::string(from) + ">: " + why);
        }
        return out.send(std::string(from), {std::string(to)},
                        [&text](crypto::ByteSink& sink) { sink.write(text.data(), text.size()); });
    } catch (const std::exception& e) {
        return std::string("the code mail could not be made: ") + e.what();
    }
}

}  // namespace sealmilter::pickup

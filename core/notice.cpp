// core/notice.cpp — the pickup notice (see notice.hpp).
#include "core/notice.hpp"

#include "core/mime.hpp"

#include <gmime/gmime.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace sealmilter::core {
namespace {

struct GObjectUnref {
    void operator()(void* p) const noexcept {
        if (p != nullptr) g_object_unref(p);
    }
};
struct FormatOptionsFree {
    void operator()(GMimeFormatOptions* p) const noexcept { g_mime_format_options_free(p); }
};
struct DateTimeUnref {
    void operator()(GDateTime* p) const noexcept { g_date_time_unref(p); }
};
template <typename T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

std::string expiry_text(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    const size_t n = std::strftime(buf, sizeof buf, "%d %B %Y, %H:%M UTC", &tm);
    return std::string(buf, n);
}

std::string domain_of(const std::string& address) {
    const size_t at = address.rfind('@');
    return at == std::string::npos ? std::string("localhost") : address.substr(at + 1);
}

std::string random_hex(size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1)
        throw std::runtime_error("RAND_bytes failed for a Message-ID");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : raw) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
    return out;
}

std::string plain_text(const NoticeSettings& s, const NoticeFacts& f, const std::string& link) {
    return s.org_name + " has sent you a secure (encrypted) message.\n"
           "\n"
           "It was delivered to your mailbox as a separate message. To read it, you need the\n"
           "personal key that " + s.org_name + " has prepared for " + f.to + ":\n"
           "\n"
           "1. Open this link:\n"
           "   " + link + "\n"
           "2. Ask for a code. It is sent to this address in a separate mail; enter it on the page\n"
           "   to prove that the mailbox is yours.\n"
           "3. Choose a password and download your key (a .p12 file).\n"
           "4. Import the file into your mail program (Outlook, Thunderbird or Apple Mail); the\n"
           "   page shows how, step by step. From then on this message and every later secure\n"
           "   message opens in your mail program.\n"
           "\n"
           "The link works until " + expiry_text(f.expires) + ". This mail never contains your key or a code,\n"
           "and " + s.org_name + " will never ask for your password.\n"
           "\n"
           "-- \n" + s.org_name + "\n";
}

std::string html_text(const NoticeSettings& s, const NoticeFacts& f, const std::string& link, bool logo) {
    const std::string org = html_escape(s.org_name);
    const std::string href = html_escape(link);
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + org +
        ": a secure message for you</title></head>\n"
        "<body style=\"font-family: Arial, Helvetica, sans-serif; color: #1a1a1a; max-width: 40em;\">\n";
    if (logo) h += "<p><img src=\"cid:logo@sealmilter\" alt=\"" + org + "\" style=\"max-height: 60px;\"></p>\n";
    h += "<h1 style=\"font-size: 1.4em;\">A secure message for you</h1>\n"
         "<p>" + org + " has sent you a secure (encrypted) message. It was delivered to your mailbox as a "
         "separate message. To read it, you need the personal key that " + org + " has prepared for <strong>" +
         html_escape(f.to) + "</strong>:</p>\n"
         "<ol>\n"
         "<li>Open this link: <a href=\"" + href + "\">" + href + "</a></li>\n"
         "<li>Ask for a code. It is sent to this address in a separate mail; enter it on the page to prove "
         "that the mailbox is yours.</li>\n"
         "<li>Choose a password and download your key (a .p12 file).</li>\n"
         "<li>Import the file into your mail program (Outlook, Thunderbird or Apple Mail); the page shows how, "
         "step by step. From then on this message and every later secure message opens in your mail program.</li>\n"
         "</ol>\n"
         "<p>The link works until " + html_escape(expiry_text(f.expires)) + ". This mail never contains your key "
         "or a code, and " + org + " will never ask for your password.</p>\n"
         "<p>" + org + "</p>\n</body></html>\n";
    return h;
}

GPtr<GMimeObject> text_part(const char* subtype, const std::string& text) {
    GPtr<GMimeTextPart> part(g_mime_text_part_new_with_subtype(subtype));
    g_mime_text_part_set_text(part.get(), text.c_str());  // charset utf-8 when needed
    // 7bit when the text is ASCII (so the link stays whole on its line, for people and for
    // tools that read the raw mail); quoted-printable when the organisation name is not.
    g_mime_part_set_content_encoding(
        GMIME_PART(part.get()), g_mime_part_get_best_content_encoding(GMIME_PART(part.get()), GMIME_ENCODING_CONSTRAINT_7BIT));
    return GPtr<GMimeObject>(GMIME_OBJECT(part.release()));
}

GPtr<GMimeObject> logo_part(const std::string& png) {
    GPtr<GMimePart> part(g_mime_part_new_with_type("image", "png"));
    GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(png.data(), png.size()));
    GPtr<GMimeDataWrapper> content(g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
    g_mime_part_set_content(part.get(), content.get());  // takes its own reference
    g_mime_part_set_content_encoding(part.get(), GMIME_CONTENT_ENCODING_BASE64);
    g_mime_object_set_content_id(GMIME_OBJECT(part.get()), "logo@sealmilter");
    g_mime_object_set_disposition(GMIME_OBJECT(part.get()), "inline");
    g_mime_part_set_filename(part.get(), "logo.png");
    return GPtr<GMimeObject>(GMIME_OBJECT(part.release()));
}

}  // namespace

std::string pickup_link(const std::string& pickup_url, const std::string& token) {
    std::string base = pickup_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/p/" + token;
}

std::string compose_notice(const NoticeSettings& s, const NoticeFacts& f) {
    ensure_gmime();
    const std::string link = pickup_link(s.pickup_url, f.token);
    GPtr<GMimeMessage> msg(g_mime_message_new(TRUE));
    g_mime_message_add_mailbox(msg.get(), GMIME_ADDRESS_TYPE_FROM, s.org_name.c_str(), s.from.c_str());
    g_mime_message_add_mailbox(msg.get(), GMIME_ADDRESS_TYPE_TO, nullptr, f.to.c_str());
    g_mime_message_set_subject(msg.get(), (s.org_name + ": a secure message for you").c_str(), "utf-8");
    std::unique_ptr<GDateTime, DateTimeUnref> date(g_date_time_new_from_unix_utc(f.now));
    g_mime_message_set_date(msg.get(), date.get());
    g_mime_message_set_message_id(msg.get(), ("notice." + random_hex(16) + "@" + domain_of(s.from)).c_str());
    g_mime_object_set_header(GMIME_OBJECT(msg.get()), "Auto-Submitted", "auto-generated", nullptr);

    GPtr<GMimeMultipart> alternative(g_mime_multipart_new_with_subtype("alternative"));
    g_mime_multipart_add(alternative.get(), text_part("plain", plain_text(s, f, link)).get());
    g_mime_multipart_add(alternative.get(), text_part("html", html_text(s, f, link, !s.logo_png.empty())).get());
    if (s.logo_png.empty()) {
        g_mime_message_set_mime_part(msg.get(), GMIME_OBJECT(alternative.get()));
    } else {
        // RFC 2387: the root (first part) is the alternative; the logo is referenced by cid:.
        GPtr<GMimeMultipart> related(g_mime_multipart_new_with_subtype("related"));
        g_mime_object_set_content_type_parameter(GMIME_OBJECT(related.get()), "type", "multipart/alternative");
        g_mime_multipart_add(related.get(), GMIME_OBJECT(alternative.get()));
        g_mime_multipart_add(related.get(), logo_part(s.logo_png).get());
        g_mime_message_set_mime_part(msg.get(), GMIME_OBJECT(related.get()));
    }
    std::unique_ptr<GMimeFormatOptions, FormatOptionsFree> fmt(g_mime_format_options_new());
    g_mime_format_options_set_newline_format(fmt.get(), GMIME_NEWLINE_FORMAT_DOS);
    GPtr<GMimeStream> out(g_mime_stream_mem_new());
    if (g_mime_object_write_to_stream(GMIME_OBJECT(msg.get()), fmt.get(), out.get()) < 0)
        throw std::runtime_error("GMime could not write the notice");
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));  // borrowed
    return std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

void write_notice(const std::string& notice, const Signer* signer, const SignSettings& sign, crypto::ByteSink& out) {
    if (signer == nullptr) {
        out.write(notice.data(), notice.size());
        return;
    }
    Message m;
    MessageSplitter split(m);
    split.feed(notice.data(), notice.size());
    split.finish();
    write_signed_message(m, *signer, entity_options(*signer, sign), "\r\n", out);
}

}  // namespace sealmilter::core

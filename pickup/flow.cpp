// pickup/flow.cpp — the pickup routes and their checks (see flow.hpp, docs/issuing.md).
#include "pickup/flow.hpp"

#include "crypto/pkcs12.hpp"
#include "keys/issued.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <exception>

namespace sealmilter::pickup {

namespace {

constexpr std::string_view kLinkPrefix = "/p/";
constexpr std::string_view kDownloadPrefix = "/d/";
constexpr std::string_view kRecentNote = "A code was sent recently; check your mailbox.";

// A reference, not a copy: a password must exist only in the form, which ~Request wipes.
const std::string& field(const HttpRequest& r, const std::string& name) {
    static const std::string kNone;
    const auto it = r.form.find(name);
    return it == r.form.end() ? kNone : it->second;
}

// The file name of a download: the address with anything unusual replaced (the address is a
// dot-atom by construction, see keys::uncertifiable_reason; this only keeps the header sane).
std::string file_name(std::string_view address) {
    std::string n;
    for (const char c : address) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '@' || c == '_' || c == '+' || c == '-';
        n.push_back(ok ? c : '_');
    }
    return n + ".p12";
}

}  // namespace

Flow::Flow(PickupSettings settings, PickupDeps deps)
    : settings_(std::move(settings)),
      deps_(std::move(deps)),
      look_{settings_.org_name, !settings_.logo_png.empty()},
      limiter_(settings_.client_per_minute, settings_.client_burst) {}

HttpResponse Flow::page(unsigned status, std::string body) const {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

HttpResponse Flow::handle(const HttpRequest& request) {
    try {
        return route(request);
    } catch (const std::exception& e) {
        deps_.log.error(std::string("pickup: ") + request.method + " " + request.path.substr(0, 3) +
                        "...: " + e.what());
        return page(500, page_unavailable(look_));
    }
}

HttpResponse Flow::route(const HttpRequest& request) {
    const std::string& path = request.path;
    const bool get = request.method == "GET" || request.method == "HEAD";
    const bool post = request.method == "POST";
    const bool dynamic = path.rfind(kLinkPrefix, 0) == 0 || path.rfind(kDownloadPrefix, 0) == 0;
    if (dynamic && !limiter_.allow(request.client, deps_.backend ? deps_.backend->now() : std::time(nullptr))) {
        deps_.audit->event("rate_limited", "", request.client, {{"limit", "client"}});
        HttpResponse r = page(429, page_too_many(look_));
        r.headers.emplace_back("Retry-After", "60");
        return r;
    }
    if (path.rfind(kLinkPrefix, 0) == 0) {
        const std::string rest = path.substr(kLinkPrefix.size());
        const size_t slash = rest.find('/');
        const std::string token = rest.substr(0, slash);
        const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
        if (action.empty() && get) return show_link(token, request);
        if (action == "enter" && get) return show_entry(token, request);
        if (action == "code" && post) return send_code(token, request);
        if (action == "download" && post) return download(token, request);
        if (action == "code" || action == "download" || action.empty()) {
            HttpResponse r = page(405, page_not_found(look_));
            r.headers.emplace_back("Allow", action.empty() ? "GET, HEAD" : "POST");
            return r;
        }
        return page(404, page_not_found(look_));
    }
    if (path.rfind(kDownloadPrefix, 0) == 0) {
        // Only a GET delivers the file: a HEAD (or anything else) must not use the link up.
        if (request.method == "GET") return fetch(path.substr(kDownloadPrefix.size()), request);
        HttpResponse r = page(405, page_not_found(look_));
        r.headers.emplace_back("Allow", "GET");
        return r;
    }
    if (!get) {
        HttpResponse r = page(405, page_not_found(look_));
        r.headers.emplace_back("Allow", "GET, HEAD");
        return r;
    }
    return static_file(path);
}

HttpResponse Flow::static_file(const std::string& path) const {
    HttpResponse r;
    if (path == "/" || path.empty()) return page(200, page_home(look_));
    if (path == "/help") return page(200, page_help(look_));
    if (path == "/style.css") {
        r.content_type = "text/css; charset=utf-8";
        r.body = stylesheet();
        r.cacheable = true;
        return r;
    }
    if (path == "/logo.png" && !settings_.logo_png.empty()) {
        r.content_type = "image/png";
        r.body = settings_.logo_png;
        r.cacheable = true;
        return r;
    }
    if (path.rfind("/img/", 0) == 0 && path.size() > 9 && path.compare(path.size() - 4, 4, ".svg") == 0) {
        if (std::optional<std::string> svg = svg_image(std::string_view(path).substr(5, path.size() - 9))) {
            r.content_type = "image/svg+xml";
            r.body = std::move(*svg);
            r.cacheable = true;
            return r;
        }
    }
    if (path == "/ca.pem" && deps_.backend) {
        r.body = deps_.backend->ca_pem();
        if (!r.body.empty()) {
            r.content_type = "application/x-pem-file";
            r.headers.emplace_back("Content-Disposition", "attachment; filename=\"ca.pem\"");
            return r;
        }
    }
    return page(404, page_not_found(look_));
}

bool Flow::record_ok(const keys::IssuedRecord& r, std::string_view token_hash, std::time_t now) const {
    // A picked_up record can be picked up again unless issue.keep_escrow = false removed its key.
    const bool state_ok = r.state == keys::IssuedState::Escrowed ||
                          (r.state == keys::IssuedState::PickedUp && deps_.backend->keeps_escrow());
    return state_ok && !r.locked && !r.token_hash.empty() && keys::digests_equal(r.token_hash, token_hash) &&
           now < r.token_expires;
}

std::optional<Flow::Link> Flow::link(std::string_view token, const std::string& client, std::time_t now) const {
    if (!well_formed_token(token) || !deps_.backend) {
        deps_.audit->event("bad_link", "", client, {{"reason", "malformed"}});
        return std::nullopt;
    }
    const std::string th = keys::sha256_hex(token);
    std::optional<keys::IssuedRecord> r = deps_.backend->by_token_hash(th);
    if (!r) {
        deps_.audit->event("bad_link", "", client, {{"reason", "unknown"}});
        return std::nullopt;
    }
    if (!record_ok(*r, th, now)) {
        const char* why = r->locked ? "locked" : now >= r->token_expires ? "expired" : keys::issued_state_name(r->state);
        deps_.audit->event("bad_link", r->address, client, {{"reason", why}});
        return std::nullopt;
    }
    return Link{std::move(*r), std::string(token), th};
}

HttpResponse Flow::show_link(const std::string& token, const HttpRequest& request) {
    const std::time_t now = deps_.backend ? deps_.backend->now() : std::time(nullptr);
    const std::optional<Link> l = link(token, request.client, now);
    if (!l) return page(404, page_not_valid(look_));
    return page(200, page_waiting(look_, l->record.address, token, csrf_.issue(l->token_hash, "code", now)));
}

HttpResponse Flow::show_entry(const std::string& token, const HttpRequest& request) {
    const std::time_t now = deps_.backend ? deps_.backend->now() : std::time(nullptr);
    const std::optional<Link> l = link(token, request.client, now);
    if (!l) return page(404, page_not_valid(look_));
    return code_entry(*l, now, "Enter the code from the most recent mail we sent you.", "");
}

HttpResponse Flow::code_entry(const Link& l, std::time_t now, std::string_view note, std::string_view error,
                              unsigned status) const {
    return page(status, page_code_entry(look_, l.record.address, l.token, csrf_.issue(l.token_hash, "download", now),
                                        csrf_.issue(l.token_hash, "code", now), note, error));
}

HttpResponse Flow::send_code(const std::string& token, const HttpRequest& request) {
    const std::time_t now = deps_.backend ? deps_.backend->now() : std::time(nullptr);
    // CSRF first: a forged POST does nothing at all, not even a registry read.
    if (request.form_too_large || !well_formed_token(token) ||
        !csrf_.check(field(request, "csrf"), keys::sha256_hex(token), "code", now)) {
        deps_.audit->event("csrf_refused", "", request.client, {{"form", "code"}});
        return page(403, page_forbidden(look_));
    }
    const std::optional<Link> l = link(token, request.client, now);
    if (!l) return page(404, page_not_valid(look_));
    enum class Outcome { Invalid, Limited, Made } outcome = Outcome::Invalid;
    const std::string code = make_code();
    const unsigned per_hour = settings_.code_mails_per_hour;
    const long ttl = settings_.code_ttl_s;
    std::string error;
    const bool written = deps_.backend->update(
        l->record.address,
        [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
            if (!cur || !record_ok(*cur, l->token_hash, now)) return std::nullopt;
            keys::IssuedRecord r = *cur;
            std::erase_if(r.code_mails, [now](std::time_t t) { return t + 3600 <= now || t > now + 60; });
            if (r.code_mails.size() >= per_hour) {
                outcome = Outcome::Limited;
                return r.code_mails.size() == cur->code_mails.size() ? std::nullopt : std::optional(r);
            }
            r.code_mails.push_back(now);
            r.code_hash = code_hash(code, l->token_hash);
            r.code_expires = now + ttl;
            outcome = Outcome::Made;
            return r;
        },
        &error);
    if (!written) {
        deps_.log.error("pickup: <" + l->record.address + ">: " + error);
        return page(503, page_unavailable(look_));
    }
    if (outcome == Outcome::Invalid) return page(404, page_not_valid(look_));
    if (outcome == Outcome::Limited) {
        deps_.audit->event("rate_limited", l->record.address, request.client, {{"limit", "code_mails"}});
        return code_entry(*l, now, kRecentNote, "");
    }
    const std::string failed = send_code_mail(*deps_.mail, deps_.signer_for, deps_.log, settings_.org_name,
                                              settings_.notice_from, l->record.address, code, now);
    if (!failed.empty()) {
        // The code never reached the mailbox: it must not count against the limit nor stay valid.
        const std::string sent_hash = code_hash(code, l->token_hash);
        deps_.backend->update(
            l->record.address,
            [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
                if (!cur || cur->code_hash != sent_hash) return std::nullopt;
                keys::IssuedRecord r = *cur;
                r.code_hash.clear();
                r.code_expires = 0;
                const auto it = std::find(r.code_mails.begin(), r.code_mails.end(), now);
                if (it != r.code_mails.end()) r.code_mails.erase(it);
                return r;
            },
            &error);
        deps_.audit->event("mail_failed", l->record.address, request.client, {{"reason", failed}});
        deps_.log.error("pickup: the code mail to <" + l->record.address + "> did not leave: " + failed);
        return page(503, page_unavailable(look_));
    }
    deps_.audit->event("code_sent", l->record.address, request.client);
    return code_entry(*l, now, "", "");
}

HttpResponse Flow::download(const std::string& token, const HttpRequest& request) {
    const std::time_t now = deps_.backend ? deps_.backend->now() : std::time(nullptr);
    if (request.form_too_large || !well_formed_token(token) ||
        !csrf_.check(field(request, "csrf"), keys::sha256_hex(token), "download", now)) {
        deps_.audit->event("csrf_refused", "", request.client, {{"form", "download"}});
        return page(403, page_forbidden(look_));
    }
    const std::optional<Link> l = link(token, request.client, now);
    if (!l) return page(404, page_not_valid(look_));
    const std::string& password = field(request, "password");
    const std::string& again = field(request, "password2");
    // The password is checked before the code, so a typo there does not cost a code attempt.
    if (password.size() < 8) return code_entry(*l, now, "", "The password must have at least 8 characters.", 400);
    if (password.size() > 256) return code_entry(*l, now, "", "The password is too long (256 characters at most).", 400);
    if (password != again) return code_entry(*l, now, "", "The two passwords are not the same.", 400);
    const std::string typed = normalise_code(field(request, "code"));
    enum class Outcome { Invalid, Wrong, Locked, Right } outcome = Outcome::Invalid;
    unsigned wrong = 0;
    const unsigned max_wrong = settings_.max_wrong_codes;
    std::string error;
    const bool written = deps_.backend->update(
        l->record.address,
        [&](const std::optional<keys::IssuedRecord>& cur) -> std::optional<keys::IssuedRecord> {
            if (!cur || !record_ok(*cur, l->token_hash, now)) return std::nullopt;
            keys::IssuedRecord r = *cur;
            // An expired or absent code compares as wrong; the hashes are compared in constant time.
            const bool live = !r.code_hash.empty() && now < r.code_expires;
            const std::string presented = code_hash(typed, l->token_hash);
            const bool match = keys::digests_equal(presented, r.code_hash);
            if (live && !typed.empty() && match) {
                r.code_hash.clear();  // used up: every download needs a fresh code
                r.code_expires = 0;
                r.wrong_codes = 0;  // a right code resets the count (docs/issuing.md)
                outcome = Outcome::Right;
                return r;
            }
            wrong = ++r.wrong_codes;
            outcome = Outcome::Wrong;
            if (r.wrong_codes >= max_wrong) {
                r.locked = true;
                r.code_hash.clear();
                r.code_expires = 0;
                outcome = Outcome::Locked;
            }
            return r;
        },
        &error);
    if (!written) {
        deps_.log.error("pickup: <" + l->record.address + ">: " + error);
        return page(503, page_unavailable(look_));
    }
    switch (outcome) {
        case Outcome::Invalid: return page(404, page_not_valid(look_));
        case Outcome::Wrong:
            deps_.audit->event("wrong_code", l->record.address, request.client, {{"count", std::to_string(wrong)}});
            return code_entry(*l, now, "", "That code is not right or has expired. Check the mail, or ask for a new code.",
                              400);
        case Outcome::Locked:
            deps_.audit->event("wrong_code", l->record.address, request.client, {{"count", std::to_string(wrong)}});
            deps_.audit->event("locked", l->record.address, request.client);
            return page(404, page_not_valid(look_));
        case Outcome::Right: break;
    }
    return prepare(*l, request, field(request, "legacy") == "1");
}

HttpResponse Flow::prepare(const Link& l, const HttpRequest& request, bool legacy) {
    const std::time_t now = deps_.backend->now();
    std::string error;
    const std::optional<crypto::KeyMaterial> m = deps_.backend->key_material(l.record, &error);
    if (!m) {
        deps_.log.error("pickup: the key of <" + l.record.address + "> cannot be read: " + error);
        deps_.audit->event("pickup_failed", l.record.address, request.client);
        return page(503, page_unavailable(look_));
    }
    const std::string& password = field(request, "password");
    Download d{crypto::write_pkcs12_all({&*m}, password,
                                        legacy ? crypto::Pkcs12Protection::TripleDes : crypto::Pkcs12Protection::Aes256),
               l.record, legacy, now + kDownloadLifetime};
    const std::string id = random_token();
    {
        const base::MutexLock lock(mu_);
        std::erase_if(downloads_, [now](const auto& e) { return e.second.expires <= now; });
        if (downloads_.size() >= kMaxDownloads) {
            deps_.log.warning("pickup: " + std::to_string(kMaxDownloads) + " downloads are pending; <" +
                              l.record.address + "> has to try again");
            return page(503, page_unavailable(look_));
        }
        downloads_.emplace(id, std::move(d));
    }
    deps_.audit->event("key_ready", l.record.address, request.client, {{"format", legacy ? "3des" : "aes256"}});
    return page(200, page_ready(look_, l.record.address, id, legacy));
}

HttpResponse Flow::fetch(const std::string& id, const HttpRequest& request) {
    const std::time_t now = deps_.backend ? deps_.backend->now() : std::time(nullptr);
    std::optional<Download> d;
    {
        const base::MutexLock lock(mu_);
        const auto it = downloads_.find(id);
        if (it != downloads_.end()) {
            if (it->second.expires > now) d = std::move(it->second);
            downloads_.erase(it);  // one use
        }
    }
    if (!d) return page(404, page_not_valid(look_));
    HttpResponse r;
    r.content_type = "application/x-pkcs12";
    r.body = std::move(d->der);
    r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + file_name(d->record.address) + "\"");
    // The pickup counts only once the file went out whole (the service calls this from MHD's
    // completion callback): a broken transfer leaves the record and the escrowed key as they were.
    d->der.clear();
    r.after = [this, dl = std::move(*d), client = request.client](bool complete) { delivered(dl, client, complete); };
    return r;
}

void Flow::delivered(const Download& d, const std::string& client, bool complete) const {
    const std::string format = d.legacy ? "3des" : "aes256";
    if (!complete) {
        deps_.audit->event("pickup_failed", d.record.address, client, {{"format", format}, {"reason", "transfer"}});
        deps_.log.warning("pickup: the download of <" + d.record.address +
                          "> broke off; the record is unchanged (a new code gives a new file)");
        return;
    }
    std::string error;
    if (!deps_.backend->picked_up(d.record, &error))
        deps_.log.error("pickup: <" + d.record.address + "> downloaded, but the record says otherwise: " + error);
    deps_.audit->event("pickup", d.record.address, client, {{"format", format}});
}

}  // namespace sealmilter::pickup

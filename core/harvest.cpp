// core/harvest.cpp — certificate harvesting from signed mail (see harvest.hpp). The walk is
// core/entity_walk's, signatures are crypto::SignedData's, envelopes are opened by
// crypto::decrypt_envelope (its MMA-safe path: a wrong key fails instead of yielding garbage).
#include "core/harvest.hpp"

#include "base/ascii.hpp"
#include "base/handle.hpp"
#include "core/entity_walk.hpp"
#include "crypto/envelope.hpp"
#include "crypto/signed_data.hpp"
#include "lookup/source.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

namespace sealmilter::core {
namespace {

// CRLF -> LF: some signers hash their local (LF) form of the part; it is the same text.
std::string to_lf(std::string_view crlf) {
    std::string out;
    out.reserve(crlf.size());
    for (size_t i = 0; i < crlf.size(); ++i)
        if (!(crlf[i] == '\r' && i + 1 < crlf.size() && crlf[i + 1] == '\n')) out += crlf[i];
    return out;
}

bool is_pkcs7(const std::string& media_type, const char* what) {
    return media_type == std::string("application/") + what || media_type == std::string("application/x-") + what;
}

class Harvester {
public:
    Harvester(const std::string& from, const HarvestOptions& o, HarvestReport& r) : from_(from), options_(o), report_(r) {}

    Next visit(const MimeEntity& e) {
        const std::optional<ContentType>& ct = e.content_type();
        if (!ct) return Next::nothing();  // text/plain by default: nothing to find
        const std::string type = e.media_type();
        if (type == "multipart/signed") return multipart_signed(e);
        if (ct->type == "multipart") return Next::children(e);
        if (is_pkcs7(type, "pkcs7-mime")) return pkcs7_mime(e);
        return Next::nothing();
    }

private:
    void note(const std::string& n) { report_.notes.push_back(n); }

    Next multipart_signed(const MimeEntity& e) {
        const std::vector<std::string_view> parts = split_multipart(e.body(), e.content_type()->param("boundary"));
        if (parts.size() != 2) {
            note("multipart/signed with " + std::to_string(parts.size()) + " parts: ignored");
            return Next::nothing();
        }
        const MimeEntity sig = MimeEntity::parse(parts[1]);
        const std::string st = sig.media_type();
        if (is_pkcs7(st, "pkcs7-signature")) {
            std::string error;
            const std::optional<crypto::SignedData> sd = crypto::SignedData::parse(sig.decoded_body(), &error);
            if (!sd) {
                note("multipart/signed: the signature is not CMS: " + error);
            } else if (sd->verify_detached(parts[0])) {
                signers(*sd, "multipart/signed");
            } else if (const std::string lf = to_lf(parts[0]); lf.size() != parts[0].size() && sd->verify_detached(lf)) {
                signers(*sd, "multipart/signed (signed with LF line ends)");
            } else {
                note("multipart/signed: signature does not verify over the signed part");
            }
        } else {
            note("multipart/signed with protocol " + (st.empty() ? std::string("?") : st) + ": not S/MIME");
        }
        return Next::into_parts({parts[0]});  // the signed content may hold more signatures
    }

    Next pkcs7_mime(const MimeEntity& e) {
        const std::string der = e.decoded_body();
        const crypto::CmsType type = crypto::cms_type(der);
        switch (type.kind) {
        case crypto::CmsKind::NotCms: note("application/pkcs7-mime that is not CMS: " + type.error); break;
        case crypto::CmsKind::Signed: return opaque_signed(der);
        case crypto::CmsKind::Enveloped: return open_envelope(der);
        case crypto::CmsKind::Other: note("application/pkcs7-mime of type " + type.oid + ": ignored"); break;
        }
        return Next::nothing();
    }

    Next opaque_signed(const std::string& der) {
        std::string detail;
        const std::optional<crypto::SignedData> sd = crypto::SignedData::parse(der, &detail);
        std::optional<std::string> content = sd ? sd->verify_opaque(&detail) : std::nullopt;
        if (!content) {
            note("opaque signed-data: signature does not verify: " + detail);
            return Next::nothing();
        }
        signers(*sd, "opaque signed-data");
        return content->empty() ? Next::nothing() : Next::into(to_crlf(*content));
    }

    // The key comes from the ring by the envelope's RecipientIdentifiers (a hash lookup, never a
    // trial of every key); with its certificate set, crypto::decrypt_envelope matches the
    // identifier before it decrypts (MMA-safe, issue 10), so a colliding candidate fails cleanly
    // and the next one is tried.
    Next open_envelope(const std::string& der) {
        if (options_.keys == nullptr || options_.keys->size() == 0) {
            note("enveloped data: no configured key opens it, not entered");
            return Next::nothing();
        }
        std::vector<crypto::RecipientId> ids;
        const crypto::DecryptOutcome inspected = crypto::inspect_envelope(der, ids);
        if (inspected.status != crypto::DecryptStatus::Ok) {
            note("enveloped data: " + inspected.detail + ", not entered");
            return Next::nothing();
        }
        std::string key_errors;
        for (const crypto::RecipientId& id : ids) {
            for (const keys::KeyEntry& entry : options_.keys->find(id)) {
                std::string error;
                const keys::PrivateKey key = options_.keys->private_key(*entry, &error);
                if (!key) {
                    key_errors += "; key " + entry->id + ": " + error;
                    continue;
                }
                crypto::BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
                if (!in) crypto::throw_openssl("BIO_new_mem_buf");
                crypto::StringSink plain;
                if (crypto::decrypt_envelope(in.get(), *key, plain).status == crypto::DecryptStatus::Ok)
                    return plain.out.empty() ? Next::nothing() : Next::into(to_crlf(plain.out));
            }
        }
        note("enveloped data: no configured key opens it, not entered" + key_errors);
        return Next::nothing();
    }

    void signers(const crypto::SignedData& sd, const std::string& how) {
        for (crypto::SignerDetails& d : sd.signers()) {
            const std::string what = how + " " + d.digest;
            if (!d.certificate) {
                note(what + ": the signer's certificate is not in the message");
                continue;
            }
            const crypto::Certificate& signer = *d.certificate;
            const std::vector<std::string> names = signer.email_addresses();
            if (std::none_of(names.begin(), names.end(), [&](const std::string& a) { return lookup::normalize_address(a) == from_; })) {
                note(what + " by " + signer.subject() + ": does not name the From address " + from_ + ", not harvested");
                continue;
            }
            if (!d.key_preference_note.empty()) note(what + ": " + d.key_preference_note);
            const crypto::Certificate chosen = d.key_preference ? *d.key_preference : signer;
            const std::vector<lookup::Verdict> v = options_.validator->validate(from_, {chosen});
            if (v.empty() || !v[0].usable) {
                note(what + " by " + signer.subject() + ": certificate " + chosen.fingerprint_sha256() + " not usable: " +
                     (v.empty() ? std::string("no verdict") : v[0].reason));
                continue;
            }
            keep(HarvestedCertificate{from_, chosen, signer.fingerprint_sha256(), false, std::move(d.capabilities), what},
                 signer.subject());
        }
    }

    void keep(HarvestedCertificate h, const std::string& signer_subject) {
        h.from_key_preference = h.certificate.fingerprint_sha256() != h.signer_fingerprint;
        note(h.signature + " by " + signer_subject + ": harvested " + h.certificate.fingerprint_sha256() +
             (h.from_key_preference ? " (the separate encryption certificate its SMIMEEncryptionKeyPreference names)" : ""));
        const bool dup = std::any_of(report_.certificates.begin(), report_.certificates.end(), [&](const HarvestedCertificate& x) {
            return x.certificate.fingerprint_sha256() == h.certificate.fingerprint_sha256();
        });
        if (!dup) report_.certificates.push_back(std::move(h));
    }

    const std::string& from_;
    const HarvestOptions& options_;
    HarvestReport& report_;
};

std::optional<std::string> single_from(const MimeEntity& top, std::string& why) {
    if (top.count("from") != 1) {
        why = top.count("from") == 0 ? "no From field" : "more than one From field";
        return std::nullopt;
    }
    ensure_gmime();
    const std::unique_ptr<InternetAddressList, base::Deleter<g_object_unref>> list(
        internet_address_list_parse(nullptr, top.field("from")->c_str()));
    std::optional<std::string> out;
    if (!list || internet_address_list_length(list.get()) != 1) {
        why = "From does not name exactly one address";
        return out;
    }
    InternetAddress* a = internet_address_list_get_address(list.get(), 0);  // borrowed
    if (!INTERNET_ADDRESS_IS_MAILBOX(a)) {
        why = "From is a group";
        return out;
    }
    const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
    if (addr != nullptr && std::strchr(addr, '@') != nullptr) out = lookup::normalize_address(addr);
    else why = "From has no usable address";
    return out;
}

// Why the whole message is out of scope ("" when it is in): bounces and list mail.
std::string out_of_scope(const MimeEntity& top, const std::string* envelope_sender) {
    if (envelope_sender != nullptr && envelope_sender->empty()) return "bounce (null envelope sender)";
    if (top.media_type() == "multipart/report") return "bounce (multipart/report)";
    if (top.field("list-id") != nullptr) return "list mail (List-Id)";
    if (const std::string* prec = top.field("precedence")) {
        const std::string p = base::to_lower(*prec);
        if (p == "list" || p == "bulk" || p == "junk") return "list mail (Precedence: " + p + ")";
    }
    return {};
}

}  // namespace

HarvestReport harvest(std::string_view raw_message, const std::string* envelope_sender, const HarvestOptions& options) {
    if (options.validator == nullptr) throw std::logic_error("harvest without a validator");
    HarvestReport report;
    const std::string crlf = to_crlf(raw_message);
    const MimeEntity top = MimeEntity::parse(crlf);
    report.skipped = out_of_scope(top, envelope_sender);
    if (!report.skipped.empty()) return report;
    const std::optional<std::string> from = single_from(top, report.skipped);
    if (!from) return report;
    Harvester harvester(*from, options, report);
    const WalkResult walked = walk_entities(crlf, {options.max_depth, options.max_parts},
                                            [&](const MimeEntity& e, int) { return harvester.visit(e); });
    if (walked.depth_cut)
        report.notes.push_back("nesting deeper than " + std::to_string(options.max_depth) + " levels: not entered");
    if (walked.count_cut) report.notes.push_back("more than " + std::to_string(options.max_parts) + " entities: the rest not entered");
    if (report.notes.empty()) report.notes.push_back("no S/MIME signature");
    return report;
}

}  // namespace sealmilter::core

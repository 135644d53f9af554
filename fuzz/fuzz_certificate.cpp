// fuzz/fuzz_certificate.cpp — certificate parsing (crypto::parse_certificates: PEM bundle or
// one DER certificate) and the one validation step every candidate passes (lookup/validate).
//
// Every parsed certificate goes through each accessor and a DER round trip, then the set is
// validated against the NSS test CA (frozen clock) for each address it names, once through
// the chain check and once as from a trusted source. Checked: one verdict per candidate, a
// reason exactly when rejected, and no certificate is usable that cannot receive encrypted
// mail or does not name the address; select() returns only usable certificates.
#include "crypto/certificate.hpp"
#include "fuzz/fuzz_support.hpp"
#include "lookup/validate.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using namespace sealmilter;

namespace {

bool same_address(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               const auto low = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
               return low(x) == low(y);
           });
}

void check_verdicts(const std::string& email, const std::vector<crypto::Certificate>& certs, bool trusted) {
    const std::vector<lookup::Verdict> verdicts = fuzz::nss_validator().validate(email, certs, trusted);
    FUZZ_CHECK(verdicts.size() == certs.size(), "one verdict per candidate");
    for (const lookup::Verdict& v : verdicts) {
        FUZZ_CHECK(v.usable == v.reason.empty(), "a verdict's reason contradicts it: " + v.reason);
        if (!v.usable) continue;
        FUZZ_CHECK(v.cert.encryption_unsuitability().empty(), "usable but " + v.cert.encryption_unsuitability());
        const std::vector<std::string> names = v.cert.email_addresses();
        FUZZ_CHECK(
            std::any_of(names.begin(), names.end(), [&](const std::string& n) { return same_address(n, email); }),
            "usable for " + email + ", which it does not name");
        FUZZ_CHECK(v.cert.not_before() <= fuzz::kFrozenNow && fuzz::kFrozenNow <= v.cert.not_after(),
                   "usable outside its validity");
    }
    for (lookup::EncryptTo p : {lookup::EncryptTo::AllValid, lookup::EncryptTo::Newest}) {
        const std::vector<crypto::Certificate> chosen = lookup::select(verdicts, p);
        const size_t usable = static_cast<size_t>(
            std::count_if(verdicts.begin(), verdicts.end(), [](const lookup::Verdict& v) { return v.usable; }));
        FUZZ_CHECK(chosen.size() <= usable, "select() returned an unusable certificate");
        if (p == lookup::EncryptTo::Newest) FUZZ_CHECK(chosen.size() <= 1, "Newest returned several");
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    fuzz::init();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const crypto::ParsedCertificates parsed = crypto::parse_certificates(fuzz::as_view(data, size));
    FUZZ_CHECK(parsed.certificates.empty() != parsed.error.empty(), "parse result and error disagree");
    std::vector<std::string> emails;
    for (const crypto::Certificate& c : parsed.certificates) {
        (void)c.key_kind();
        (void)c.key_bits();
        (void)c.key_description();
        (void)c.subject();
        (void)c.issuer();
        (void)crypto::format_time_utc(c.not_before());
        (void)crypto::format_time_utc(c.not_after());
        (void)c.encryption_unsuitability();
        const std::string fp = c.fingerprint_sha256();
        const std::vector<unsigned char> der = c.der();
        const std::string_view der_view(reinterpret_cast<const char*>(der.data()), der.size());
        const crypto::ParsedCertificates again = crypto::parse_certificates(der_view);
        if (!fuzz::hits_open_pem_marker_bug(der_view))
            FUZZ_CHECK(again.certificates.size() == 1,
                       "a parsed certificate's DER does not parse again: " + again.error);
        for (const std::string& e : c.email_addresses())
            if (emails.size() < 4) emails.push_back(e);
    }
    if (parsed.certificates.empty()) return 0;
    if (emails.empty()) emails.push_back("alice@example.com");
    for (const std::string& e : emails) {
        check_verdicts(e, parsed.certificates, false);
        check_verdicts(e, parsed.certificates, true);
    }
    return 0;
}

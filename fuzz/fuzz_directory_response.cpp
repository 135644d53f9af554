// fuzz/fuzz_directory_response.cpp — the directory's HTTP answer (SPEC §6.3) as an attacker
// who controls the directory (or the network path to it) would send it.
//
// Input format (so that seeds are readable and mutations stay meaningful):
//   STATUS LF  (decimal; anything else is status 0)
//   name: value LF ...  (response header fields; names folded to lower case as curl's
//                        header callback does)
//   LF
//   BODY       (everything after the first empty line, byte-exact)
// parse_directory_response runs with max_body 1 MiB and again with a limit below the body
// size. Checked: the outcome follows the status (404/410 NotFound, other non-200/304
// TempError); Found carries 1..100 candidates (or none for 304); a TempError says why;
// cache hints are in range; every candidate survives all accessors, a DER round trip and the
// Validator (what the Chain does with it next). expand_url gets the ETag value as an address:
// the expansion must never add a path segment, a query or a fragment of its own.
#include "fuzz/fuzz_support.hpp"
#include "lookup/directory.hpp"

#include "base/ascii.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

using namespace sealmilter;

namespace {

struct Exchange {
    long status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
};

using base::to_lower;
using base::trim;

Exchange parse_input(std::string_view in) {
    Exchange ex;
    size_t pos = 0;
    size_t nl = in.find('\n');
    const std::string_view status = trim(in.substr(0, nl));
    long s = 0;
    for (char c : status.substr(0, 6)) {
        if (c < '0' || c > '9') break;
        s = s * 10 + (c - '0');
    }
    ex.status = s;
    pos = nl == std::string_view::npos ? in.size() : nl + 1;
    while (pos < in.size()) {
        nl = in.find('\n', pos);
        const std::string_view line = in.substr(pos, (nl == std::string_view::npos ? in.size() : nl) - pos);
        pos = nl == std::string_view::npos ? in.size() : nl + 1;
        if (trim(line).empty()) break;
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        ex.headers[to_lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
    }
    ex.body = std::string(in.substr(std::min(pos, in.size())));
    return ex;
}

void check_candidates(const std::vector<crypto::Certificate>& candidates) {
    for (const crypto::Certificate& c : candidates) {
        (void)c.key_kind();
        (void)c.key_description();
        (void)c.subject();
        (void)c.issuer();
        (void)c.not_before();
        (void)c.not_after();
        (void)c.encryption_unsuitability();
        const std::string fp = c.fingerprint_sha256();
        FUZZ_CHECK(fp.size() == 95, "SHA-256 fingerprint of odd length");
        const std::vector<unsigned char> der = c.der();
        // A certificate OpenSSL parsed leniently may re-encode differently; it must still parse.
        const std::string_view der_view(reinterpret_cast<const char*>(der.data()), der.size());
        const crypto::ParsedCertificates again = crypto::parse_certificates(der_view);
        if (!fuzz::hits_open_pem_marker_bug(der_view))
            FUZZ_CHECK(again.certificates.size() == 1, "a candidate's DER does not parse again: " + again.error);
    }
    if (candidates.empty()) return;
    const std::vector<std::string> mails = candidates.front().email_addresses();
    const std::string email = mails.empty() ? std::string("bob@example.com") : mails.front();
    const std::vector<lookup::Verdict> verdicts = fuzz::nss_validator().validate(email, candidates);
    FUZZ_CHECK(verdicts.size() == candidates.size(), "one verdict per candidate");
    for (const lookup::Verdict& v : verdicts)
        FUZZ_CHECK(v.usable == v.reason.empty(), "a verdict's reason contradicts it");
    (void)lookup::select(verdicts, lookup::EncryptTo::AllValid);
}

void check_answer(const Exchange& ex, const lookup::SourceAnswer& a, long long max_body) {
    const bool too_big = static_cast<long long>(ex.body.size()) > max_body;
    if (too_big) FUZZ_CHECK(a.outcome == lookup::Outcome::TempError, "an oversized body was accepted");
    if (!too_big && (ex.status == 404 || ex.status == 410))
        FUZZ_CHECK(a.outcome == lookup::Outcome::NotFound, "404/410 is not NotFound");
    if (ex.status != 200 && ex.status != 304 && ex.status != 404 && ex.status != 410)
        FUZZ_CHECK(a.outcome == lookup::Outcome::TempError, "HTTP " + std::to_string(ex.status) + " is not TempError");
    if (a.outcome == lookup::Outcome::NotFound) FUZZ_CHECK(a.candidates.empty(), "NotFound with candidates");
    if (a.outcome == lookup::Outcome::TempError) {
        FUZZ_CHECK(!a.reason.empty(), "TempError without a reason");
        FUZZ_CHECK(a.candidates.empty(), "TempError with candidates");
    }
    if (a.outcome == lookup::Outcome::Found) {
        if (a.not_modified) {
            FUZZ_CHECK(ex.status == 304 && a.candidates.empty(), "not_modified outside 304");
        } else {
            FUZZ_CHECK(ex.status == 200, "Found outside 200/304");
            FUZZ_CHECK(!a.candidates.empty() && a.candidates.size() <= 100,
                       "Found with " + std::to_string(a.candidates.size()) + " candidates");
        }
    }
    for (const auto& hint : {a.max_age, a.stale_if_error})
        if (hint) FUZZ_CHECK(*hint >= 0 && *hint <= 2147483648LL, "cache hint out of range");
    check_candidates(a.candidates);
}

void check_expand_url(const std::string& email) {
    static const std::string kTemplate = "https://dir.example/v1/{email}/{local}/{domain}?q=1";
    const std::string url = lookup::expand_url(kTemplate, email);
    FUZZ_CHECK(url.rfind("https://dir.example/v1/", 0) == 0, "expand_url changed the host");
    FUZZ_CHECK(std::count(url.begin(), url.end(), '/') == 6, "expand_url added a path segment");
    FUZZ_CHECK(std::count(url.begin(), url.end(), '?') == 1 && url.find('#') == std::string::npos,
               "expand_url added a query or fragment");
    for (char c : url.substr(23))  // after the fixed prefix: unreserved, %XX, the template's / ? =
        FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)) ||
                       std::string_view("-._~%/?=").find(c) != std::string_view::npos,
                   std::string("expand_url emitted '") + c + "'");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    fuzz::init();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const Exchange ex = parse_input(fuzz::as_view(data, size));
    constexpr long long kMaxBody = 1 << 20;
    check_answer(ex, lookup::parse_directory_response(ex.status, ex.headers, ex.body, kMaxBody), kMaxBody);
    if (!ex.body.empty()) {
        const auto small = static_cast<long long>(ex.body.size() / 2);
        check_answer(ex, lookup::parse_directory_response(ex.status, ex.headers, ex.body, small), small);
    }
    if (const auto et = ex.headers.find("etag"); et != ex.headers.end()) check_expand_url(et->second);
    return 0;
}

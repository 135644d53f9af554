// Found by fuzz_directory_response (fuzz/, issue 5): the DER round trip of a directory
// candidate failed with "no PEM certificate could be parsed".
//
// Bug (fixed): crypto::parse_certificates (crypto/certificate.cpp) decides "PEM" when the
// input contains "-----BEGIN" ANYWHERE, and then never tries DER. A DER certificate whose
// bytes contain that text (a subject, a SAN, an extension, or by chance the signature) is
// therefore unparsable. Where it bites: the SQLite cache stores each certificate as DER and
// reads it back with parse_certificates (lookup/certificate_memo.cpp decode_certificates, shared by both cache backends), so such a
// certificate, validated and cached, comes back as an unreadable entry: every lookup goes to
// the directory again, and while the directory fails there is no stale answer to serve
// (tempfail instead of encryption). The store (store.dir, DER files) and `encrypt --cert
// FILE.der` refuse the file. The directory's own application/pkix-cert path is not affected
// (it calls d2i_X509 itself).
// Suggested fix: in parse_certificates, first try one DER certificate when the input starts
// with 0x30 (SEQUENCE) and d2i_X509 consumes all of it; only otherwise read PEM blocks (PEM
// files may carry explanatory text before the block, so "starts with -----BEGIN" alone is not
// the test). Then enable the DISABLED_ tests below and delete fuzz::hits_open_pem_marker_bug
// (fuzz/fuzz_support.hpp), which keeps the fuzzers' round-trip checks off such certificates.
#include "crypto/certificate.hpp"
#include "lookup/cache.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

using sealmilter::crypto::parse_certificates;
using sealmilter::testing::CertSpec;
using sealmilter::testing::make_identity;

// An ordinary recipient certificate whose rfc822Name happens to contain the PEM marker.
sealmilter::crypto::Certificate cert_with_marker() {
    CertSpec spec;
    spec.email = "-----BEGIN@partner.example";
    return make_identity(spec).cert;
}

std::string der_of(const sealmilter::crypto::Certificate& c) {
    const std::vector<unsigned char> der = c.der();
    return std::string(der.begin(), der.end());
}

std::string pem_of(const sealmilter::crypto::Certificate& c) {
    sealmilter::crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(mem.get(), c.native());
    char* data = nullptr;
    const long len = BIO_get_mem_data(mem.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

TEST(FuzzRegressionParseCertificates, DerContainingThePemMarkerParses) {
    const auto cert = cert_with_marker();
    const std::string der = der_of(cert);
    ASSERT_NE(der.find("-----BEGIN"), std::string::npos);
    const auto parsed = parse_certificates(der);
    ASSERT_EQ(parsed.certificates.size(), 1U) << parsed.error;
    EXPECT_EQ(parsed.certificates[0].fingerprint_sha256(), cert.fingerprint_sha256());
}

TEST(FuzzRegressionParseCertificates, CacheReadsSuchACertificateBack) {
    char tmpl[] = "/tmp/sealmilter-fuzzreg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    const auto cert = cert_with_marker();
    {
        sealmilter::lookup::CacheOptions o;
        o.path = dir + "/cache.db";
        sealmilter::lookup::Cache cache(o);
        cache.put_positive("-----begin@partner.example", {cert}, "directory", 3600, std::nullopt, "");
        const auto entry = cache.get("-----begin@partner.example");
        ASSERT_TRUE(entry.has_value());
        ASSERT_EQ(entry->certificates.size(), 1U);
        EXPECT_EQ(entry->certificates[0].fingerprint_sha256(), cert.fingerprint_sha256());
    }
    std::filesystem::remove_all(dir);
}

// What the fix must keep: PEM with text around the block, bundles, and plain DER.
TEST(FuzzRegressionParseCertificates, PemWithExplanatoryTextAndBundlesStillParse) {
    const auto a = make_identity(CertSpec{}).cert;
    CertSpec other;
    other.email = "carol@partner.example";
    const auto b = make_identity(other).cert;
    const auto parsed =
        parse_certificates("Subject: text an `openssl x509 -text` dump leaves\n" + pem_of(a) + pem_of(b));
    ASSERT_EQ(parsed.certificates.size(), 2U) << parsed.error;
    EXPECT_EQ(parsed.certificates[1].fingerprint_sha256(), b.fingerprint_sha256());
    ASSERT_EQ(parse_certificates(der_of(a)).certificates.size(), 1U);
    EXPECT_TRUE(parse_certificates("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
                    .certificates.empty());
}

}  // namespace

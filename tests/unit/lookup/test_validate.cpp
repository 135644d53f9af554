// tests/unit/lookup/test_validate.cpp — the candidate validator (lookup/validate.hpp, SPEC §6).
//
// A throw-away PKI is built with the OpenSSL C API (a trusted root, an intermediate under it,
// an intermediate that expired, and a rogue root nobody trusts); each table row issues one
// leaf with chosen extensions and validity, validates it at a fixed instant and asserts
// usable/not and a substring of the reason. The NSS corpus (tests/data/nss-smime) checks
// certificates made by another implementation.
#include "lookup/validate.hpp"

#include "crypto/certificate_builder.hpp"
#include "crypto/private_key.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace {

using namespace sealmilter;
using crypto::Certificate;
namespace fs = std::filesystem;

using X509_CRL_ptr = std::unique_ptr<X509_CRL, crypto::Deleter<X509_CRL_free>>;
using X509_REVOKED_ptr = std::unique_ptr<X509_REVOKED, crypto::Deleter<X509_REVOKED_free>>;
using ASN1_TIME_ptr = std::unique_ptr<ASN1_TIME, crypto::Deleter<ASN1_TIME_free>>;

constexpr std::time_t kNow = 1811808000;  // 2027-06-01T00:00:00Z, inside the NSS corpus' validity
constexpr std::time_t kDay = 86400;

class FixedClock final : public sealmilter::base::Clock {
public:
    explicit FixedClock(std::time_t t) : t_(t) {}
    std::time_t now() const override { return t_.load(); }
    void set(std::time_t t) { t_.store(t); }

private:
    std::atomic<std::time_t> t_;
};

// Key generation dominates the run time and the key is irrelevant to validation, so every
// certificate of one kind shares one key (CAs get their own keys, see make_ca).
EVP_PKEY* shared_key(const std::string& kind) {
    static std::mutex mu;
    static std::map<std::string, crypto::EVP_PKEY_ptr> keys;
    const std::lock_guard lock(mu);
    crypto::EVP_PKEY_ptr& slot = keys[kind];
    if (!slot) {
        if (kind.rfind("rsa", 0) == 0) slot = crypto::generate_rsa_key(static_cast<unsigned>(std::stoul(kind.substr(3))));
        if (kind == "ec-p256") slot = crypto::generate_ec_key("prime256v1");
        if (kind == "ec-p384") slot = crypto::generate_ec_key("secp384r1");
        if (kind == "ec-secp256k1") slot = crypto::generate_ec_key("secp256k1");
        if (kind == "ed25519")
            slot = crypto::owned_or_throw<crypto::EVP_PKEY_ptr>(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), "keygen");
        if (!slot) throw crypto::CryptoError("unknown key kind " + kind);
    }
    return slot.get();
}

struct LeafSpec {
    std::vector<std::string> sans = {"bob@partner.example"};  // rfc822Name SANs; empty = no SAN extension
    std::string subject_email{};                              // emailAddress in the subject DN ("" = none)
    std::string key = "rsa2048";                              // see shared_key()
    std::string key_usage = "default";                        // "default" (per key type), "none", or an OpenSSL list
    std::string eku = "emailProtection";                      // "" = no EKU extension
    bool ca = false;                                          // basicConstraints critical,CA:TRUE
    long not_before_days = -30;                               // relative to kNow
    long not_after_days = 365;
};

// The fields every test certificate shares; issuer == nullptr means self-signed.
crypto::CertificateBuilder start_cert(const std::string& cn, const std::string& subject_email, EVP_PKEY* key,
                                      long not_before_days, long not_after_days, X509* issuer, EVP_PKEY* issuer_key) {
    static std::atomic<uint64_t> serial{1000};
    crypto::CertificateBuilder b;
    b.public_key(key).organization("sealmilter tests").common_name(cn).subject_email(subject_email);
    b.serial(serial++).validity(kNow + not_before_days * kDay, kNow + not_after_days * kDay);
    b.subject_key_identifier().authority_key_identifier();
    if (issuer != nullptr) {
        X509_up_ref(issuer);
        b.issuer(Certificate(crypto::X509_ptr(issuer)), issuer_key);
    }
    return b;
}

// Issues a leaf under issuer (nullptr: self-signed with the leaf's own key).
Certificate issue_leaf(const LeafSpec& s, X509* issuer, EVP_PKEY* issuer_key) {
    crypto::CertificateBuilder b =
        start_cert("Leaf", s.subject_email, shared_key(s.key), s.not_before_days, s.not_after_days, issuer, issuer_key);
    for (const std::string& a : s.sans) b.add_email_san(a);
    std::string ku = s.key_usage;
    if (ku == "default") {
        ku = s.key.rfind("ec", 0) == 0 ? "keyAgreement,digitalSignature"
             : s.key == "ed25519"      ? "digitalSignature"
                                       : "keyEncipherment,digitalSignature";
    }
    if (ku != "none") b.key_usage(crypto::key_usage_from_names(ku));
    std::vector<std::string> eku;
    for (size_t at = 0; at < s.eku.size();) {
        const size_t comma = std::min(s.eku.find(',', at), s.eku.size());
        eku.push_back(s.eku.substr(at, comma - at));
        at = comma + 1;
    }
    b.extended_key_usage(eku);
    if (s.ca) b.basic_constraints(true);
    return b.build();
}

struct TestCa {
    crypto::EVP_PKEY_ptr key;
    Certificate cert;
    Certificate issue(const LeafSpec& s) const { return issue_leaf(s, cert.native(), key.get()); }
};

TestCa make_ca(const std::string& cn, const TestCa* parent, long not_before_days = -3650, long not_after_days = 3650) {
    crypto::EVP_PKEY_ptr key = crypto::generate_ec_key("prime256v1");
    crypto::CertificateBuilder b = start_cert(cn, "", key.get(), not_before_days, not_after_days,
                                              parent != nullptr ? parent->cert.native() : nullptr,
                                              parent != nullptr ? parent->key.get() : nullptr);
    Certificate cert = b.basic_constraints(true).key_usage(crypto::kKeyCertSign | crypto::kCrlSign).build();
    return TestCa{std::move(key), std::move(cert)};
}

void write_bio(const fs::path& path, const std::function<int(BIO*)>& write) {
    crypto::BIO_ptr bio(BIO_new_file(path.c_str(), "wb"));
    if (!bio || write(bio.get()) != 1) crypto::throw_openssl("write " + path.string());
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

// A CRL from `ca` revoking `revoked`, valid from kNow-1d to kNow+30d.
void write_crl(const TestCa& ca, const std::vector<Certificate>& revoked, const fs::path& path, bool der) {
    X509_CRL_ptr crl(X509_CRL_new());
    if (!crl) crypto::throw_openssl("X509_CRL_new");
    X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.native()));
    const ASN1_TIME_ptr last(ASN1_TIME_set(nullptr, kNow - kDay));
    const ASN1_TIME_ptr next(ASN1_TIME_set(nullptr, kNow + 30 * kDay));
    X509_CRL_set1_lastUpdate(crl.get(), last.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    for (const Certificate& c : revoked) {
        X509_REVOKED_ptr rev(X509_REVOKED_new());
        if (!rev) crypto::throw_openssl("X509_REVOKED_new");
        X509_REVOKED_set_serialNumber(rev.get(), X509_get_serialNumber(c.native()));  // copies
        X509_REVOKED_set_revocationDate(rev.get(), last.get());                       // copies
        if (X509_CRL_add0_revoked(crl.get(), rev.get()) != 1) crypto::throw_openssl("X509_CRL_add0_revoked");
        static_cast<void>(rev.release());  // add0: the CRL owns it now
    }
    X509_CRL_sort(crl.get());
    if (X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) == 0) crypto::throw_openssl("X509_CRL_sign");
    write_bio(path,
              [&](BIO* b) { return der ? i2d_X509_CRL_bio(b, crl.get()) : PEM_write_bio_X509_CRL(b, crl.get()); });
}

// The shared throw-away PKI and its temp directory (removed at exit).
struct Pki {
    fs::path dir;
    TestCa root = make_ca("Test Root", nullptr);
    TestCa intermediate = make_ca("Test Intermediate", &root);
    TestCa expired_intermediate = make_ca("Expired Intermediate", &root, -800, -1);
    TestCa rogue = make_ca("Rogue Root", nullptr);
    std::string root_pem;

    Pki() {
        std::string tmpl = (fs::temp_directory_path() / "sealmilter-validate-XXXXXX").string();
        if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        root_pem = (dir / "root.pem").string();
        write_bio(root_pem, [&](BIO* b) { return PEM_write_bio_X509(b, root.cert.native()); });
    }
    ~Pki() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    Pki(const Pki&) = delete;
    Pki& operator=(const Pki&) = delete;

    std::string file(const std::string& stem) const {
        static std::atomic<int> n{0};
        return (dir / (stem + "-" + std::to_string(n++))).string();
    }
};

const Pki& pki() {
    static const Pki p;
    return p;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// ---- the table ---------------------------------------------------------------------------

enum class Chain { Root, Intermediate, MissingIntermediate, ExpiredIntermediate, UntrustedRoot, SelfSigned };
enum class Crl { None, RevokeLeaf, RevokeLeafDer, RevokeOther };

struct Row {
    std::string name{};
    LeafSpec leaf{};
    std::string query = "bob@partner.example";
    Chain chain = Chain::Root;
    Crl crl = Crl::None;  // a CRL from the root
    bool allow_expired = false;
    bool trust_source = false;
    long clock_days = 0;  // the validation instant, relative to kNow
    bool usable = true;
    std::string reason{};  // a substring of the rejection reason
};

std::vector<Certificate> candidates_for(const Row& row) {
    const Pki& p = pki();
    switch (row.chain) {
        case Chain::Root:
            return {p.root.issue(row.leaf)};
        case Chain::Intermediate:
            return {p.intermediate.issue(row.leaf), p.intermediate.cert};
        case Chain::MissingIntermediate:
            return {p.intermediate.issue(row.leaf)};
        case Chain::ExpiredIntermediate:
            return {p.expired_intermediate.issue(row.leaf), p.expired_intermediate.cert};
        case Chain::UntrustedRoot:
            return {p.rogue.issue(row.leaf)};
        case Chain::SelfSigned:
            return {issue_leaf(row.leaf, nullptr, nullptr)};
    }
    return {};
}

std::vector<std::string> crl_files_for(const Row& row, const Certificate& leaf) {
    if (row.crl == Crl::None) return {};
    const std::string path = pki().file("crl");
    const Certificate other = pki().root.issue(LeafSpec{});
    write_crl(pki().root, {row.crl == Crl::RevokeOther ? other : leaf}, path, row.crl == Crl::RevokeLeafDer);
    return {path};
}

class ValidatorRows : public ::testing::TestWithParam<Row> {};

TEST_P(ValidatorRows, Verdict) {
    const Row& row = GetParam();
    const std::vector<Certificate> candidates = candidates_for(row);
    FixedClock clock(kNow + row.clock_days * kDay);
    const lookup::Validator validator(lookup::ValidatorOptions{.trust_anchor_files = {pki().root_pem},
                                                               .crl_files = crl_files_for(row, candidates.front()),
                                                               .allow_expired = row.allow_expired,
                                                               .clock = &clock});
    const std::vector<lookup::Verdict> verdicts = validator.validate(row.query, candidates, row.trust_source);
    ASSERT_EQ(verdicts.size(), candidates.size());
    const lookup::Verdict& v = verdicts.front();
    EXPECT_EQ(v.cert.fingerprint_sha256(), candidates.front().fingerprint_sha256());
    EXPECT_EQ(v.usable, row.usable) << v.reason;
    if (row.usable) {
        EXPECT_EQ(v.reason, "");
    } else {
        EXPECT_TRUE(contains(v.reason, row.reason)) << "reason: " << v.reason << "\nwanted: " << row.reason;
    }
}

// gtest prints failing rows by name instead of as a byte dump.
void PrintTo(const Row& row, std::ostream* os) {  // NOLINT(readability-identifier-naming): gtest hook
    *os << row.name;
}

struct ByName {
    template <typename T>
    std::string operator()(const ::testing::TestParamInfo<T>& param_info) const {
        return param_info.param.name;
    }
};

std::vector<Row> validation_rows() {
    return {
        {.name = "valid"},
        {.name = "expired",
         .leaf = {.not_before_days = -400, .not_after_days = -1},
         .usable = false,
         .reason = "expired 2027-05-31T00:00:00Z"},
        {.name = "not_yet_valid",
         .leaf = {.not_before_days = 10, .not_after_days = 400},
         .usable = false,
         .reason = "not yet valid (notBefore 2027-06-11T00:00:00Z)"},
        {.name = "expired_but_allow_expired",
         .leaf = {.not_before_days = -400, .not_after_days = -1},
         .allow_expired = true},
        {.name = "not_yet_valid_despite_allow_expired",
         .leaf = {.not_before_days = 10},
         .allow_expired = true,
         .usable = false,
         .reason = "not yet valid"},
        {.name = "clock_past_not_after",
         .leaf = {.not_after_days = 10},
         .clock_days = 11,
         .usable = false,
         .reason = "expired 2027-06-11T00:00:00Z"},
        {.name = "wrong_address",
         .query = "carol@partner.example",
         .usable = false,
         .reason = "address carol@partner.example not in certificate (has: bob@partner.example)"},
        {.name = "no_address_at_all", .leaf = {.sans = {}}, .usable = false, .reason = "(has: none)"},
        {.name = "address_only_in_subject_dn", .leaf = {.sans = {}, .subject_email = "bob@partner.example"}},
        {.name = "san_present_but_subject_dn_differs",
         .leaf = {.sans = {"other@partner.example"}, .subject_email = "bob@partner.example"},
         .usable = false,
         .reason = "address bob@partner.example not in certificate (has: other@partner.example)"},
        {.name = "second_san_matches", .leaf = {.sans = {"b@partner.example", "bob@partner.example"}}},
        {.name = "domain_case_insensitive", .query = "bob@PARTNER.Example"},
        {.name = "local_part_ascii_case_insensitive", .query = "BOB@partner.example"},
        {.name = "suffix_is_not_a_match",
         .query = "ob@partner.example",
         .usable = false,
         .reason = "not in certificate"},
        {.name = "rsa_keyusage_without_keyEncipherment",
         .leaf = {.key_usage = "digitalSignature"},
         .usable = false,
         .reason = "keyUsage lacks keyEncipherment"},
        {.name = "rsa_without_keyusage", .leaf = {.key_usage = "none"}},
        {.name = "ec_keyusage_without_keyAgreement",
         .leaf = {.key = "ec-p256", .key_usage = "digitalSignature"},
         .usable = false,
         .reason = "keyUsage lacks keyAgreement"},
        {.name = "ec_keyAgreement_passes_purpose_trap", .leaf = {.key = "ec-p256"}},
        {.name = "ec_p384_without_keyusage", .leaf = {.key = "ec-p384", .key_usage = "none"}},
        {.name = "ec_secp256k1",
         .leaf = {.key = "ec-secp256k1"},
         .usable = false,
         .reason = "not P-256, P-384 or P-521"},
        {.name = "rsa1024",
         .leaf = {.key = "rsa1024"},
         .usable = false,
         .reason = "RSA key of 1024 bits is below 2048"},
        {.name = "ed25519_unsupported",
         .leaf = {.key = "ed25519"},
         .usable = false,
         .reason = "unsupported public key type"},
        {.name = "eku_serverAuth_only",
         .leaf = {.eku = "serverAuth"},
         .usable = false,
         .reason = "EKU lacks emailProtection"},
        {.name = "eku_anyExtendedKeyUsage", .leaf = {.eku = "anyExtendedKeyUsage"}},
        {.name = "eku_serverAuth_and_emailProtection", .leaf = {.eku = "serverAuth,emailProtection"}},
        {.name = "no_eku", .leaf = {.eku = ""}},
        {.name = "ca_certificate", .leaf = {.ca = true}, .usable = false, .reason = "a CA certificate"},
        {.name = "untrusted_root",
         .chain = Chain::UntrustedRoot,
         .usable = false,
         .reason = "chain: unable to get local issuer certificate"},
        {.name = "self_signed",
         .chain = Chain::SelfSigned,
         .usable = false,
         .reason = "chain: self-signed certificate"},
        {.name = "intermediate_among_candidates", .chain = Chain::Intermediate},
        {.name = "missing_intermediate",
         .chain = Chain::MissingIntermediate,
         .usable = false,
         .reason = "chain: unable to get local issuer certificate"},
        {.name = "expired_intermediate_not_excused_by_allow_expired",
         .chain = Chain::ExpiredIntermediate,
         .allow_expired = true,
         .usable = false,
         .reason = "chain: certificate has expired at depth 1"},
        {.name = "revoked_pem_crl", .crl = Crl::RevokeLeaf, .usable = false, .reason = "revoked (CRL)"},
        {.name = "revoked_der_crl", .crl = Crl::RevokeLeafDer, .usable = false, .reason = "revoked (CRL)"},
        {.name = "not_revoked_crl_lists_another", .crl = Crl::RevokeOther},
        {.name = "crl_check_without_crl_for_issuer_fails_closed",
         .chain = Chain::Intermediate,
         .crl = Crl::RevokeOther,
         .usable = false,
         .reason = "chain: unable to get certificate CRL"},
        {.name = "crl_expired_at_validation_time",
         .crl = Crl::RevokeOther,
         .clock_days = 31,
         .usable = false,
         .reason = "chain: CRL has expired"},
        {.name = "trust_source_skips_chain", .chain = Chain::UntrustedRoot, .trust_source = true},
        {.name = "trust_source_still_checks_address",
         .query = "carol@partner.example",
         .chain = Chain::UntrustedRoot,
         .trust_source = true,
         .usable = false,
         .reason = "address carol@partner.example not in certificate"},
        {.name = "trust_source_still_checks_expiry",
         .leaf = {.not_after_days = -1},
         .chain = Chain::SelfSigned,
         .trust_source = true,
         .usable = false,
         .reason = "expired"},
        {.name = "every_reason_reported",
         .leaf = {.key_usage = "digitalSignature", .not_after_days = -1},
         .query = "carol@partner.example",
         .chain = Chain::UntrustedRoot,
         .usable = false,
         .reason = "address carol@partner.example not in certificate (has: bob@partner.example); expired "
                   "2027-05-31T00:00:00Z; keyUsage lacks keyEncipherment (RSA key transport needs it); chain: unable "
                   "to get local issuer certificate"},
    };
}

INSTANTIATE_TEST_SUITE_P(Validate, ValidatorRows, ::testing::ValuesIn(validation_rows()), ByName{});

// ---- the NSS corpus ----------------------------------------------------------------------

std::string nss_dir() {
    return std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";
}

Certificate nss_cert(const std::string& who) {
    crypto::KeyLoad load = crypto::load_key_material(nss_dir() + who + ".p12", "nss");
    if (!load.material || !load.material->certificate) throw std::runtime_error(who + ".p12: " + load.error);
    return *load.material->certificate;
}

struct NssRow {
    std::string name{};
    std::string who{};
    std::string query{};
    std::time_t now = kNow;
    bool usable = true;
    std::string reason{};
};

void PrintTo(const NssRow& row, std::ostream* os) {  // NOLINT(readability-identifier-naming): gtest hook
    *os << row.name;
}

class ValidatorNss : public ::testing::TestWithParam<NssRow> {};

TEST_P(ValidatorNss, Verdict) {
    const NssRow& row = GetParam();
    FixedClock clock(row.now);
    const lookup::Validator validator(
        lookup::ValidatorOptions{.trust_anchor_files = {nss_dir() + "TestCA.pem"}, .crl_files = {}, .clock = &clock});
    const std::vector<lookup::Verdict> verdicts = validator.validate(row.query, {nss_cert(row.who)});
    ASSERT_EQ(verdicts.size(), 1U);
    EXPECT_EQ(verdicts[0].usable, row.usable) << verdicts[0].reason;
    if (row.usable) {
        EXPECT_EQ(verdicts[0].reason, "");
    } else {
        EXPECT_TRUE(contains(verdicts[0].reason, row.reason)) << verdicts[0].reason;
    }
}

// Alice: RSA, address only in the subject DN (no SAN). Eve: SANs eve@example.net,
// eve@example.org, beve@example.com and a different subject address, Eve@example.com.
// Both expire 2031-01-26T14:38:35Z/14:38:45Z (expiration.txt).
std::vector<NssRow> nss_rows() {
    return {
        {.name = "alice_subject_dn_address", .who = "Alice", .query = "Alice@example.com"},
        {.name = "alice_lower_case", .who = "Alice", .query = "alice@example.com"},
        {.name = "alice_other_address",
         .who = "Alice",
         .query = "bob@example.com",
         .usable = false,
         .reason = "address bob@example.com not in certificate (has: Alice@example.com)"},
        {.name = "alice_after_expiry",
         .who = "Alice",
         .query = "Alice@example.com",
         .now = 1927584000 /* 2031-02-01 */,
         .usable = false,
         .reason = "expired 2031-01-26T14:38:35Z"},
        {.name = "eve_san_net", .who = "Eve", .query = "eve@example.net"},
        {.name = "eve_san_org", .who = "Eve", .query = "eve@example.org"},
        {.name = "eve_san_beve", .who = "Eve", .query = "beve@example.com"},
        {.name = "eve_subject_dn_address_ignored",
         .who = "Eve",
         .query = "Eve@example.com",
         .usable = false,
         .reason =
             "address Eve@example.com not in certificate (has: eve@example.net, eve@example.org, beve@example.com)"},
    };
}

INSTANTIATE_TEST_SUITE_P(Validate, ValidatorNss, ::testing::ValuesIn(nss_rows()), ByName{});

// ---- behaviour beyond one row ------------------------------------------------------------

lookup::ValidatorOptions root_options(const sealmilter::base::Clock* clock) {
    return lookup::ValidatorOptions{.trust_anchor_files = {pki().root_pem}, .crl_files = {}, .clock = clock};
}

TEST(ValidatorClock, SameValidatorFollowsTheInjectedClockPastNotAfter) {
    FixedClock clock(kNow);
    const lookup::Validator validator(root_options(&clock));
    const Certificate leaf = pki().root.issue(LeafSpec{.not_after_days = 10});
    EXPECT_TRUE(validator.validate("bob@partner.example", {leaf}).at(0).usable);
    clock.set(kNow + 10 * kDay + 1);
    const lookup::Verdict v = validator.validate("bob@partner.example", {leaf}).at(0);
    EXPECT_FALSE(v.usable);
    EXPECT_EQ(v.reason, "expired 2027-06-11T00:00:00Z");
}

TEST(ValidatorCrl, OneCrlRevokesOneCertificateAndNotItsSibling) {
    const Certificate revoked = pki().root.issue(LeafSpec{});
    const Certificate sibling = pki().root.issue(LeafSpec{});
    const std::string crl = pki().file("crl");
    write_crl(pki().root, {revoked}, crl, false);
    FixedClock clock(kNow);
    lookup::ValidatorOptions options = root_options(&clock);
    options.crl_files = {crl};
    const lookup::Validator validator(options);
    const std::vector<lookup::Verdict> v = validator.validate("bob@partner.example", {revoked, sibling});
    ASSERT_EQ(v.size(), 2U);
    EXPECT_FALSE(v[0].usable);
    EXPECT_EQ(v[0].reason, "revoked (CRL)");
    EXPECT_TRUE(v[1].usable) << v[1].reason;
}

TEST(ValidatorCandidates, OneVerdictPerCandidateInOrder) {
    FixedClock clock(kNow);
    const lookup::Validator validator(root_options(&clock));
    const Certificate good = pki().intermediate.issue(LeafSpec{});
    const Certificate other = pki().intermediate.issue(LeafSpec{.sans = {"carol@partner.example"}});
    const std::vector<lookup::Verdict> v =
        validator.validate("bob@partner.example", {other, pki().intermediate.cert, good});
    ASSERT_EQ(v.size(), 3U);
    EXPECT_EQ(v[0].cert.fingerprint_sha256(), other.fingerprint_sha256());
    EXPECT_FALSE(v[0].usable);
    EXPECT_TRUE(contains(v[0].reason, "not in certificate")) << v[0].reason;
    EXPECT_FALSE(v[1].usable);  // the intermediate: a CA, and no address
    EXPECT_TRUE(contains(v[1].reason, "a CA certificate")) << v[1].reason;
    EXPECT_TRUE(v[2].usable) << v[2].reason;
    EXPECT_TRUE(validator.validate("bob@partner.example", {}).empty());
}

// A key OpenSSL cannot decode: the Ed25519 OID in the SubjectPublicKeyInfo is rewritten to an
// unassigned one (1.3.101.99), so the parsed certificate has no public key at all.
Certificate certificate_without_public_key() {
    std::vector<unsigned char> der = pki().root.issue(LeafSpec{.key = "ed25519"}).der();
    const unsigned char ed25519_oid[] = {0x06, 0x03, 0x2B, 0x65, 0x70};
    auto it = std::search(der.begin(), der.end(), std::begin(ed25519_oid), std::end(ed25519_oid));
    if (it == der.end()) throw std::runtime_error("Ed25519 OID not found");
    it[4] = 0x63;
    const unsigned char* p = der.data();
    crypto::X509_ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!x) crypto::throw_openssl("d2i_X509");
    return Certificate(std::move(x));
}

TEST(ValidatorKeys, CertificateWithoutPublicKeyIsRejectedNotCrashed) {
    const Certificate keyless = certificate_without_public_key();
    ASSERT_EQ(X509_get0_pubkey(keyless.native()), nullptr);
    crypto::drain_errors();
    FixedClock clock(kNow);
    const lookup::Validator validator(root_options(&clock));
    for (const bool trust_source : {false, true}) {
        const std::vector<lookup::Verdict> v = validator.validate("bob@partner.example", {keyless}, trust_source);
        ASSERT_EQ(v.size(), 1U);
        EXPECT_FALSE(v[0].usable);
        EXPECT_EQ(v[0].reason, "no usable public key");
    }
}

TEST(ValidatorDefaults, NoTrustAnchorFilesMeansTheSystemStore) {
    const lookup::Validator validator(lookup::ValidatorOptions{});  // system store, system clock
    const Certificate leaf = pki().root.issue(LeafSpec{.not_before_days = -1000, .not_after_days = 3000});
    const lookup::Verdict v = validator.validate("bob@partner.example", {leaf}).at(0);
    EXPECT_FALSE(v.usable);
    EXPECT_TRUE(contains(v.reason, "chain: unable to get local issuer certificate")) << v.reason;
}

TEST(ValidatorThreads, ConcurrentValidateOnOneValidator) {
    FixedClock clock(kNow);
    const lookup::Validator validator(root_options(&clock));
    const std::vector<Certificate> candidates = {pki().intermediate.issue(LeafSpec{}), pki().intermediate.cert,
                                                 pki().rogue.issue(LeafSpec{})};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i) {
                const std::vector<lookup::Verdict> v = validator.validate("bob@partner.example", candidates);
                if (v.size() != 3 || !v[0].usable || v[1].usable || v[2].usable) ++failures;
            }
        });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
}

struct BadFileRow {
    std::string name{};
    bool crl = false;       // the file goes into crl_files (else trust_anchor_files)
    std::string content{};  // written to the file
    bool create = true;     // false: the file does not exist
    std::string message{};  // besides the file name
};

void PrintTo(const BadFileRow& row, std::ostream* os) {  // NOLINT(readability-identifier-naming): gtest hook
    *os << row.name;
}

class ValidatorBadFiles : public ::testing::TestWithParam<BadFileRow> {};

TEST_P(ValidatorBadFiles, ThrowNamingTheFile) {
    const BadFileRow& row = GetParam();
    const std::string path = pki().file(row.name);
    if (row.create) write_text(path, row.content);
    lookup::ValidatorOptions options{.trust_anchor_files = {pki().root_pem}, .crl_files = {}};
    (row.crl ? options.crl_files : options.trust_anchor_files).push_back(path);
    try {
        const lookup::Validator validator(options);
        ADD_FAILURE() << "no ValidatorError for " << path;
    } catch (const lookup::ValidatorError& e) {
        EXPECT_TRUE(contains(e.what(), path)) << e.what();
        EXPECT_TRUE(contains(e.what(), row.message)) << e.what();
    }
}

std::vector<BadFileRow> bad_file_rows() {
    return {
        {.name = "anchor_missing", .create = false, .message = "cannot load trust anchor file"},
        {.name = "anchor_garbage", .content = "not a certificate\n", .message = "cannot load trust anchor file"},
        {.name = "anchor_empty", .content = "", .message = "cannot load trust anchor file"},
        {.name = "anchor_broken_pem",
         .content = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
         .message = "cannot load trust anchor file"},
        {.name = "crl_missing", .crl = true, .create = false, .message = "cannot read CRL file"},
        {.name = "crl_garbage", .crl = true, .content = "garbage", .message = "no PEM or DER CRL"},
        {.name = "crl_empty", .crl = true, .content = "", .message = "no PEM or DER CRL"},
    };
}

INSTANTIATE_TEST_SUITE_P(Validate, ValidatorBadFiles, ::testing::ValuesIn(bad_file_rows()), ByName{});

TEST(ValidatorCrlFiles, CertificatePemGivenAsCrl) {
    lookup::ValidatorOptions options{.trust_anchor_files = {pki().root_pem}, .crl_files = {pki().root_pem}};
    try {
        const lookup::Validator validator(options);
        ADD_FAILURE() << "a certificate was accepted as a CRL";
    } catch (const lookup::ValidatorError& e) {
        EXPECT_TRUE(contains(e.what(), pki().root_pem)) << e.what();
    }
}

// ---- select() ----------------------------------------------------------------------------

lookup::Verdict verdict(const Certificate& c, bool usable) {
    return lookup::Verdict{c, usable, usable ? "" : "no"};
}

struct SelectCerts {
    Certificate old_cert = pki().root.issue(LeafSpec{.not_before_days = -300});
    Certificate mid_cert = pki().root.issue(LeafSpec{.not_before_days = -200});
    Certificate new_cert = pki().root.issue(LeafSpec{.not_before_days = -100});
    Certificate newest_but_rejected = pki().root.issue(LeafSpec{.not_before_days = -1});
    std::vector<lookup::Verdict> verdicts() const {
        return {verdict(mid_cert, true), verdict(newest_but_rejected, false), verdict(old_cert, true),
                verdict(new_cert, true), verdict(mid_cert, true)};
    }
};

std::vector<std::string> fingerprints(const std::vector<Certificate>& certs) {
    std::vector<std::string> out;
    out.reserve(certs.size());
    for (const Certificate& c : certs) out.push_back(c.fingerprint_sha256());
    return out;
}

TEST(SelectTest, AllValidIsDeduplicatedNewestFirst) {
    const SelectCerts c;
    EXPECT_EQ(fingerprints(lookup::select(c.verdicts(), lookup::EncryptTo::AllValid)),
              fingerprints({c.new_cert, c.mid_cert, c.old_cert}));
}

TEST(SelectTest, NewestIsTheUsableOneWithTheLatestNotBefore) {
    const SelectCerts c;
    EXPECT_EQ(fingerprints(lookup::select(c.verdicts(), lookup::EncryptTo::Newest)), fingerprints({c.new_cert}));
}

TEST(SelectTest, EmptyWhenNoneUsable) {
    const SelectCerts c;
    const std::vector<lookup::Verdict> none = {verdict(c.old_cert, false), verdict(c.new_cert, false)};
    EXPECT_TRUE(lookup::select(none, lookup::EncryptTo::AllValid).empty());
    EXPECT_TRUE(lookup::select(none, lookup::EncryptTo::Newest).empty());
    EXPECT_TRUE(lookup::select({}, lookup::EncryptTo::Newest).empty());
}

TEST(SelectTest, FromValidatorVerdicts) {
    FixedClock clock(kNow);
    const lookup::Validator validator(root_options(&clock));
    const Certificate older = pki().root.issue(LeafSpec{.key = "ec-p256", .not_before_days = -60});
    const Certificate newer = pki().root.issue(LeafSpec{.not_before_days = -5});
    const Certificate expired = pki().root.issue(LeafSpec{.not_before_days = -2, .not_after_days = -1});
    const std::vector<lookup::Verdict> v = validator.validate("bob@partner.example", {older, expired, newer});
    EXPECT_EQ(fingerprints(lookup::select(v, lookup::EncryptTo::AllValid)), fingerprints({newer, older}));
    EXPECT_EQ(fingerprints(lookup::select(v, lookup::EncryptTo::Newest)), fingerprints({newer}));
}

}  // namespace

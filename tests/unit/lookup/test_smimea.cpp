// tests/unit/lookup/test_smimea.cpp — the DNS SMIMEA source (lookup/smimea_source.hpp)
// against a real DNSSEC-signed zone.
//
// One NSD per suite (tests/support/dns/start_nsd.sh) serves dane.example., signed with
// ldns-signzone, and its unsigned child insecure.dane.example. (delegated without DS);
// libunbound forwards to it with the zone's DS as the trust anchor. The records are made here
// from throw-away certificates: usage 3 with a certificate nobody trusts (and expired), usage 1
// under a test CA, a record whose signature is corrupted (bogus), records in the unsigned
// child (insecure), a record holding another person's certificate, a local part in upper case,
// digest-only and bare-key records. Each case goes through the source and through a Chain with
// the one Validator. Pure pieces (owner name, RDATA, trust anchor file) have rows of their own.
#include "lookup/chain.hpp"
#include "lookup/smimea_source.hpp"
#include "lookup/validate.hpp"
#include "crypto/certificate_builder.hpp"
#include "tests/support/dns/nsd_server.hpp"
#include "tests/support/scripted_source.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <atomic>
#include <memory>
#include <optional>

namespace {

using namespace sealmilter;
using lookup::Outcome;
using sealmilter::testing::dns::NsdServer;

// ---- pure pieces ----------------------------------------------------------------------

TEST(SmimeaOwnerName, Rfc8162ExampleHashesTheLocalPart) {
    // RFC 8162 §3.1 (appendix example): hugh@example.com.
    EXPECT_EQ(lookup::smimea_owner_name("hugh@example.com"),
              "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert.example.com");
}

TEST(SmimeaOwnerName, LocalPartAsWrittenDomainFolded) {
    const auto upper = lookup::smimea_owner_name("Hugh@EXAMPLE.com");
    const auto lower = lookup::smimea_owner_name("hugh@example.com");
    ASSERT_TRUE(upper && lower);
    EXPECT_NE(upper->substr(0, 56), lower->substr(0, 56));                    // local part as written
    EXPECT_EQ(upper->substr(56), "._smimecert.example.com");                  // domain folded
    EXPECT_EQ(lookup::smimea_owner_name("a@b@example.com")->substr(56), "._smimecert.example.com");
}

TEST(SmimeaOwnerName, NotADnsAddress) {
    for (const char* bad : {"nobody", "@example.com", "x@", "x@exa mple.com", "x@ex..ample", "x@\xc3\xa9.example",
                            "x@a(b).example"})
        EXPECT_FALSE(lookup::smimea_owner_name(bad)) << bad;
}

TEST(SmimeaRdata, ShortRecordsAreRefused) {
    EXPECT_FALSE(lookup::parse_smimea_rdata(std::string("\x03\x00\x00", 3)));
    const auto r = lookup::parse_smimea_rdata(std::string("\x03\x01\x02xy", 5));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->usage, 3);
    EXPECT_EQ(r->selector, 1);
    EXPECT_EQ(r->matching, 2);
    EXPECT_EQ(r->data, "xy");
}

TEST(SmimeaRdata, OnlyFullCertificatesOfUsage1And3AreCandidates) {
    const crypto::Certificate cert = sealmilter::testing::make_identity({.email = "a@dane.example"}).cert;
    const std::vector<unsigned char> der = cert.der();
    const std::string d(der.begin(), der.end());
    auto rec = [&](int u, int s, int m, const std::string& data) {
        return std::string{static_cast<char>(u), static_cast<char>(s), static_cast<char>(m)} + data;
    };
    const lookup::SmimeaCandidates c = lookup::smimea_candidates(
        {rec(3, 0, 0, d), rec(1, 0, 0, d), rec(3, 0, 1, std::string(32, 'x')), rec(3, 1, 0, "spki"),
         rec(2, 0, 0, d), rec(3, 0, 0, "not der"), "\x03"});
    ASSERT_EQ(c.certificates.size(), 2U);
    EXPECT_EQ(c.dane_ee, (std::vector<bool>{true, false}));
    ASSERT_EQ(c.ignored.size(), 5U);
    EXPECT_NE(c.ignored[0].find("only confirms"), std::string::npos) << c.ignored[0];
    EXPECT_NE(c.ignored[1].find("bare public key"), std::string::npos) << c.ignored[1];
    EXPECT_NE(c.ignored[2].find("CA constraint"), std::string::npos) << c.ignored[2];
    EXPECT_NE(c.ignored[3].find("not one DER certificate"), std::string::npos) << c.ignored[3];
    EXPECT_NE(c.ignored[4].find("shorter"), std::string::npos) << c.ignored[4];
}

class TrustAnchorFile : public ::testing::Test {
protected:
    void SetUp() override { dir_ = sealmilter::testing::http::make_temp_dir("ta"); }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string write(const std::string& text) {
        sealmilter::testing::http::write_file(dir_ + "/ta", text);
        return dir_ + "/ta";
    }
    std::string dir_;
};

TEST_F(TrustAnchorFile, CommentsAndParenthesesAreRead) {
    const auto records = lookup::read_trust_anchors(
        write("; root\n# also a comment\n\nexample. IN DS 1 13 2 abcd ; trailing\n"
              "example. 3600 IN DNSKEY 257 3 13 (\n  AAAA\n  BBBB ) ; key\n"));
    ASSERT_EQ(records.size(), 2U);
    EXPECT_EQ(records[0], "example. IN DS 1 13 2 abcd");
    EXPECT_NE(records[1].find("DNSKEY 257 3 13"), std::string::npos);
    EXPECT_NE(records[1].find("AAAA"), std::string::npos);
}

TEST_F(TrustAnchorFile, AnythingElseNamesTheLine) {
    try {
        lookup::read_trust_anchors(write("; ok\nexample. IN DS 1 13 2 ab\nexample. IN A 127.0.0.1\n"));
        FAIL() << "no error";
    } catch (const lookup::SmimeaError& e) {
        EXPECT_NE(std::string(e.what()).find(":3: not a DS or DNSKEY record"), std::string::npos) << e.what();
    }
    EXPECT_THROW(lookup::read_trust_anchors(write("; only comments\n")), lookup::SmimeaError);
    EXPECT_THROW(lookup::read_trust_anchors(write("example. IN DNSKEY 257 3 13 ( AAAA\n")), lookup::SmimeaError);
    EXPECT_THROW(lookup::read_trust_anchors(dir_ + "/missing"), lookup::SmimeaError);
}

// ---- against the real signed zone -----------------------------------------------------

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

// One SMIMEA record in RFC 3597 generic syntax, for the address as written.
std::string smimea_line(const std::string& address, int usage, int selector, int matching, const std::string& data) {
    const std::string rdata = std::string{static_cast<char>(usage), static_cast<char>(selector),
                                          static_cast<char>(matching)} + data;
    return *lookup::smimea_owner_name(address) + ". 300 IN TYPE53 \\# " + std::to_string(rdata.size()) + " " +
           hex(rdata);
}

std::string der_of(const crypto::Certificate& c) {
    const std::vector<unsigned char> der = c.der();
    return {der.begin(), der.end()};
}

struct Pki {
    crypto::EVP_PKEY_ptr ca_key = crypto::generate_ec_key("prime256v1");
    crypto::EVP_PKEY_ptr leaf_key = crypto::generate_rsa_key(2048);
    crypto::Certificate ca = make_ca();

    crypto::Certificate make_ca() {
        crypto::CertificateBuilder b;
        b.public_key(ca_key.get()).common_name("sealmilter SMIMEA test CA").valid_days(30).serial(1);
        b.basic_constraints(true).key_usage(crypto::kKeyCertSign | crypto::kCrlSign).subject_key_identifier();
        return b.build();
    }
    // A leaf for `email`; issued by the trusted CA, or self-signed (nobody trusts it).
    crypto::Certificate leaf(const std::string& email, bool under_ca, long not_before_days = -1,
                             long not_after_days = 365) {
        static std::atomic<uint64_t> serial{100};
        crypto::CertificateBuilder b;
        const std::time_t now = std::time(nullptr);
        b.public_key(leaf_key.get()).common_name(email).add_email_san(email).serial(serial++);
        b.validity(now + not_before_days * 86400, now + not_after_days * 86400);
        b.key_usage(crypto::key_usage_from_names("keyEncipherment,digitalSignature"));
        b.extended_key_usage({"emailProtection"});
        if (under_ca) b.issuer(ca, ca_key.get());
        return b.build();
    }
};

class SmimeaZone : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pki_ = std::make_unique<Pki>();
        server_ = std::make_unique<NsdServer>();
        Pki& p = *pki_;
        // alice: DANE-EE, self-signed and expired: no chain, no date check.
        p_alice_ = p.leaf("alice@dane.example", false, -400, -30);
        server_->add_signed(smimea_line("alice@dane.example", 3, 0, 0, der_of(*p_alice_)));
        // bob: PKIX-EE under the trusted CA; bob2: PKIX-EE with a certificate nobody trusts.
        p_bob_ = p.leaf("bob@dane.example", true);
        server_->add_signed(smimea_line("bob@dane.example", 1, 0, 0, der_of(*p_bob_)));
        server_->add_signed(smimea_line("bob2@dane.example", 1, 0, 0, der_of(p.leaf("bob2@dane.example", false))));
        // carol: a valid DANE-EE record whose signature is then corrupted.
        server_->add_signed(smimea_line("carol@dane.example", 3, 0, 0, der_of(p.leaf("carol@dane.example", false))));
        server_->tamper(*lookup::smimea_owner_name("carol@dane.example") + ".");
        // dave: DANE-EE in the unsigned child zone.
        server_->add_unsigned(
            smimea_line("dave@insecure.dane.example", 3, 0, 0, der_of(p.leaf("dave@insecure.dane.example", false))));
        // erin's owner name holds frank's certificate; frank has no record.
        server_->add_signed(smimea_line("erin@dane.example", 3, 0, 0, der_of(p.leaf("frank@dane.example", false))));
        // Grace, hashed as written with the capital G.
        p_grace_ = p.leaf("Grace@dane.example", false);
        server_->add_signed(smimea_line("Grace@dane.example", 3, 0, 0, der_of(*p_grace_)));
        // heidi: only a digest (matching type 1) and a bare key (selector 1).
        server_->add_signed(smimea_line("heidi@dane.example", 3, 0, 1, std::string(32, '\x11')));
        server_->add_signed(smimea_line("heidi@dane.example", 3, 1, 0, "bare key bytes"));
        if (!server_->start()) {
            skip_ = "nsd/ldnsutils not usable: " + server_->reason();
            return;
        }
        lookup::SmimeaOptions o;
        o.trust_anchor_file = server_->trust_anchor();
        o.forwarders = {server_->forwarder()};
        o.timeout_ms = 5000;
        source_ = std::make_unique<lookup::SmimeaSource>(o);
        // The trusted CA as the validator's only anchor.
        ca_file_ = server_->prefix() + "/ca.pem";
        crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
        PEM_write_bio_X509(mem.get(), p.ca.native());
        char* data = nullptr;
        const long n = BIO_get_mem_data(mem.get(), &data);
        sealmilter::testing::http::write_file(ca_file_, std::string(data, static_cast<size_t>(n)));
        validator_ = std::make_unique<lookup::Validator>(lookup::ValidatorOptions{.trust_anchor_files = {ca_file_}});
    }
    static void TearDownTestSuite() {
        source_.reset();
        validator_.reset();
        server_.reset();  // stops nsd by PID
        pki_.reset();
    }
    void SetUp() override {
        if (!skip_.empty()) GTEST_SKIP() << skip_;
    }

    static lookup::SourceAnswer ask(const std::string& address) { return source_->lookup(lookup::make_query(address)); }
    static lookup::LookupResult resolve(const std::string& address,
                                        std::vector<lookup::CertificateSource*> extra = {},
                                        std::vector<std::string> order = {"dns"}) {
        extra.push_back(source_.get());
        const lookup::Chain chain(std::move(order), std::move(extra), *validator_, nullptr, lookup::EncryptTo::AllValid);
        return chain.resolve({address}).front();
    }

    static inline std::unique_ptr<Pki> pki_;
    static inline std::unique_ptr<NsdServer> server_;
    static inline std::unique_ptr<lookup::SmimeaSource> source_;
    static inline std::unique_ptr<lookup::Validator> validator_;
    static inline std::string ca_file_;
    static inline std::string skip_;
    static inline std::optional<crypto::Certificate> p_alice_;
    static inline std::optional<crypto::Certificate> p_bob_;
    static inline std::optional<crypto::Certificate> p_grace_;
};

TEST_F(SmimeaZone, DaneEeIsUsedWithoutChainOrDates) {
    const lookup::SourceAnswer a = ask("alice@dane.example");
    ASSERT_EQ(a.outcome, Outcome::Found) << a.reason;
    ASSERT_EQ(a.candidates.size(), 1U);
    EXPECT_TRUE(source_->vouches_for(a.candidates[0]));
    EXPECT_TRUE(source_->vouches_for_validity(a.candidates[0]));
    const lookup::LookupResult r = resolve("alice@dane.example");
    ASSERT_EQ(r.outcome, Outcome::Found) << r.reason;
    EXPECT_EQ(r.source, "dns");
    ASSERT_EQ(r.selected.size(), 1U);
    EXPECT_EQ(r.selected[0].fingerprint_sha256(), p_alice_->fingerprint_sha256());
}

TEST_F(SmimeaZone, DaneEeStillNeedsTheRightAddressAndKey) {
    // erin's record holds frank's certificate: the address check stands for DANE-EE too.
    const lookup::LookupResult r = resolve("erin@dane.example");
    EXPECT_EQ(r.outcome, Outcome::NotFound) << r.reason;
    ASSERT_FALSE(r.trace.empty());
    ASSERT_EQ(r.trace.back().verdicts.size(), 1U);
    EXPECT_NE(r.trace.back().verdicts[0].reason.find("not in certificate"), std::string::npos)
        << r.trace.back().verdicts[0].reason;
    // frank himself has no record (a secure "no such name").
    const lookup::SourceAnswer frank = ask("frank@dane.example");
    EXPECT_EQ(frank.outcome, Outcome::NotFound) << frank.reason;
    EXPECT_NE(frank.reason.find("secure"), std::string::npos) << frank.reason;
}

TEST_F(SmimeaZone, PkixEeChainsToTheTrustAnchors) {
    const lookup::SourceAnswer a = ask("bob@dane.example");
    ASSERT_EQ(a.outcome, Outcome::Found) << a.reason;
    ASSERT_EQ(a.candidates.size(), 1U);
    EXPECT_FALSE(source_->vouches_for(a.candidates[0]));
    const lookup::LookupResult r = resolve("bob@dane.example");
    ASSERT_EQ(r.outcome, Outcome::Found) << r.reason;
    EXPECT_EQ(r.selected[0].fingerprint_sha256(), p_bob_->fingerprint_sha256());
    // The same usage without a chain is rejected, with the chain reason.
    const lookup::LookupResult r2 = resolve("bob2@dane.example");
    EXPECT_EQ(r2.outcome, Outcome::NotFound);
    EXPECT_NE(r2.reason.find("chain"), std::string::npos) << r2.reason;
}

TEST_F(SmimeaZone, BrokenSignatureIsASourceErrorNeverNone) {
    const lookup::SourceAnswer a = ask("carol@dane.example");
    EXPECT_EQ(a.outcome, Outcome::TempError) << a.reason;
    EXPECT_NE(a.reason.find("bogus"), std::string::npos) << a.reason;
    EXPECT_TRUE(a.candidates.empty());
    // Another source saying "none" does not turn the failure into a definite miss.
    sealmilter::testing::ScriptedSource directory("directory");
    const lookup::LookupResult r = resolve("carol@dane.example", {&directory}, {"directory", "dns"});
    EXPECT_EQ(r.outcome, Outcome::TempError) << r.reason;
    EXPECT_TRUE(r.selected.empty());
    EXPECT_EQ(directory.calls, 1);
}

TEST_F(SmimeaZone, UnsignedZoneIsIgnored) {
    const lookup::SourceAnswer a = ask("dave@insecure.dane.example");
    EXPECT_EQ(a.outcome, Outcome::NotFound) << a.reason;
    EXPECT_NE(a.reason.find("insecure"), std::string::npos) << a.reason;
    EXPECT_TRUE(a.candidates.empty());
}

TEST_F(SmimeaZone, LocalPartIsHashedAsWritten) {
    const lookup::LookupResult r = resolve("Grace@dane.example");
    ASSERT_EQ(r.outcome, Outcome::Found) << r.reason;
    EXPECT_EQ(r.selected[0].fingerprint_sha256(), p_grace_->fingerprint_sha256());
    EXPECT_EQ(r.email, "grace@dane.example");  // the cache key stays normalised
    EXPECT_EQ(ask("grace@dane.example").outcome, Outcome::NotFound);
}

TEST_F(SmimeaZone, DigestsAndBareKeysNeverStandAlone) {
    const lookup::SourceAnswer a = ask("heidi@dane.example");
    EXPECT_EQ(a.outcome, Outcome::NotFound) << a.reason;
    EXPECT_NE(a.reason.find("only confirms"), std::string::npos) << a.reason;
    EXPECT_NE(a.reason.find("bare public key"), std::string::npos) << a.reason;
}

TEST_F(SmimeaZone, ManyAddressesAtOnceKeepTheirOrder) {
    std::vector<lookup::Query> qs;
    for (const char* a : {"bob@dane.example", "carol@dane.example", "alice@dane.example", "nobody@dane.example",
                          "not-an-address"})
        qs.push_back(lookup::make_query(a));
    const std::vector<lookup::SourceAnswer> as = source_->lookup_many(qs);
    ASSERT_EQ(as.size(), 5U);
    EXPECT_EQ(as[0].outcome, Outcome::Found);
    EXPECT_EQ(as[1].outcome, Outcome::TempError);
    EXPECT_EQ(as[2].outcome, Outcome::Found);
    EXPECT_EQ(as[3].outcome, Outcome::NotFound);
    EXPECT_EQ(as[4].outcome, Outcome::NotFound);
}

TEST_F(SmimeaZone, ParallelSourcesFirstInPriorityWins) {
    // A directory that also has alice (vouched by the scripted source): asked together, the
    // one first in lookup.order answers; the other is traced as not used.
    sealmilter::testing::ScriptedSource directory("directory");
    const crypto::Certificate other = pki_->leaf("alice@dane.example", true);
    directory.answers["alice@dane.example"].outcome = Outcome::Found;
    directory.answers["alice@dane.example"].candidates = {other};
    const lookup::LookupResult dns_first = resolve("alice@dane.example", {&directory}, {"dns", "directory"});
    ASSERT_EQ(dns_first.outcome, Outcome::Found) << dns_first.reason;
    EXPECT_EQ(dns_first.source, "dns");
    EXPECT_EQ(dns_first.selected[0].fingerprint_sha256(), p_alice_->fingerprint_sha256());
    ASSERT_EQ(dns_first.trace.size(), 2U);
    EXPECT_NE(dns_first.trace[1].reason.find("not used: dns has priority"), std::string::npos)
        << dns_first.trace[1].reason;
    const lookup::LookupResult dir_first = resolve("alice@dane.example", {&directory}, {"directory", "dns"});
    ASSERT_EQ(dir_first.outcome, Outcome::Found) << dir_first.reason;
    EXPECT_EQ(dir_first.source, "directory");
    EXPECT_EQ(dir_first.selected[0].fingerprint_sha256(), other.fingerprint_sha256());
}

// Last: stops the suite's server.
TEST_F(SmimeaZone, ZzServerGoneIsATimeoutNotNone) {
    lookup::SmimeaOptions o;
    o.trust_anchor_file = server_->trust_anchor();
    o.forwarders = {server_->forwarder()};
    o.timeout_ms = 1500;
    lookup::SmimeaSource fresh(o);  // its own (empty) cache
    server_->stop();
    const lookup::SourceAnswer a = fresh.lookup(lookup::make_query("bob@dane.example"));
    EXPECT_EQ(a.outcome, Outcome::TempError) << a.reason;
}

}  // namespace

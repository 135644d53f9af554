// tests/unit/lookup/test_ldap.cpp — the LDAP certificate source (lookup/ldap_source.hpp).
//
// LdapFilter*, LdapUris*, LdapDomainMap*, LdapValue*, LdapOptions*: pure, table-driven.
// LdapSlapd*: one real slapd per suite (tests/support/ldap/start_slapd.sh) on 127.0.0.1 with
//   its own schema (core, cosine, inetorgperson), a test CA for ldaps:// and StartTLS, and
//   entries for several users: found via each attribute, not found, two certificates, a
//   wrong-address certificate, filter injection, TLS and bind failures, connection reuse.
// LdapSlapdDown*: its own slapd, stopped mid-run (TempError, never NotFound) and restarted.
// Label unit;server. Servers listen on loopback only and are stopped by PID.
#include "lookup/chain.hpp"
#include "lookup/ldap_source.hpp"
#include "lookup/registry.hpp"
#include "lookup/validate.hpp"

#include "crypto/certificate_builder.hpp"
#include "crypto/signed_data.hpp"
#include "tests/support/ldap/slapd.hpp"

#include <gtest/gtest.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/socket.h>

#include <map>
#include <memory>
#include <set>

namespace sealmilter::lookup {
namespace {

namespace http = sealmilter::testing::http;
using sealmilter::testing::ldap::SlapdServer;

// ---- a small PKI -----------------------------------------------------------------------------

struct Pki {
    crypto::EVP_PKEY_ptr root_key = crypto::generate_ec_key("prime256v1");
    crypto::Certificate root = crypto::CertificateBuilder()
                                   .public_key(root_key.get())
                                   .common_name("LDAP test recipients root")
                                   .basic_constraints(true)
                                   .key_usage(crypto::kKeyCertSign | crypto::kCrlSign)
                                   .subject_key_identifier()
                                   .build();
    std::string dir = http::make_temp_dir("ldap-pki");
    std::string root_pem = dir + "/root.pem";

    Pki() {
        crypto::BIO_ptr b(BIO_new_file(root_pem.c_str(), "w"));
        PEM_write_bio_X509(b.get(), root.native());
    }
    ~Pki() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    Pki(const Pki&) = delete;
    Pki& operator=(const Pki&) = delete;

    crypto::KeyMaterial leaf(const std::string& email) const {
        crypto::KeyMaterial m;
        m.key = crypto::generate_ec_key("prime256v1");
        m.certificate = crypto::CertificateBuilder()
                            .public_key(m.key.get())
                            .common_name(email)
                            .add_email_san(email)
                            .issuer(root, root_key.get())
                            .key_usage(crypto::kKeyAgreement | crypto::kDigitalSignature)
                            .extended_key_usage({"emailProtection"})
                            .authority_key_identifier()
                            .build();
        return m;
    }
};

const Pki& pki() {
    static const Pki p;
    return p;
}

std::string der_of(const crypto::Certificate& c) {
    const std::vector<unsigned char> d = c.der();
    return {d.begin(), d.end()};
}

std::string base64(const std::string& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

// A degenerate SignedData holding `certs` (RFC 8551 §3.8 certs-only), no signer.
std::string certs_only(const std::vector<crypto::Certificate>& certs) {
    STACK_OF(X509)* stack = sk_X509_new_null();
    for (const crypto::Certificate& c : certs) sk_X509_push(stack, c.native());
    crypto::CMS_ptr cms(CMS_sign(nullptr, nullptr, stack, nullptr, CMS_BINARY | CMS_PARTIAL));
    sk_X509_free(stack);
    unsigned char* der = nullptr;
    const int n = i2d_CMS_ContentInfo(cms.get(), &der);
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

// Outlook's form: an opaque SignedData signed by the holder, with SMIMECapabilities.
std::string signed_bundle(const crypto::KeyMaterial& holder, std::vector<std::string> capabilities) {
    crypto::StringSink der;
    crypto::SignOptions o;
    o.detached = false;
    o.capabilities = std::move(capabilities);
    crypto::SignedDataWriter w(holder, o, der);
    w.write("\r\n", 2);  // the content does not matter: the bundle carries certificates
    w.finish();
    return der.out;
}

// ---- pure parts ------------------------------------------------------------------------------

struct EscapeRow {
    const char* in;
    const char* out;
};

TEST(LdapFilter, EscapesEveryRfc4515SpecialAndNonAscii) {
    const EscapeRow rows[] = {
        {"alice@example.test", "alice@example.test"},
        {"*", "\\2a"},
        {"*)(mail=*", "\\2a\\29\\28mail=\\2a"},
        {"a\\2a@x", "a\\5c2a@x"},
        {"(x)", "\\28x\\29"},
        {"j\xc3\xb6rg@example.test", "j\\c3\\b6rg@example.test"},
        {"tab\there", "tab\\09here"},
    };
    for (const EscapeRow& r : rows) EXPECT_EQ(escape_filter_value(r.in), r.out) << r.in;
    EXPECT_EQ(escape_filter_value(std::string("a\0b", 3)), "a\\00b");
}

TEST(LdapFilter, ReplacesEveryPercentS) {
    EXPECT_EQ(expand_filter("(|(mail=%s)(otherMailbox=%s))", "a*@x"), "(|(mail=a\\2a@x)(otherMailbox=a\\2a@x))");
    EXPECT_EQ(expand_filter("(mail=%d%s)", "b@x"), "(mail=%db@x)");
}

TEST(LdapFilter, TemplateChecks) {
    const std::pair<const char*, bool> rows[] = {
        {"(mail=%s)", true},
        {"(&(objectClass=inetOrgPerson)(|(mail=%s)(proxyAddresses=smtp:%s)))", true},
        {"mail=%s", false},
        {"(mail=x)", false},
        {"(mail=%s))", false},
        {"((mail=%s)", false},
        {"(mail=%s)(cn=x)", false},
        {"(mail=\\29%s)", true},
    };
    for (const auto& [filter, ok] : rows) {
        std::string why;
        EXPECT_EQ(check_filter_template(filter, why), ok) << filter << ": " << why;
    }
}

TEST(LdapUris, OnlyLdapAndLdapsWithHostAndPort) {
    const std::pair<const char*, bool> rows[] = {
        {"ldaps://ldap.example.com", true},
        {"ldap://127.0.0.1:3890/", true},
        {"ldaps://a.example:636 ldaps://b.example:636", true},
        {"LDAPS://ldap.example.com", true},
        {"http://ldap.example.com", false},
        {"ldapi:///var/run/slapd", false},
        {"ldap://host/dc=example,dc=com", false},
        {"ldap://", false},
        {"ldap://user@host", false},
        {"", false},
    };
    for (const auto& [uri, ok] : rows) {
        std::string why;
        EXPECT_EQ(check_ldap_uris(uri, why), ok) << uri << ": " << why;
    }
    EXPECT_TRUE(all_ldaps("ldaps://a ldaps://b"));
    EXPECT_FALSE(all_ldaps("ldaps://a ldap://b"));
}

TEST(LdapDomainMap, ParsesLinesCommentsQuotesAndFilters) {
    const std::string text =
        "# partners\n"
        "\n"
        "Bridge.Example   ldap://ldap.bridge.example   \"o=European Bridge, c=DE\"\n"
        "ca.example ldaps://ldap.ca.example:636 ou=certs,o=CA (|(mail=%s)(cn=%s))\r\n"
        "   # indented comment\n";
    const LdapServer defaults{"ldaps://default", "dc=default", "(mail=%s)"};
    const std::map<std::string, LdapServer> m = parse_domain_map(text, "/etc/sealmilter/ldap-domains", defaults);
    ASSERT_EQ(m.size(), 2U);
    EXPECT_EQ(m.at("bridge.example").uri, "ldap://ldap.bridge.example");
    EXPECT_EQ(m.at("bridge.example").base, "o=European Bridge, c=DE");
    EXPECT_EQ(m.at("bridge.example").filter, "(mail=%s)");
    EXPECT_EQ(m.at("ca.example").base, "ou=certs,o=CA");
    EXPECT_EQ(m.at("ca.example").filter, "(|(mail=%s)(cn=%s))");

    LdapOptions o;
    o.defaults = defaults;
    o.domain_map = m;
    EXPECT_EQ(server_for(o, "x@CA.example")->uri, "ldaps://ldap.ca.example:636");
    EXPECT_EQ(server_for(o, "x@other.example")->uri, "ldaps://default");
    o.defaults.uri.clear();
    EXPECT_FALSE(server_for(o, "x@other.example"));
}

TEST(LdapDomainMap, BadLinesNameFileAndLine) {
    const std::pair<const char*, const char*> rows[] = {
        {"a.example ldap://h\n", "map:1: expected DOMAIN URI BASE [FILTER]"},
        {"# c\nb.example http://h dc=x\n", "map:2: 'http://h': only ldap:// and ldaps:// URIs"},
        {"\n\nc.example ldap://h dc=x mail=%s\n", "map:3: filter: a filter is enclosed in parentheses"},
        {"d.example ldap://h \"dc=x\n", "map:1: unclosed double quote"},
        {"e_x ldap://h dc=x\n", "map:1: 'e_x' is not a domain name"},
        {"f.example ldap://h dc=x\nF.example ldap://h dc=y\n", "map:2: domain f.example is listed twice"},
        {"g.example ldap://h dc=x (cn=fixed)\n", "map:1: filter: no %s in the filter"},
    };
    for (const auto& [text, expected] : rows) {
        try {
            parse_domain_map(text, "map", LdapServer{});
            ADD_FAILURE() << "accepted: " << text;
        } catch (const SettingsError& e) {
            EXPECT_EQ(std::string(e.what()).rfind(expected, 0), 0U) << e.what();
        }
    }
}

TEST(LdapValue, DerCertificateCertsOnlyBundleAndGarbage) {
    const crypto::KeyMaterial a = pki().leaf("v1@example.test");
    const crypto::KeyMaterial b = pki().leaf("v2@example.test");
    const LdapValue der = parse_ldap_value("userCertificate;binary", der_of(*a.certificate));
    ASSERT_EQ(der.certificates.size(), 1U) << der.error;
    EXPECT_EQ(der.certificates[0].fingerprint_sha256(), a.certificate->fingerprint_sha256());

    const LdapValue bundle = parse_ldap_value("userSMIMECertificate", certs_only({*a.certificate, *b.certificate}));
    ASSERT_EQ(bundle.certificates.size(), 2U) << bundle.error;
    EXPECT_TRUE(bundle.capabilities.empty());

    const LdapValue outlook = parse_ldap_value("userSMIMECertificate;binary", signed_bundle(a, {"aes256-cbc", "aes128-cbc"}));
    ASSERT_EQ(outlook.certificates.size(), 1U) << outlook.error;
    EXPECT_EQ(outlook.capabilities, (std::vector<std::string>{"aes256-cbc", "aes128-cbc"}));

    const LdapValue bare = parse_ldap_value("userSMIMECertificate", der_of(*b.certificate));
    EXPECT_EQ(bare.certificates.size(), 1U) << "a bare certificate in userSMIMECertificate is tolerated";

    for (const std::string& junk : {std::string("not DER"), std::string(), der_of(*a.certificate) + "x",
                                    certs_only({}), std::string(2 << 20, '\x30')}) {
        const LdapValue v = parse_ldap_value("userSMIMECertificate", junk);
        EXPECT_TRUE(v.certificates.empty());
        EXPECT_FALSE(v.error.empty());
    }
}

// ---- settings --------------------------------------------------------------------------------

std::map<std::string, std::string, std::less<>> ldap_settings(const std::string& uri) {
    return {{"ldap.uri", uri},          {"ldap.base", SlapdServer::kBase}, {"ldap.filter", "(mail=%s)"},
            {"ldap.bind_dn", ""},        {"ldap.bind_password_file", ""},   {"ldap.ca_file", ""},
            {"ldap.starttls", "true"},   {"ldap.timeout_ms", "3000"},       {"ldap.domain_map", ""},
            {"ldap.size_limit", "10"},   {"ldap.max_connections", "4"},     {"ldap.trusted", "false"}};
}

std::string expect_settings_error(const std::map<std::string, std::string, std::less<>>& values) {
    try {
        ldap_options(MapSettings(values));
    } catch (const SettingsError& e) {
        return e.what();
    }
    return "accepted";
}

TEST(LdapOptions, RefusesWhatCannotWork) {
    const std::string dir = http::make_temp_dir("ldap-opts");
    http::write_file(dir + "/pw", "s3cret\n");
    http::write_file(dir + "/empty", "\n");
    http::write_file(dir + "/map", "x.example ldap://h dc=x\ny.example ftp://h dc=x\n");
    auto s = ldap_settings("ldaps://127.0.0.1");

    auto bad = s;
    bad["ldap.uri"] = "https://h";
    EXPECT_NE(expect_settings_error(bad).find("ldap.uri: 'https://h'"), std::string::npos);
    bad = s;
    bad["ldap.filter"] = "(mail=x)";
    EXPECT_NE(expect_settings_error(bad).find("ldap.filter: no %s"), std::string::npos);
    bad = s;
    bad["ldap.bind_dn"] = "cn=reader";
    EXPECT_NE(expect_settings_error(bad).find("without ldap.bind_password_file"), std::string::npos);
    bad["ldap.bind_password_file"] = dir + "/missing";
    EXPECT_NE(expect_settings_error(bad).find("ldap.bind_password_file:"), std::string::npos);
    bad["ldap.bind_password_file"] = dir + "/empty";
    EXPECT_NE(expect_settings_error(bad).find("empty password"), std::string::npos);
    bad = s;
    bad["ldap.ca_file"] = dir + "/missing.pem";
    EXPECT_NE(expect_settings_error(bad).find("ldap.ca_file: cannot read"), std::string::npos);
    bad = s;
    bad["ldap.domain_map"] = dir + "/map";
    EXPECT_NE(expect_settings_error(bad).find(dir + "/map:2: 'ftp://h'"), std::string::npos);
    bad = s;
    bad["ldap.uri"] = "ldap://h";
    bad["ldap.starttls"] = "false";
    bad["ldap.trusted"] = "true";
    EXPECT_NE(expect_settings_error(bad).find("ldap.trusted"), std::string::npos);

    auto good = s;
    good["ldap.bind_dn"] = "cn=reader";
    good["ldap.bind_password_file"] = dir + "/pw";
    const LdapOptions o = ldap_options(MapSettings(good));
    EXPECT_EQ(o.bind_password, "s3cret") << "the trailing newline is stripped";

    // Registered under "ldap"; off without a URI or a domain map.
    const SourceRegistry r = builtin_sources();
    ASSERT_NE(r.find("ldap"), nullptr);
    const BuiltSource off = (*r.find("ldap"))(MapSettings(ldap_settings("")));
    EXPECT_FALSE(off.source);
    ASSERT_EQ(off.notes.size(), 1U);
    const BuiltSource on = (*r.find("ldap"))(MapSettings(good));
    ASSERT_TRUE(on.source);
    EXPECT_EQ(on.source->name(), "ldap");
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

// ---- against a real slapd --------------------------------------------------------------------

struct Users {
    crypto::KeyMaterial alice = pki().leaf("alice@example.test");
    crypto::KeyMaterial bob = pki().leaf("bob@example.test");
    crypto::KeyMaterial carol1 = pki().leaf("carol@example.test");
    crypto::KeyMaterial carol2 = pki().leaf("carol@example.test");
    crypto::KeyMaterial mallory = pki().leaf("mallory@example.test");
    crypto::KeyMaterial frank = pki().leaf("frank@example.test");
    crypto::KeyMaterial star = pki().leaf("star*user@example.test");
    crypto::KeyMaterial astar = pki().leaf("a*@x.test");
};

std::string entry(const std::string& cn, const std::string& mail, const std::vector<std::pair<std::string, std::string>>& attrs) {
    std::string e = "dn: cn=" + cn + ",ou=people,dc=example,dc=test\nobjectClass: inetOrgPerson\ncn: " + cn + "\nsn: " + cn +
                    "\nmail: " + mail + "\n";
    for (const auto& [name, value] : attrs) e += name + ":: " + base64(value) + "\n";
    return e + "\n";
}

std::string users_ldif(const Users& u) {
    return entry("alice", "alice@example.test", {{"userCertificate;binary", der_of(*u.alice.certificate)}}) +
           entry("bob", "bob@example.test", {{"userSMIMECertificate", certs_only({*u.bob.certificate, pki().root})}}) +
           entry("carol", "carol@example.test",
                 {{"userCertificate;binary", der_of(*u.carol1.certificate)},
                  {"userCertificate;binary", der_of(*u.carol2.certificate)}}) +
           entry("dave", "dave@example.test", {{"userCertificate;binary", der_of(*u.mallory.certificate)}}) +
           entry("eve", "eve@example.test", {}) +
           entry("frank", "frank@example.test", {{"userSMIMECertificate", signed_bundle(u.frank, {"aes256-gcm", "aes256-cbc"})}}) +
           entry("star", "star*user@example.test", {{"userCertificate;binary", der_of(*u.star.certificate)}}) +
           entry("astar", "a*@x.test", {{"userCertificate;binary", der_of(*u.astar.certificate)}});
}

class LdapSlapd : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        users_ = new Users();
        server_ = new SlapdServer();
        if (!server_->start(users_ldif(*users_), why_)) GTEST_LOG_(WARNING) << why_;
    }
    static void TearDownTestSuite() {
        delete server_;
        delete users_;
        server_ = nullptr;
        users_ = nullptr;
    }
    void SetUp() override {
        if (!server_->running()) GTEST_SKIP() << "no slapd: " << why_;
    }

    static std::map<std::string, std::string, std::less<>> settings(const std::string& uri) {
        auto s = ldap_settings(uri);
        s["ldap.ca_file"] = server_->ca_file();
        return s;
    }
    static std::unique_ptr<LdapSource> source(const std::map<std::string, std::string, std::less<>>& s) {
        return std::make_unique<LdapSource>(ldap_options(MapSettings(s)));
    }
    static LookupResult resolve(CertificateSource& src, const std::string& email) {
        const Validator validator(ValidatorOptions{.trust_anchor_files = {pki().root_pem}});
        const Chain chain({"ldap"}, {&src}, validator, nullptr, EncryptTo::AllValid);
        return chain.resolve({email}).front();
    }
    static std::set<std::string> fingerprints(const std::vector<crypto::Certificate>& certs) {
        std::set<std::string> out;
        for (const auto& c : certs) out.insert(c.fingerprint_sha256());
        return out;
    }

    static inline Users* users_ = nullptr;
    static inline SlapdServer* server_ = nullptr;
    static inline std::string why_;
};

TEST_F(LdapSlapd, FoundViaUserCertificateBinaryOverLdaps) {
    auto src = source(settings(server_->ldaps_uri()));
    const LookupResult r = resolve(*src, "Alice@Example.TEST");
    ASSERT_EQ(r.outcome, Outcome::Found) << r.reason << (r.trace.empty() ? "" : r.trace[0].reason);
    EXPECT_EQ(r.source, "ldap");
    ASSERT_EQ(r.selected.size(), 1U);
    EXPECT_EQ(r.selected[0].fingerprint_sha256(), users_->alice.certificate->fingerprint_sha256());
}

TEST_F(LdapSlapd, FoundViaUserSmimeCertificateBundleOverStartTls) {
    auto src = source(settings(server_->ldap_uri()));
    const SourceAnswer a = src->lookup(make_query("bob@example.test"));
    ASSERT_EQ(a.outcome, Outcome::Found) << a.reason;
    EXPECT_EQ(a.candidates.size(), 2U) << "the bundle's end-entity and CA certificate";
    const LookupResult r = resolve(*src, "bob@example.test");
    ASSERT_EQ(r.outcome, Outcome::Found) << r.reason;
    ASSERT_EQ(r.selected.size(), 1U) << "the CA certificate of the bundle is not a recipient's";
    EXPECT_EQ(r.selected[0].fingerprint_sha256(), users_->bob.certificate->fingerprint_sha256());
}

TEST_F(LdapSlapd, SignedBundleKeepsTheCapabilities) {
    auto src = source(settings(server_->ldaps_uri()));
    const LookupResult r = resolve(*src, "frank@example.test");
    ASSERT_EQ(r.outcome, Outcome::Found) << r.reason;
    EXPECT_EQ(r.capabilities, (std::vector<std::string>{"aes256-gcm", "aes256-cbc"}));
}

TEST_F(LdapSlapd, TwoValidCertificatesAreBothUsed) {
    auto src = source(settings(server_->ldaps_uri()));
    const LookupResult r = resolve(*src, "carol@example.test");
    ASSERT_EQ(r.outcome, Outcome::Found) << r.reason;
    EXPECT_EQ(fingerprints(r.selected),
              (std::set<std::string>{users_->carol1.certificate->fingerprint_sha256(),
                                     users_->carol2.certificate->fingerprint_sha256()}));
}

TEST_F(LdapSlapd, WrongAddressCertificateIsRejectedByValidation) {
    auto src = source(settings(server_->ldaps_uri()));
    EXPECT_EQ(src->lookup(make_query("dave@example.test")).outcome, Outcome::Found) << "the source returns it...";
    const LookupResult r = resolve(*src, "dave@example.test");
    EXPECT_NE(r.outcome, Outcome::Found) << "...the validator refuses it";
    EXPECT_TRUE(r.selected.empty());
    ASSERT_FALSE(r.trace.empty());
    EXPECT_NE(r.trace[0].reason.find("no usable certificate"), std::string::npos) << r.trace[0].reason;
}

TEST_F(LdapSlapd, NoEntryAndEntryWithoutCertificateAreNotFound) {
    auto src = source(settings(server_->ldaps_uri()));
    const SourceAnswer none = src->lookup(make_query("nobody@example.test"));
    EXPECT_EQ(none.outcome, Outcome::NotFound) << none.reason;
    EXPECT_EQ(none.reason, "no entry for the address");
    const SourceAnswer eve = src->lookup(make_query("eve@example.test"));
    EXPECT_EQ(eve.outcome, Outcome::NotFound) << eve.reason;
    EXPECT_EQ(eve.reason, "entry without a certificate");
    EXPECT_TRUE(src->properties().negative_authoritative);
}

TEST_F(LdapSlapd, FilterInjectionNeverMatchesAnotherEntry) {
    auto src = source(settings(server_->ldaps_uri()));
    for (const char* hostile : {"*)(mail=*", "a\\2a@x.test", "*", "*@example.test", "st*@example.test",
                                "alice@example.test)(mail=*", "*)(|(mail=*"}) {
        const SourceAnswer a = src->lookup(make_query(hostile));
        EXPECT_EQ(a.outcome, Outcome::NotFound) << hostile << ": " << a.reason;
        EXPECT_TRUE(a.candidates.empty()) << hostile;
    }
    // An address with '*' is a valid mailbox: looked up escaped, it finds its own entry only.
    const SourceAnswer star = src->lookup(make_query("star*user@example.test"));
    ASSERT_EQ(star.outcome, Outcome::Found) << star.reason;
    ASSERT_EQ(star.candidates.size(), 1U);
    EXPECT_EQ(star.candidates[0].fingerprint_sha256(), users_->star.certificate->fingerprint_sha256());
    const SourceAnswer astar = src->lookup(make_query("a*@x.test"));
    ASSERT_EQ(astar.outcome, Outcome::Found) << astar.reason;
    EXPECT_EQ(astar.candidates[0].fingerprint_sha256(), users_->astar.certificate->fingerprint_sha256());
}

TEST_F(LdapSlapd, TlsVerificationFailureIsTempErrorNeverPlaintext) {
    for (const std::string& uri : {server_->ldaps_uri(), server_->ldap_uri()}) {
        auto s = settings(uri);
        s["ldap.ca_file"] = server_->other_ca_file();
        auto src = source(s);
        const SourceAnswer a = src->lookup(make_query("alice@example.test"));
        EXPECT_EQ(a.outcome, Outcome::TempError) << uri;
        EXPECT_TRUE(a.candidates.empty());
        EXPECT_EQ(src->connections_opened(), 0) << "no connection was usable";
    }
}

TEST_F(LdapSlapd, PlaintextOnlyWhenStartTlsIsOff) {
    auto s = settings(server_->ldap_uri());
    s["ldap.starttls"] = "false";
    s["ldap.ca_file"] = server_->other_ca_file();  // no TLS: the CA is never consulted
    const SourceAnswer a = source(s)->lookup(make_query("alice@example.test"));
    EXPECT_EQ(a.outcome, Outcome::Found) << a.reason;
}

TEST_F(LdapSlapd, SimpleBindAndRefusedBind) {
    const std::string dir = http::make_temp_dir("ldap-pw");
    http::write_file(dir + "/good", std::string(SlapdServer::kAdminPassword) + "\n");
    http::write_file(dir + "/bad", "wrong\n");
    auto s = settings(server_->ldaps_uri());
    s["ldap.bind_dn"] = SlapdServer::kAdminDn;
    s["ldap.bind_password_file"] = dir + "/good";
    const SourceAnswer ok = source(s)->lookup(make_query("alice@example.test"));
    EXPECT_EQ(ok.outcome, Outcome::Found) << ok.reason;
    s["ldap.bind_password_file"] = dir + "/bad";
    const SourceAnswer refused = source(s)->lookup(make_query("alice@example.test"));
    EXPECT_EQ(refused.outcome, Outcome::TempError);
    EXPECT_NE(refused.reason.find("refused"), std::string::npos) << refused.reason;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

TEST_F(LdapSlapd, ConnectionsAreReusedAndABatchSharesOne) {
    auto src = source(settings(server_->ldaps_uri()));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(src->lookup(make_query("alice@example.test")).outcome, Outcome::Found);
    EXPECT_EQ(src->connections_opened(), 1);
    std::vector<Query> batch;
    const char* who[] = {"alice@example.test", "bob@example.test", "carol@example.test", "nobody@example.test"};
    for (int i = 0; i < 40; ++i) batch.push_back(make_query(who[i % 4]));
    const std::vector<SourceAnswer> answers = src->lookup_many(batch);
    ASSERT_EQ(answers.size(), batch.size());
    for (size_t i = 0; i < answers.size(); ++i)
        EXPECT_EQ(answers[i].outcome, i % 4 == 3 ? Outcome::NotFound : Outcome::Found) << i << ": " << answers[i].reason;
    EXPECT_EQ(answers[2].candidates.size(), 2U);
    EXPECT_EQ(src->connections_opened(), 1);
}

TEST_F(LdapSlapd, DomainMapPicksTheServerPerDomain) {
    const std::string dir = http::make_temp_dir("ldap-map");
    http::write_file(dir + "/map", "# the test directory serves example.test only\nexample.test " + server_->ldaps_uri() +
                                       " \"" + SlapdServer::kBase + "\" (|(mail=%s)(cn=%s))\n");
    // The default server is a closed port: only mapped domains can answer.
    auto s = settings("ldaps://127.0.0.1:" + std::to_string(http::free_loopback_port()));
    s["ldap.domain_map"] = dir + "/map";
    auto src = source(s);
    const std::vector<SourceAnswer> a =
        src->lookup_many({make_query("alice@example.test"), make_query("alice@elsewhere.test")});
    EXPECT_EQ(a[0].outcome, Outcome::Found) << a[0].reason;
    EXPECT_EQ(a[1].outcome, Outcome::TempError) << "the default server is down: " << a[1].reason;
    s["ldap.uri"] = "";
    const SourceAnswer unmapped = source(s)->lookup(make_query("alice@elsewhere.test"));
    EXPECT_EQ(unmapped.outcome, Outcome::NotFound) << unmapped.reason;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

TEST_F(LdapSlapd, WrongBaseIsTempError) {
    auto s = settings(server_->ldaps_uri());
    s["ldap.base"] = "ou=nowhere,dc=example,dc=test";
    const SourceAnswer a = source(s)->lookup(make_query("alice@example.test"));
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_NE(a.reason.find("does not exist"), std::string::npos) << a.reason;
}

// A peer that accepts the TCP connection and never says a word: ldaps:// hangs in the TLS
// handshake, ldap:// in StartTLS. A fault a real slapd will not produce.
TEST_F(LdapSlapd, SilentServerTimesOutAsTempError) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(fd, 8), 0);
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const std::string port = std::to_string(ntohs(a.sin_port));
    for (const std::string scheme : {"ldaps://", "ldap://"}) {
        auto s = settings(scheme + "127.0.0.1:" + port);
        s["ldap.timeout_ms"] = "400";
        const SourceAnswer answer = source(s)->lookup(make_query("alice@example.test"));
        EXPECT_EQ(answer.outcome, Outcome::TempError) << scheme;
    }
    close(fd);
}

// ---- the server stopped mid-run --------------------------------------------------------------

TEST(LdapSlapdDown, StoppedServerIsTempErrorAndARestartIsPickedUp) {
    const Users users;
    SlapdServer server;
    std::string why;
    if (!server.start(users_ldif(users), why)) GTEST_SKIP() << why;
    auto s = ldap_settings(server.ldaps_uri());
    s["ldap.ca_file"] = server.ca_file();
    LdapSource src(ldap_options(MapSettings(s)));
    ASSERT_EQ(src.lookup(make_query("alice@example.test")).outcome, Outcome::Found);

    server.stop();
    for (const char* who : {"alice@example.test", "nobody@example.test"}) {
        const SourceAnswer a = src.lookup(make_query(who));
        EXPECT_EQ(a.outcome, Outcome::TempError) << who << ": never NotFound while the server is down (" << a.reason << ")";
    }
    const Validator validator(ValidatorOptions{.trust_anchor_files = {pki().root_pem}});
    const Chain chain({"ldap"}, {&src}, validator, nullptr, EncryptTo::AllValid);
    EXPECT_EQ(chain.resolve({"alice@example.test"}).front().outcome, Outcome::TempError)
        << "a require recipient tempfails (451), never goes plain";

    if (!server.start("", why)) GTEST_SKIP() << "restart: " << why;
    const SourceAnswer again = src.lookup(make_query("alice@example.test"));
    EXPECT_EQ(again.outcome, Outcome::Found) << again.reason;
}

}  // namespace
}  // namespace sealmilter::lookup

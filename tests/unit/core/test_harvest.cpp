// Harvesting sender certificates from signed mail: the NSS corpus (Thunderbird's engine made
// these messages), messages signed here with chosen attributes, and the store/source.
#include "base/file.hpp"
#include "core/decide.hpp"
#include "core/harvest.hpp"
#include "crypto/envelope.hpp"
#include "crypto/ossl.hpp"
#include "lookup/chain.hpp"
#include "lookup/harvest_store.hpp"
#include "lookup/store.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/cms.h>
#include <openssl/pem.h>

#include <filesystem>
#include <set>

namespace fs = std::filesystem;
using sealmilter::core::harvest;
using sealmilter::core::HarvestOptions;
using sealmilter::core::HarvestReport;
using sealmilter::testing::CertSpec;
using sealmilter::testing::make_identity;
using sealmilter::testing::TestIdentity;

namespace {

const std::string kNss = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";

std::string slurp(const std::string& path) { return sealmilter::base::read_file(path); }

std::set<std::string> harvested(const HarvestReport& r) {
    std::set<std::string> out;
    for (const auto& h : r.certificates) out.insert(h.email);
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += s + "\n";
    return out;
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/sealmilter-harvest-XXXXXX";
        path_ = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path_); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

std::string pem_file(const TempDir& d, const std::string& name, const sealmilter::crypto::Certificate& c) {
    const std::string path = d.path() + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    PEM_write_X509(f, c.native());
    std::fclose(f);
    return path;
}

// --- the NSS corpus --------------------------------------------------------------------------

// What each file must yield: the signer whose address is From; nothing for broken signatures;
// signatures inside an envelope only with the recipient's (Bob's) key.
std::set<std::string> expected(const std::string& name, bool with_bob_key) {
    if (name.find(".bad.") != std::string::npos || name.find("mismatch-econtent") != std::string::npos) return {};
    if (name == "alice.env.eml") return {};
    const bool signed_inside_envelope = name.size() > 8 && name.compare(name.size() - 8, 8, ".env.eml") == 0;
    if (signed_inside_envelope && !with_bob_key) return {};
    if (name.find(".dave.") != std::string::npos) return {"dave@example.com"};
    return {"alice@example.com"};
}

class NssCorpus : public ::testing::Test {
protected:
    void SetUp() override {
        sealmilter::lookup::ValidatorOptions vo;
        vo.trust_anchor_files = {kNss + "TestCA.pem"};
        validator_ = std::make_unique<sealmilter::lookup::Validator>(vo);
        // Bob's key, to open the "signed, then enveloped to Bob" messages.
        PKCS12* p12 = nullptr;
        {
            const std::string der = slurp(kNss + "Bob.p12");
            const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
            p12 = d2i_PKCS12(nullptr, &p, static_cast<long>(der.size()));
        }
        ASSERT_NE(p12, nullptr);
        EVP_PKEY* key = nullptr;
        X509* cert = nullptr;
        const int ok = PKCS12_parse(p12, "nss", &key, &cert, nullptr);
        PKCS12_free(p12);
        if (ok != 1) GTEST_SKIP() << "this OpenSSL cannot read NSS's PKCS#12 (legacy algorithms)";
        bob_.key.reset(key);
        bob_.certificate.emplace(sealmilter::crypto::X509_ptr(cert));
    }
    std::unique_ptr<sealmilter::lookup::Validator> validator_;
    sealmilter::crypto::KeyMaterial bob_;
};

TEST_F(NssCorpus, EveryMessageHarvestsTheSignerNamedInFromAndNothingElse) {
    int files = 0;
    for (const auto& entry : fs::directory_iterator(kNss)) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() != ".eml") continue;
        ++files;
        const std::string raw = slurp(entry.path().string());
        sealmilter::keys::MemoryKeyRing ring;
        sealmilter::crypto::KeyMaterial bob;
        EVP_PKEY_up_ref(bob_.key.get());
        bob.key.reset(bob_.key.get());
        bob.certificate = bob_.certificate;
        ASSERT_TRUE(ring.add(std::move(bob), "Bob.p12"));
        for (const bool with_key : {false, true}) {
            HarvestOptions o;
            o.validator = validator_.get();
            if (with_key) o.keys = &ring;
            const HarvestReport r = harvest(raw, nullptr, o);
            EXPECT_EQ(harvested(r), expected(name, with_key))
                << name << (with_key ? " with Bob's key" : "") << "\n" << r.skipped << join(r.notes);
        }
    }
    EXPECT_EQ(files, 66);
}

TEST_F(NssCorpus, AliceAddressOnlyInTheSubjectDnIsHarvestedAndHerCertificateIsTheSigner) {
    HarvestOptions o;
    o.validator = validator_.get();
    const HarvestReport r = harvest(slurp(kNss + "alice.sig.SHA256.opaque.eml"), nullptr, o);
    ASSERT_EQ(r.certificates.size(), 1u) << join(r.notes);
    EXPECT_EQ(r.certificates[0].certificate.fingerprint_sha256(), r.certificates[0].signer_fingerprint);
    EXPECT_FALSE(r.certificates[0].from_key_preference);
    EXPECT_NE(r.certificates[0].signature.find("SHA256"), std::string::npos);
}

TEST_F(NssCorpus, UntrustedCaHarvestsNothing) {
    TempDir d;
    const auto other = make_identity({.email = "ca@elsewhere.example"});
    sealmilter::lookup::ValidatorOptions vo;
    vo.trust_anchor_files = {pem_file(d, "other.pem", other.cert)};
    sealmilter::lookup::Validator untrusting(vo);
    HarvestOptions o;
    o.validator = &untrusting;
    for (const char* f : {"alice.dsig.SHA256.multipart.eml", "alice.sig.SHA512.opaque.eml",
                          "alice.plain.sig.SHA256.opaque.dave.dsig.SHA256.multipart.eml"}) {
        const HarvestReport r = harvest(slurp(kNss + f), nullptr, o);
        EXPECT_TRUE(r.certificates.empty()) << f << "\n" << join(r.notes);
        EXPECT_NE(join(r.notes).find("not usable"), std::string::npos) << f << "\n" << join(r.notes);
    }
}

// --- messages signed here --------------------------------------------------------------------

struct SignSpec {
    const TestIdentity* signer = nullptr;
    std::vector<int> capabilities;                       // cipher NIDs, in order; empty: none
    const TestIdentity* encryption_preference = nullptr; // SMIMEEncryptionKeyPreference
    bool opaque = false;
};

// issuerAndSerialNumber contents, tagged [0] IMPLICIT (RFC 8551 §2.5.3).
std::string key_preference_der(X509* c) {
    unsigned char* name = nullptr;
    const int nl = i2d_X509_NAME(X509_get_issuer_name(c), &name);
    unsigned char* serial = nullptr;
    const int sl = i2d_ASN1_INTEGER(X509_get_serialNumber(c), &serial);
    std::string content(reinterpret_cast<char*>(name), static_cast<size_t>(nl));
    content.append(reinterpret_cast<char*>(serial), static_cast<size_t>(sl));
    OPENSSL_free(name);
    OPENSSL_free(serial);
    std::string out = "\xA0";
    if (content.size() < 128) {
        out += static_cast<char>(content.size());
    } else {
        out += '\x82';
        out += static_cast<char>(content.size() >> 8);
        out += static_cast<char>(content.size() & 0xff);
    }
    return out + content;
}

std::string base64_lines(const std::string& der) {
    sealmilter::crypto::BIO_ptr b64(BIO_push(BIO_new(BIO_f_base64()), BIO_new(BIO_s_mem())));
    BIO_write(b64.get(), der.data(), static_cast<int>(der.size()));
    (void)BIO_flush(b64.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(BIO_next(b64.get()), &data);
    std::string out(data, static_cast<size_t>(n));
    std::string crlf;
    for (char c : out) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    return crlf;
}

std::string sign_entity(const std::string& entity, const SignSpec& s) {
    const unsigned flags = CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP | (s.opaque ? 0U : CMS_DETACHED);
    sealmilter::crypto::CMS_ptr cms(CMS_sign(nullptr, nullptr, nullptr, nullptr, flags));
    CMS_SignerInfo* si = CMS_add1_signer(cms.get(), s.signer->cert.native(), s.signer->key.get(), EVP_sha256(), flags);
    EXPECT_NE(si, nullptr);
    if (!s.capabilities.empty()) {
        STACK_OF(X509_ALGOR)* algs = sk_X509_ALGOR_new_null();
        for (int nid : s.capabilities) PKCS7_simple_smimecap(algs, nid, -1);
        CMS_add_smimecap(si, algs);
        sk_X509_ALGOR_pop_free(algs, X509_ALGOR_free);
    }
    if (s.encryption_preference != nullptr) {
        CMS_add1_cert(cms.get(), s.encryption_preference->cert.native());
        const std::string der = key_preference_der(s.encryption_preference->cert.native());
        // A context-tagged CHOICE value: parsed as ASN1_TYPE (V_ASN1_OTHER keeps its DER).
        const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
        ASN1_TYPE* value = d2i_ASN1_TYPE(nullptr, &p, static_cast<long>(der.size()));
        EXPECT_NE(value, nullptr);
        X509_ATTRIBUTE* attr = X509_ATTRIBUTE_create(NID_id_smime_aa_encrypKeyPref, value->type, value->value.ptr);
        value->value.ptr = nullptr;
        ASN1_TYPE_free(value);
        EXPECT_EQ(CMS_signed_add1_attr(si, attr), 1);
        X509_ATTRIBUTE_free(attr);
    }
    sealmilter::crypto::BIO_ptr data(BIO_new_mem_buf(entity.data(), static_cast<int>(entity.size())));
    EXPECT_EQ(CMS_final(cms.get(), data.get(), nullptr, flags), 1);
    unsigned char* der = nullptr;
    const int n = i2d_CMS_ContentInfo(cms.get(), &der);
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return out;
}

std::string signed_message(const std::string& from, const std::string& entity, const SignSpec& s,
                           const std::string& extra_headers = "") {
    const std::string sig = sign_entity(entity, s);
    std::string head = "From: " + from + "\r\nTo: team@bank.example\r\nSubject: signed\r\nMIME-Version: 1.0\r\n" + extra_headers;
    if (s.opaque)
        return head + "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n" + base64_lines(sig);
    return head + "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; "
                  "boundary=\"sig-b\"\r\n\r\nThis is a signed message.\r\n--sig-b\r\n" + entity +
           "\r\n--sig-b\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n" + base64_lines(sig) + "\r\n--sig-b--\r\n";
}

SignSpec sig(const TestIdentity* signer, std::vector<int> caps = {}, const TestIdentity* pref = nullptr, bool opaque = false) {
    SignSpec s;
    s.signer = signer;
    s.capabilities = std::move(caps);
    s.encryption_preference = pref;
    s.opaque = opaque;
    return s;
}

class Signed : public ::testing::Test {
protected:
    void SetUp() override {
        vo_.trust_anchor_files = {pem_file(dir_, "p.pem", partner_.cert), pem_file(dir_, "p2.pem", partner_enc_.cert)};
        validator_ = std::make_unique<sealmilter::lookup::Validator>(vo_);
        options_.validator = validator_.get();
    }
    HarvestReport run(const std::string& raw, const std::string* sender = nullptr) const {
        return harvest(raw, sender, options_);
    }
    const std::string entity_ = "Content-Type: text/plain; charset=utf-8\r\n\r\nInvoice 4711 attached.\r\n";
    TempDir dir_;
    TestIdentity partner_ = make_identity({.email = "p@partner.example", .serial = 1001});
    TestIdentity partner_enc_ = make_identity({.email = "p@partner.example", .serial = 1002});
    sealmilter::lookup::ValidatorOptions vo_;
    std::unique_ptr<sealmilter::lookup::Validator> validator_;
    HarvestOptions options_;
};

TEST_F(Signed, ClearAndOpaqueSignedHarvestTheSigner) {
    for (const bool opaque : {false, true}) {
        const HarvestReport r = run(signed_message("Partner <P@Partner.example>", entity_, sig(&partner_, {}, nullptr, opaque)));
        ASSERT_EQ(r.certificates.size(), 1u) << join(r.notes);
        EXPECT_EQ(r.certificates[0].email, "p@partner.example");
        EXPECT_EQ(r.certificates[0].certificate.fingerprint_sha256(), partner_.cert.fingerprint_sha256());
    }
}

TEST_F(Signed, FromDifferentFromTheSignerHarvestsNothing) {
    const HarvestReport r = run(signed_message("someone.else@partner.example", entity_, sig(&partner_)));
    EXPECT_TRUE(r.certificates.empty());
    EXPECT_NE(join(r.notes).find("does not name the From address"), std::string::npos) << join(r.notes);
}

TEST_F(Signed, AlteredContentHarvestsNothing) {
    std::string msg = signed_message("p@partner.example", entity_, sig(&partner_));
    msg.replace(msg.find("4711"), 4, "4712");
    EXPECT_TRUE(run(msg).certificates.empty());
}

TEST_F(Signed, EncryptionKeyPreferenceNamesTheCertificateToUse) {
    const HarvestReport r =
        run(signed_message("p@partner.example", entity_, sig(&partner_, {}, &partner_enc_)));
    ASSERT_EQ(r.certificates.size(), 1u) << join(r.notes);
    EXPECT_EQ(r.certificates[0].certificate.fingerprint_sha256(), partner_enc_.cert.fingerprint_sha256());
    EXPECT_EQ(r.certificates[0].signer_fingerprint, partner_.cert.fingerprint_sha256());
    EXPECT_TRUE(r.certificates[0].from_key_preference);
}

TEST_F(Signed, CapabilitiesAreKeptInTheSendersOrder) {
    const HarvestReport gcm = run(signed_message(
        "p@partner.example", entity_, sig(&partner_, {NID_aes_256_gcm, NID_aes_256_cbc, NID_aes_128_cbc})));
    ASSERT_EQ(gcm.certificates.size(), 1u);
    EXPECT_EQ(gcm.certificates[0].capabilities, (std::vector<std::string>{"aes256-gcm", "aes256-cbc", "aes128-cbc"}));
    const HarvestReport cbc =
        run(signed_message("p@partner.example", entity_, sig(&partner_, {NID_aes_256_cbc})));
    ASSERT_EQ(cbc.certificates.size(), 1u);
    EXPECT_EQ(cbc.certificates[0].capabilities, (std::vector<std::string>{"aes256-cbc"}));
}

TEST_F(Signed, BouncesAndListMailAreSkipped) {
    const std::string msg = signed_message("p@partner.example", entity_, sig(&partner_));
    const std::string null_sender;
    EXPECT_EQ(run(msg, &null_sender).skipped, "bounce (null envelope sender)");
    EXPECT_NE(run(signed_message("p@partner.example", entity_, sig(&partner_), "List-Id: <news.partner.example>\r\n"))
                  .skipped.find("list mail"),
              std::string::npos);
    EXPECT_NE(run(signed_message("p@partner.example", entity_, sig(&partner_), "Precedence: bulk\r\n"))
                  .skipped.find("list mail"),
              std::string::npos);
    const std::string report = "From: MAILER-DAEMON@partner.example\r\nContent-Type: multipart/report; "
                               "report-type=delivery-status; boundary=r\r\n\r\n--r\r\n\r\nx\r\n--r--\r\n";
    EXPECT_EQ(run(report).skipped, "bounce (multipart/report)");
    EXPECT_FALSE(run("From: a@x.example, b@x.example\r\n\r\nx\r\n").skipped.empty());
}

TEST_F(Signed, DeepNestingIsCutOffCleanly) {
    std::string msg = signed_message("p@partner.example", entity_, sig(&partner_));
    const size_t body_at = msg.find("\r\n\r\n") + 4;
    std::string head = msg.substr(0, msg.find("Content-Type: multipart/signed"));
    std::string inner = msg.substr(msg.find("Content-Type: multipart/signed"));
    for (int i = 0; i < 300; ++i) {
        const std::string b = "n" + std::to_string(i);
        inner = "Content-Type: multipart/mixed; boundary=\"" + b + "\"\r\n\r\n--" + b + "\r\n" + inner + "\r\n--" + b + "--\r\n";
    }
    (void)body_at;
    const HarvestReport r = run(head + inner);
    EXPECT_TRUE(r.certificates.empty());
    EXPECT_NE(join(r.notes).find("nesting deeper than"), std::string::npos) << join(r.notes).substr(0, 500);
}

TEST_F(Signed, TwentyMegabyteSignedAttachmentIsHarvested) {
    std::string big = "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    const std::string line(76, 'Q');
    big.reserve(21 * 1024 * 1024);
    while (big.size() < 20 * 1024 * 1024) big += line + "\r\n";
    const HarvestReport r = run(signed_message("p@partner.example", big, sig(&partner_)));
    ASSERT_EQ(r.certificates.size(), 1u) << join(r.notes);
}

// Issue 10 defect: trial decryption with several keys made a wrong RSA key "succeed" (OpenSSL's
// MMA countermeasure) and hid the right one. Since item 6 of issue 11 harvest takes a KeyRing:
// the key is found by the envelope's RecipientIdentifier, the other keys of the ring are never
// tried, and a ring holding only other keys says that no key opens the envelope.
TEST_F(Signed, TheRingsKeyIsFoundByIdentifierAndOtherKeysAreNeverTried) {
    const TestIdentity own = make_identity({.email = "team@bank.example"});
    const TestIdentity other = make_identity({.email = "old@bank.example", .key = "rsa1024"});
    const std::string inner = signed_message("p@partner.example", entity_, sig(&partner_));
    sealmilter::crypto::StringSink der;
    sealmilter::crypto::EnvelopeWriter w({own.cert}, {}, der);
    w.write(inner.data(), inner.size());
    w.finish();
    const std::string msg = "From: p@partner.example\r\nTo: team@bank.example\r\nMIME-Version: 1.0\r\n"
                            "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
                            "Content-Transfer-Encoding: base64\r\n\r\n" + base64_lines(der.out);
    sealmilter::keys::MemoryKeyRing only_other;
    ASSERT_TRUE(only_other.add(other.material(), "other"));
    HarvestOptions o = options_;
    o.keys = &only_other;
    HarvestReport r = harvest(msg, nullptr, o);
    EXPECT_TRUE(r.certificates.empty());
    EXPECT_NE(join(r.notes).find("no configured key opens it"), std::string::npos) << join(r.notes);
    sealmilter::keys::MemoryKeyRing both;
    ASSERT_TRUE(both.add(other.material(), "other"));
    ASSERT_TRUE(both.add(own.material(), "own"));
    o.keys = &both;
    r = harvest(msg, nullptr, o);
    ASSERT_EQ(r.certificates.size(), 1u) << join(r.notes).substr(0, 2000);
    EXPECT_EQ(r.certificates[0].certificate.fingerprint_sha256(), partner_.cert.fingerprint_sha256());
}

// --- the store and the "harvest" source ----------------------------------------------------------

TEST(HarvestStore, SavesReadsAndKeepsAddressesInsideTheDirectory) {
    TempDir d;
    const auto a = make_identity({.email = "a@partner.example"});
    sealmilter::lookup::HarvestStore store(d.path());
    store.save({"a@partner.example", a.cert, 100, 200, {"aes256-gcm"}, a.cert.fingerprint_sha256(), false});
    store.save({"a@partner.example", a.cert, 150, 300, {"aes256-cbc"}, a.cert.fingerprint_sha256(), false});
    const auto recs = store.records("A@Partner.Example");
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].first_seen, 100);  // the first sighting is kept
    EXPECT_EQ(recs[0].last_seen, 300);
    EXPECT_EQ(recs[0].capabilities, (std::vector<std::string>{"aes256-cbc"}));
    for (const char* hostile : {"../../etc/passwd@x", "..", ".", "a/b@c", ""}) {
        const std::string enc = sealmilter::lookup::HarvestStore::encode(hostile);
        EXPECT_EQ(enc.find('/'), std::string::npos) << hostile;
        EXPECT_NE(enc, "..");
        EXPECT_NE(enc, ".");
        EXPECT_FALSE(enc.empty());
    }
}

TEST(HarvestSource, AnswersWithCapabilitiesAndNeverAheadOfThePinnedStore) {
    TempDir d;
    const auto pinned = make_identity({.email = "a@partner.example", .serial = 7});
    const auto seen = make_identity({.email = "a@partner.example", .serial = 8});
    fs::create_directories(d.path() + "/store");
    pem_file(d, "store/pinned.pem", pinned.cert);
    sealmilter::lookup::HarvestStore(d.path() + "/harvested")
        .save({"a@partner.example", seen.cert, 1, 2, {"aes256-gcm"}, seen.cert.fingerprint_sha256(), false});
    sealmilter::lookup::ValidatorOptions vo;
    vo.trust_anchor_files = {pem_file(d, "a1.pem", pinned.cert), pem_file(d, "a2.pem", seen.cert)};
    sealmilter::lookup::Validator validator(vo);
    sealmilter::lookup::HarvestSource harvest_source(d.path() + "/harvested");
    // Only the harvest source: its certificate and the capabilities come through.
    sealmilter::lookup::Chain only({"harvest"}, {&harvest_source}, validator, nullptr, sealmilter::lookup::EncryptTo::AllValid);
    const auto r = only.resolve({"a@partner.example"});
    ASSERT_EQ(r[0].outcome, sealmilter::lookup::Outcome::Found);
    EXPECT_EQ(r[0].source, "harvest");
    EXPECT_EQ(r[0].capabilities, (std::vector<std::string>{"aes256-gcm"}));
    EXPECT_EQ(r[0].selected[0].fingerprint_sha256(), seen.cert.fingerprint_sha256());
    // With the admin's store first (the default order), the pinned certificate answers.
    sealmilter::lookup::StoreSource store(d.path() + "/store");
    sealmilter::lookup::Chain both({"store", "harvest"}, {&store, &harvest_source}, validator, nullptr,
                                   sealmilter::lookup::EncryptTo::AllValid);
    const auto r2 = both.resolve({"a@partner.example"});
    ASSERT_EQ(r2[0].outcome, sealmilter::lookup::Outcome::Found);
    EXPECT_EQ(r2[0].source, "store");
    ASSERT_EQ(r2[0].selected.size(), 1u);
    EXPECT_EQ(r2[0].selected[0].fingerprint_sha256(), pinned.cert.fingerprint_sha256());
}

}  // namespace

namespace {

// The whole path: a signed message's capabilities, kept by the store, come back through the
// lookup chain and decide the next envelope (crypto.cipher = auto).
TEST_F(Signed, HarvestedCapabilitiesChooseTheNextEnvelope) {
    for (const bool gcm : {true, false}) {
        TempDir store_dir;
        const std::vector<int> caps = gcm ? std::vector<int>{NID_aes_256_gcm, NID_aes_256_cbc} : std::vector<int>{NID_aes_256_cbc};
        const HarvestReport r = run(signed_message("p@partner.example", entity_, sig(&partner_, caps)));
        ASSERT_EQ(r.certificates.size(), 1u) << join(r.notes);
        const auto& h = r.certificates[0];
        sealmilter::lookup::HarvestStore(store_dir.path())
            .save({h.email, h.certificate, 1, 1, h.capabilities, h.signer_fingerprint, h.from_key_preference});
        sealmilter::lookup::HarvestSource source(store_dir.path());
        sealmilter::lookup::Chain chain({"harvest"}, {&source}, *validator_, nullptr, sealmilter::lookup::EncryptTo::AllValid);
        const auto found = chain.resolve({"p@partner.example"});
        ASSERT_EQ(found[0].outcome, sealmilter::lookup::Outcome::Found);
        const auto env = sealmilter::core::choose_envelope({&found[0].capabilities}, {});
        EXPECT_EQ(env.cipher, gcm ? sealmilter::crypto::Cipher::Aes256Gcm : sealmilter::crypto::Cipher::Aes256Cbc);
        // A second recipient without known capabilities keeps the envelope readable for both.
        const std::vector<std::string> unknown;
        EXPECT_EQ(sealmilter::core::choose_envelope({&found[0].capabilities, &unknown}, {}).cipher,
                  sealmilter::crypto::Cipher::Aes256Cbc);
    }
}

TEST(ChooseEnvelope, StrongestCommonCipherAndOaepOnlyWhenAllAdvertiseIt) {
    using sealmilter::core::choose_envelope;
    using sealmilter::crypto::Cipher;
    using sealmilter::crypto::RsaPadding;
    const std::vector<std::string> gcm_oaep = {"aes256-gcm", "aes256-cbc", "rsaes-oaep"};
    const std::vector<std::string> cbc128 = {"aes128-cbc", "des-ede3-cbc"};
    EXPECT_EQ(choose_envelope({&gcm_oaep}, {}).cipher, Cipher::Aes256Gcm);
    EXPECT_EQ(choose_envelope({&gcm_oaep}, {}).rsa_padding, RsaPadding::Oaep);
    EXPECT_EQ(choose_envelope({&gcm_oaep, &cbc128}, {}).cipher, Cipher::Aes128Cbc);
    EXPECT_EQ(choose_envelope({&gcm_oaep, &cbc128}, {}).rsa_padding, RsaPadding::Pkcs1);
}

}  // namespace

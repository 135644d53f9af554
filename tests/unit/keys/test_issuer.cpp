// keys::Issuer and its parts: which addresses a certificate can name; the root `ca init` makes
// and the recipient certificates it issues (checked field by field and by `openssl verify
// -purpose smimeencrypt`); a sub-CA from `ca import`; the key-pair pool; issue() escrowing the
// key in the store and writing the record once per address; the pickup's key and its removal
// with keep_escrow = false; retire, revoke and resend.
#include "keys/issuer.hpp"

#include "base/file.hpp"
#include "crypto/certificate_builder.hpp"
#include "base/ascii.hpp"
#include "keys/master_key.hpp"
#include "keys/store.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
namespace fs = std::filesystem;

namespace {

std::string pem_of(const crypto::Certificate& c) {
    crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(mem.get(), c.native());
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem.get(), &data);
    return {data, static_cast<size_t>(n)};
}

// One keys.dir with a CA for the whole suite (an RSA-3072 root takes a while); each test uses
// its own addresses. Recipient keys are RSA-2048 made once and handed to pools with no threads.
class IssuerTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/sealmilter-issuer-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root_ = new std::string(tmpl);
        options_ = new keys::StoreOptions();
        options_->dir = *root_ + "/keys";
        options_->master_key_file = *root_ + "/master.key";
        std::string error;
        ASSERT_TRUE(keys::create_master_key_file(options_->master_key_file, &error)) << error;
        auto store = keys::KeyStore::open(*options_, &error);
        ASSERT_TRUE(store) << error;
        keys::IssueSettings s;
        s.org_name = "Example <Bank>";
        s.ca_subject = "CN=Example Bank Mail CA,OU=Secure Mail,O=Example Bank";
        const std::optional<crypto::Certificate> ca = keys::init_ca(*store, s, "", &error);
        ASSERT_TRUE(ca) << error;
        ca_ = new crypto::Certificate(*ca);
    }
    static void TearDownTestSuite() {
        fs::remove_all(*root_);
        delete root_;
        delete options_;
        delete ca_;
    }

    std::shared_ptr<keys::KeyStore> store() {
        std::string error;
        auto s = keys::KeyStore::open(*options_, &error);
        EXPECT_TRUE(s) << error;
        return s;
    }

    std::shared_ptr<keys::Issuer> issuer(size_t keys_ready, bool keep_escrow = true) {
        keys::IssueSettings s;
        s.org_name = "Example Bank";
        s.pool_threads = 0;
        s.pool_size = 4;
        s.validity_days = 30;
        s.keep_escrow = keep_escrow;
        std::string error;
        auto i = keys::Issuer::open(store(), std::make_shared<keys::IssuedRegistry>(options_->dir), s, &error);
        EXPECT_TRUE(i) << error;
        for (size_t n = 0; i && n < keys_ready; ++n) i->pool().put(crypto::generate_rsa_key(2048));
        return i;
    }

    static std::string* root_;
    static keys::StoreOptions* options_;
    static crypto::Certificate* ca_;
};
std::string* IssuerTest::root_ = nullptr;
keys::StoreOptions* IssuerTest::options_ = nullptr;
crypto::Certificate* IssuerTest::ca_ = nullptr;

TEST(UncertifiableReason, RowsOfAddresses) {
    struct Row {
        std::string address;
        std::string says;  // "" = certifiable
    };
    const std::vector<Row> rows = {
        {"alice@example.com", ""},
        {"a.b+tag@sub.example.co.uk", ""},
        {"o'brien!#$%&*/=?^_`{|}~-@example.com", ""},
        {"root@localhost", ""},
        {"\"john doe\"@example.com", "quoted local part"},
        {"j\xc3\xb6rg@example.com", "non-ASCII (internationalised) local part"},
        {"joerg@m\xc3\xbcller.example", "non-ASCII domain"},
        {std::string(65, 'a') + "@example.com", "longer than 64"},
        {std::string(64, 'a') + "@" + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(63, 'd') + ".com",
         "longer than 254"},
        {".alice@example.com", "dot-atom"},
        {"al..ice@example.com", "dot-atom"},
        {"al ice@example.com", "dot-atom"},
        {"alice@[192.0.2.1]", "not a host name"},
        {"alice@exa_mple.com", "not a host name"},
        {"alice@-example.com", "not a host name"},
        {"alice@", "no local part or no domain"},
        {"alice", "no local part or no domain"},
    };
    for (const Row& r : rows) {
        const std::optional<std::string> why = keys::uncertifiable_reason(r.address);
        if (r.says.empty()) {
            EXPECT_FALSE(why) << r.address << ": " << *why;
        } else {
            ASSERT_TRUE(why) << r.address;
            EXPECT_NE(why->find(r.says), std::string::npos) << r.address << ": " << *why;
        }
    }
}

TEST_F(IssuerTest, TheRootIsACaNamedByCaSubjectWithItsKeyActiveInTheStore) {
    X509* x = ca_->native();
    EXPECT_EQ(ca_->subject(), "CN=Example Bank Mail CA,OU=Secure Mail,O=Example Bank");
    EXPECT_EQ(ca_->issuer(), ca_->subject());
    EXPECT_EQ(ca_->key_description(), "RSA-3072");
    EXPECT_NE(X509_get_extension_flags(x) & EXFLAG_CA, 0U);
    const int bc = X509_get_ext_by_NID(x, NID_basic_constraints, -1);
    ASSERT_GE(bc, 0);
    EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(x, bc)), 1);
    EXPECT_EQ(X509_get_key_usage(x), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    EXPECT_NE(X509_get0_subject_key_id(x), nullptr);
    const double years = static_cast<double>(ca_->not_after() - ca_->not_before()) / (365.25 * 86400);
    EXPECT_NEAR(years, 20.0, 0.1);

    auto s = store();
    const keys::KeyEntry e = s->resolve(ca_->fingerprint_sha256());
    ASSERT_TRUE(e);
    EXPECT_EQ(e->state, keys::KeyState::Active);
    const auto ca_file = crypto::load_certificate_file(options_->dir + "/ca.pem");
    ASSERT_EQ(ca_file.certificates.size(), 1U);
    EXPECT_EQ(ca_file.certificates.front().fingerprint_sha256(), ca_->fingerprint_sha256());

    std::string error;
    EXPECT_FALSE(keys::init_ca(*s, keys::IssueSettings{}, "", &error));
    EXPECT_NE(error.find("exists already"), std::string::npos) << error;
}

TEST_F(IssuerTest, IssuesOnceEscrowsTheKeyAndWritesTheRecord) {
    auto i = issuer(2);
    ASSERT_TRUE(i);
    EXPECT_TRUE(i->ready());
    std::string error;
    const std::optional<crypto::Certificate> c = i->issue("New.Customer@Example.COM", &error);
    ASSERT_TRUE(c) << error;
    const std::optional<crypto::Certificate> again = i->issue("new.customer@example.com", &error);
    ASSERT_TRUE(again) << error;
    EXPECT_EQ(again->fingerprint_sha256(), c->fingerprint_sha256());
    EXPECT_EQ(i->pool().ready(), 1U);  // the second call took no key pair
    ASSERT_TRUE(i->current("NEW.customer@example.com"));
    EXPECT_EQ(i->current("new.customer@example.com")->fingerprint_sha256(), c->fingerprint_sha256());

    // The certificate, field by field.
    X509* x = c->native();
    EXPECT_EQ(c->subject(), "CN=new.customer@example.com,O=Example Bank");
    EXPECT_EQ(c->issuer(), ca_->subject());
    EXPECT_EQ(c->email_addresses(), std::vector<std::string>{"new.customer@example.com"});
    EXPECT_EQ(c->key_description(), "RSA-2048");
    EXPECT_EQ(X509_get_key_usage(x), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
    const int ku = X509_get_ext_by_NID(x, NID_key_usage, -1);
    EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(x, ku)), 1);
    EXPECT_EQ(X509_get_extended_key_usage(x), static_cast<uint32_t>(XKU_SMIME));
    const std::unique_ptr<BIGNUM, sealmilter::base::Deleter<BN_free>> serial(
        ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr));
    EXPECT_EQ(BN_num_bits(serial.get()), 128);
    ASSERT_NE(X509_get0_authority_key_id(x), nullptr);
    EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x), X509_get0_subject_key_id(ca_->native())), 0);
    EXPECT_NE(X509_get0_subject_key_id(x), nullptr);
    EXPECT_NEAR(static_cast<double>(c->not_after() - c->not_before()), 30.0 * 86400, 120);
    EXPECT_TRUE(c->encryption_unsuitability().empty()) << c->encryption_unsuitability();

    // openssl verify -purpose smimeencrypt against the root.
    const std::string leaf = *root_ + "/leaf.pem";
    sealmilter::base::write_atomically(leaf, pem_of(*c), 0600);
    const std::string cmd = "openssl verify -purpose smimeencrypt -CAfile " + options_->dir + "/ca.pem " + leaf + " >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;

    // The record and the escrowed key.
    const std::optional<keys::IssuedRecord> r = i->registry().get("new.customer@example.com", &error);
    ASSERT_TRUE(r) << error;
    EXPECT_EQ(r->state, keys::IssuedState::Escrowed);
    EXPECT_TRUE(r->notice_due);
    EXPECT_GT(r->issued_at, 0);
    std::string plain_sha = sealmilter::base::to_lower(c->fingerprint_sha256());
    plain_sha.erase(std::remove(plain_sha.begin(), plain_sha.end(), ':'), plain_sha.end());
    EXPECT_EQ(r->sha256, plain_sha);
    EXPECT_EQ(crypto::parse_certificates(r->certificate_pem).certificates.front().fingerprint_sha256(), c->fingerprint_sha256());
    auto s = store();
    const keys::KeyEntry e = s->resolve(r->key_id);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->state, keys::KeyState::Escrowed);
    EXPECT_EQ(e->sha256(), r->sha256);

    // The key the pickup hands out opens mail encrypted to the certificate.
    const std::optional<crypto::KeyMaterial> m = i->escrowed_key("new.customer@example.com", &error);
    ASSERT_TRUE(m) << error;
    EXPECT_EQ(X509_check_private_key(c->native(), m->key.get()), 1);
    ASSERT_EQ(m->chain.size(), 1U);
    EXPECT_EQ(m->chain.front().fingerprint_sha256(), ca_->fingerprint_sha256());
}

// Two messages to one new address at once, in one daemon (two threads) and in two (two Issuers
// on one keys.dir): every caller gets the same certificate, the record names it.
TEST_F(IssuerTest, ConcurrentIssuesForOneAddressGiveOneCertificate) {
    auto a = issuer(2);
    auto b = issuer(2);
    ASSERT_TRUE(a && b);
    std::vector<std::string> got(4);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t) {
        threads.emplace_back([&, t] {
            std::string error;
            const auto c = (t % 2 == 0 ? a : b)->issue("race@example.com", &error);
            got[t] = c ? c->fingerprint_sha256() : "error: " + error;
        });
    }
    for (std::thread& t : threads) t.join();
    for (const std::string& g : got) EXPECT_EQ(g, got.front());
    std::string plain = sealmilter::base::to_lower(got.front());
    plain.erase(std::remove(plain.begin(), plain.end(), ':'), plain.end());
    EXPECT_EQ(a->registry().get("race@example.com")->sha256, plain);
}

TEST_F(IssuerTest, NoKeyPairReadyIsAnErrorNotAWait) {
    auto i = issuer(0);
    ASSERT_TRUE(i);
    EXPECT_FALSE(i->ready());
    std::string error;
    EXPECT_FALSE(i->issue("waiting@example.com", &error));
    EXPECT_NE(error.find("no key pair is ready"), std::string::npos) << error;
    EXPECT_FALSE(i->registry().get("waiting@example.com"));
    error.clear();
    EXPECT_FALSE(i->issue("\"quoted\"@example.com", &error));
    EXPECT_NE(error.find("quoted"), std::string::npos) << error;
}

TEST_F(IssuerTest, PickupWithoutKeepEscrowRemovesTheKeyOnly) {
    auto i = issuer(1, false);
    ASSERT_TRUE(i);
    std::string error;
    ASSERT_TRUE(i->issue("gone@example.com", &error)) << error;
    const std::string key_id = i->registry().get("gone@example.com")->key_id;
    ASSERT_TRUE(i->escrowed_key("gone@example.com", &error)) << error;
    const std::string file = store()->resolve(key_id)->location;
    ASSERT_TRUE(fs::exists(file));
    ASSERT_TRUE(i->picked_up("gone@example.com", key_id, &error)) << error;
    const std::optional<keys::IssuedRecord> r = i->registry().get("gone@example.com");
    EXPECT_EQ(r->state, keys::IssuedState::PickedUp);
    EXPECT_EQ(r->pickups, 1U);
    EXPECT_GT(r->last_pickup_at, 0);
    EXPECT_FALSE(store()->resolve(key_id));
    EXPECT_FALSE(fs::exists(file));
    EXPECT_FALSE(i->escrowed_key("gone@example.com", &error));
    // The certificate stays the address's certificate; resend is refused by the CLI (no key).
    EXPECT_TRUE(i->current("gone@example.com"));

    // The store removes nothing but an escrowed key.
    EXPECT_FALSE(store()->remove_key(ca_->fingerprint_sha256(), &error));
    EXPECT_NE(error.find("only an escrowed key"), std::string::npos) << error;
}

TEST_F(IssuerTest, PickupWithKeepEscrowKeepsTheKeyForAnotherDownload) {
    auto i = issuer(1);
    ASSERT_TRUE(i);
    std::string error;
    ASSERT_TRUE(i->issue("kept@example.com", &error)) << error;
    const std::string key_id = i->registry().get("kept@example.com")->key_id;
    ASSERT_TRUE(i->picked_up("kept@example.com", key_id, &error)) << error;
    ASSERT_TRUE(i->picked_up("kept@example.com", key_id, &error)) << error;
    EXPECT_EQ(i->registry().get("kept@example.com")->pickups, 2U);
    EXPECT_TRUE(i->escrowed_key("kept@example.com", &error)) << error;
}

// Review of issue 13, finding 1: a pickup names the key that was packaged; when the address
// was revoked and issued anew meanwhile, the new record is not marked and its key stays.
TEST_F(IssuerTest, APickupOfAnOldKeyLeavesTheNewRecordAndKeyAlone) {
    auto i = issuer(2, false);
    ASSERT_TRUE(i);
    std::string error;
    ASSERT_TRUE(i->issue("reissued@example.com", &error)) << error;
    const std::string old_key = i->registry().get("reissued@example.com")->key_id;
    auto s = store();
    keys::IssuedRegistry reg(options_->dir);
    ASSERT_TRUE(keys::revoke_issued(*s, reg, "reissued@example.com", &error)) << error;
    ASSERT_TRUE(i->issue("reissued@example.com", &error)) << error;
    const std::string new_key = i->registry().get("reissued@example.com")->key_id;
    ASSERT_NE(old_key, new_key);
    EXPECT_FALSE(i->picked_up("reissued@example.com", old_key, &error));
    EXPECT_NE(error.find("not the one whose key was picked up"), std::string::npos) << error;
    const auto r = i->registry().get("reissued@example.com");
    EXPECT_EQ(r->state, keys::IssuedState::Escrowed);
    EXPECT_EQ(r->pickups, 0U);
    EXPECT_TRUE(i->escrowed_key("reissued@example.com", &error)) << error;
    error.clear();
    EXPECT_FALSE(i->picked_up("reissued@example.com", "", &error));
    ASSERT_TRUE(i->picked_up("reissued@example.com", new_key, &error)) << error;
    EXPECT_FALSE(i->escrowed_key("reissued@example.com", &error)) << "keep_escrow = false removed the new key";
}

TEST_F(IssuerTest, RetireRevokeAndResend) {
    auto i = issuer(4);
    ASSERT_TRUE(i);
    std::string error;
    ASSERT_TRUE(i->issue("own-cert@example.com", &error)) << error;
    ASSERT_TRUE(i->issue("revoked@example.com", &error)) << error;
    ASSERT_TRUE(i->issue("resend@example.com", &error)) << error;

    i->retire("own-cert@example.com", "their own certificate appeared");
    const auto retired = i->registry().get("own-cert@example.com");
    EXPECT_EQ(retired->state, keys::IssuedState::Retired);
    EXPECT_EQ(store()->resolve(retired->key_id)->state, keys::KeyState::Retired);  // kept: old mail opens
    EXPECT_FALSE(i->current("own-cert@example.com"));

    auto s = store();
    keys::IssuedRegistry reg(options_->dir);
    ASSERT_TRUE(keys::revoke_issued(*s, reg, "revoked@example.com", &error)) << error;
    const auto revoked = reg.get("revoked@example.com");
    EXPECT_EQ(revoked->state, keys::IssuedState::Revoked);
    EXPECT_EQ(store()->resolve(revoked->key_id)->state, keys::KeyState::Retired);
    EXPECT_FALSE(i->current("revoked@example.com"));
    EXPECT_FALSE(keys::resend_issued(reg, "revoked@example.com", &error));
    EXPECT_NE(error.find("revoked"), std::string::npos) << error;
    EXPECT_FALSE(keys::revoke_issued(*s, reg, "nobody@example.com", &error));

    ASSERT_TRUE(reg.update("resend@example.com", [](const std::optional<keys::IssuedRecord>& c) {
        keys::IssuedRecord r = *c;
        r.notice_due = false;
        r.notice_sent_at = 1700000000;
        r.locked = true;
        r.wrong_codes = 5;
        r.code_hash = keys::sha256_hex("code");
        return std::optional<keys::IssuedRecord>(r);
    }, &error));
    ASSERT_TRUE(keys::resend_issued(reg, "resend@example.com", &error)) << error;
    const auto again = reg.get("resend@example.com");
    EXPECT_TRUE(again->notice_due);
    EXPECT_EQ(again->notice_sent_at, 0);
    EXPECT_FALSE(again->locked);
    EXPECT_EQ(again->wrong_codes, 0U);
    EXPECT_TRUE(again->code_hash.empty());
    EXPECT_EQ(again->state, keys::IssuedState::Escrowed);
    EXPECT_FALSE(keys::resend_issued(reg, "nobody@example.com", &error));

    // A revoked address gets a new certificate with the next message.
    const auto fresh = i->issue("revoked@example.com", &error);
    ASSERT_TRUE(fresh) << error;
    EXPECT_NE(sealmilter::base::to_lower(fresh->fingerprint_sha256()), revoked->sha256);
}

// Review finding 12: when another Issuer (another process) wins the race for an address, the
// key the loser escrowed leaves the store again: every escrowed key of the address is the
// record's. Two issuers on one keys.dir, two threads each, several addresses: before the fix a
// lost race left an escrowed key without a record.
TEST_F(IssuerTest, ALostIssuanceRaceLeavesNoEscrowedKeyWithoutARecord) {
    auto a = issuer(3);
    auto b = issuer(3);
    ASSERT_TRUE(a && b);
    for (int n = 0; n < 3; ++n) {
        const std::string address = "lost-race-" + std::to_string(n) + "@example.com";
        std::vector<std::thread> threads;
        for (int t = 0; t < 2; ++t)
            threads.emplace_back([&, t] {
                std::string error;
                EXPECT_TRUE((t == 0 ? a : b)->issue(address, &error)) << error;
            });
        for (std::thread& t : threads) t.join();
        const std::optional<keys::IssuedRecord> r = a->registry().get(address);
        ASSERT_TRUE(r);
        size_t escrowed = 0;
        for (const keys::KeyEntry& e : store()->for_address(address)) {
            if (e->state != keys::KeyState::Escrowed) continue;
            ++escrowed;
            EXPECT_EQ(e->id, r->key_id) << address;
        }
        EXPECT_EQ(escrowed, 1U) << address;
    }
}

// Review finding 10: a revoked (or retired) issued certificate is withdrawn: the chain refuses
// it from any source (the directory it was published to), also after the address got a new one.
TEST_F(IssuerTest, RevokedAndRetiredCertificatesAreWithdrawn) {
    auto i = issuer(3);
    ASSERT_TRUE(i);
    std::string error;
    const auto first = i->issue("withdrawn@example.com", &error);
    ASSERT_TRUE(first) << error;
    EXPECT_FALSE(i->withdrawn("withdrawn@example.com", *first));
    auto s = store();
    keys::IssuedRegistry reg(options_->dir);
    ASSERT_TRUE(keys::revoke_issued(*s, reg, "withdrawn@example.com", &error)) << error;
    EXPECT_TRUE(i->withdrawn("withdrawn@example.com", *first));
    const auto second = i->issue("withdrawn@example.com", &error);  // the record now names this one
    ASSERT_TRUE(second) << error;
    EXPECT_TRUE(i->withdrawn("withdrawn@example.com", *first));
    EXPECT_FALSE(i->withdrawn("withdrawn@example.com", *second));
    i->retire("withdrawn@example.com", "their own certificate appeared");
    EXPECT_TRUE(i->withdrawn("withdrawn@example.com", *second));
    // A certificate of another CA is never ours to withdraw.
    const auto other = sealmilter::testing::make_identity({.email = "withdrawn@example.com"});
    EXPECT_FALSE(i->withdrawn("withdrawn@example.com", other.cert));
}

// Review finding 2: resend kills the old link at once (token hash, expiry and the token file),
// so clearing the lock never reopens a link that may have been guessed at.
TEST_F(IssuerTest, ResendRemovesTheOldLinkAtOnce) {
    auto i = issuer(1);
    ASSERT_TRUE(i);
    std::string error;
    ASSERT_TRUE(i->issue("old-link@example.com", &error)) << error;
    keys::IssuedRegistry reg(options_->dir);
    const std::string token_hash = keys::sha256_hex("old-token");
    ASSERT_TRUE(reg.update("old-link@example.com", [&](const std::optional<keys::IssuedRecord>& c) {
        keys::IssuedRecord r = *c;
        r.notice_due = false;
        r.notice_sent_at = 1700000000;
        r.token_hash = token_hash;
        r.token_expires = 1900000000;
        r.locked = true;
        r.wrong_codes = 5;
        return std::optional<keys::IssuedRecord>(r);
    }, &error));
    ASSERT_TRUE(reg.by_token_hash(token_hash));
    ASSERT_TRUE(keys::resend_issued(reg, "old-link@example.com", &error)) << error;
    const auto r = reg.get("old-link@example.com");
    EXPECT_TRUE(r->token_hash.empty());
    EXPECT_EQ(r->token_expires, 0);
    EXPECT_FALSE(reg.by_token_hash(token_hash));
    EXPECT_FALSE(fs::exists(options_->dir + "/issued/t-" + token_hash));
}

// Review finding 12: a key generation that keeps failing is retried after a growing back-off,
// not in a tight loop (RSA-1 always fails). Counted over half a second: a busy loop makes
// thousands of attempts; the back-off (100 ms, 200 ms, ...) at most a handful.
TEST(KeyPairPool, AFailingGenerationBacksOff) {
    keys::KeyPairPool pool(1, 2, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const unsigned long long failures = pool.failures();
    EXPECT_GE(failures, 1U);
    EXPECT_LE(failures, 10U);
    EXPECT_EQ(pool.ready(), 0U);
}

TEST(KeyPairPool, FillsToItsTargetAndTakeNeverWaits) {
    keys::KeyPairPool empty(2048, 4, 0);
    EXPECT_EQ(empty.take(), nullptr);
    EXPECT_EQ(empty.ready(), 0U);

    keys::KeyPairPool pool(2048, 2, 1);
    for (int i = 0; i < 600 && pool.ready() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_EQ(pool.ready(), 2U);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(pool.ready(), 2U);  // never beyond the target
    crypto::EVP_PKEY_ptr k = pool.take();
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(EVP_PKEY_get_bits(k.get()), 2048);
    for (int i = 0; i < 600 && pool.ready() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(pool.ready(), 2U);  // refilled
    EXPECT_GE(pool.generated(), 3U);
}

// `ca import`: a sub-CA of the organisation's PKI issues; the chain verifies to its root.
TEST(ImportCa, ASubCaIssuesAndNonCasAreRefused) {
    char tmpl[] = "/tmp/sealmilter-subca-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string root = tmpl;
    keys::StoreOptions o;
    o.dir = root + "/keys";
    o.master_key_file = root + "/master.key";
    std::string error;
    ASSERT_TRUE(keys::create_master_key_file(o.master_key_file, &error)) << error;
    auto store = keys::KeyStore::open(o, &error);
    ASSERT_TRUE(store) << error;

    crypto::EVP_PKEY_ptr root_key = crypto::generate_rsa_key(2048);
    const crypto::Certificate root_cert =
        crypto::CertificateBuilder().common_name("Org Root").public_key(root_key.get()).basic_constraints(true)
            .key_usage(crypto::kKeyCertSign | crypto::kCrlSign).subject_key_identifier().build();
    crypto::EVP_PKEY_ptr leafish = crypto::generate_rsa_key(2048);
    const crypto::Certificate not_ca = crypto::CertificateBuilder().common_name("Not a CA").public_key(leafish.get())
                                           .issuer(root_cert, root_key.get()).basic_constraints(false).build();
    EXPECT_FALSE(keys::import_ca(*store, crypto::KeyMaterial{std::move(leafish), not_ca, {}}, &error));
    EXPECT_NE(error.find("not a CA"), std::string::npos) << error;

    crypto::EVP_PKEY_ptr sub_key = crypto::generate_rsa_key(2048);
    const crypto::Certificate sub = crypto::CertificateBuilder().common_name("Org Mail Sub-CA").public_key(sub_key.get())
                                        .issuer(root_cert, root_key.get()).basic_constraints(true, 0)
                                        .key_usage(crypto::kKeyCertSign).subject_key_identifier()
                                        .authority_key_identifier().build();
    ASSERT_TRUE(keys::import_ca(*store, crypto::KeyMaterial{std::move(sub_key), sub, {root_cert}}, &error)) << error;

    keys::IssueSettings s;
    s.pool_threads = 0;
    auto issuer = keys::Issuer::open(store, std::make_shared<keys::IssuedRegistry>(o.dir), s, &error);
    ASSERT_TRUE(issuer) << error;
    issuer->pool().put(crypto::generate_rsa_key(2048));
    const auto c = issuer->issue("sub@example.com", &error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->issuer(), "CN=Org Mail Sub-CA");
    const auto m = issuer->escrowed_key("sub@example.com", &error);
    ASSERT_TRUE(m) << error;
    ASSERT_EQ(m->chain.size(), 2U);  // the sub-CA, then the root
    EXPECT_EQ(m->chain[1].fingerprint_sha256(), root_cert.fingerprint_sha256());

    sealmilter::base::write_atomically(root + "/leaf.pem", pem_of(*c), 0600);
    sealmilter::base::write_atomically(root + "/root.pem", pem_of(root_cert), 0600);
    const std::string cmd = "openssl verify -purpose smimeencrypt -CAfile " + root + "/root.pem -untrusted " + o.dir +
                            "/ca.pem " + root + "/leaf.pem >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    fs::remove_all(root);
}

}  // namespace

// keys::KeyRing: the index finds a key by the envelope's RecipientIdentifier (issuer+serial
// and subjectKeyIdentifier), never by trying keys; core::decrypt_message with a ring opens the
// NSS corpus with Bob's key and names the identifiers no key matches.
#include "keys/key_ring.hpp"

#include "base/file.hpp"
#include "core/decrypt.hpp"
#include "crypto/envelope.hpp"
#include "tests/support/messages.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
using sealmilter::testing::make_identity;

namespace {

const std::string kNss = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";

crypto::KeyMaterial load(const std::string& file) {
    crypto::KeyLoad l = crypto::load_key_material(kNss + file, "nss");
    if (!l.material) throw std::runtime_error(file + ": " + l.error);
    return std::move(*l.material);
}

core::RingDecryptOutcome decrypt(const std::string& raw, const keys::KeyRing& ring, crypto::StringSink& out) {
    return core::decrypt_message(*sealmilter::testing::parse_message(raw), ring, "\n", out);
}

std::string envelope_der(const std::vector<crypto::Certificate>& to, const std::string& content) {
    crypto::StringSink der;
    crypto::EnvelopeWriter w(to, {}, der);
    w.write(content.data(), content.size());
    w.finish();
    return der.out;
}

}  // namespace

TEST(RecipientId, EnvelopeAndCertificateAgreeOnTheIndexKey) {
    for (const char* kind : {"rsa2048", "ec-p256"}) {
        const auto id = make_identity({.email = "team@bank.example", .key = kind});
        std::vector<crypto::RecipientId> ids;
        ASSERT_EQ(crypto::inspect_envelope(envelope_der({id.cert}, "x"), ids).status, crypto::DecryptStatus::Ok);
        ASSERT_FALSE(ids.empty()) << kind;
        std::vector<std::string> cert_keys;
        for (const auto& c : crypto::certificate_ids(id.cert)) cert_keys.push_back(c.index_key());
        for (const auto& e : ids) {
            EXPECT_NE(std::find(cert_keys.begin(), cert_keys.end(), e.index_key()), cert_keys.end())
                << kind << ": " << e.describe();
        }
    }
}

TEST(RecipientId, NotAnEnvelopeIsSaidSo) {
    std::vector<crypto::RecipientId> ids;
    EXPECT_EQ(crypto::inspect_envelope("garbage", ids).status, crypto::DecryptStatus::NotCms);
    EXPECT_TRUE(ids.empty());
}

TEST(KeyRing, NssCorpusOpensThroughTheRingWithBobsKey) {
    keys::MemoryKeyRing ring;
    ASSERT_TRUE(ring.add(load("Bob.p12"), kNss + "Bob.p12"));
    ASSERT_TRUE(ring.add(load("Dave.p12"), kNss + "Dave.p12"));
    int opened = 0;
    for (const auto& entry : std::filesystem::directory_iterator(kNss)) {
        const std::string name = entry.path().filename().string();
        if (name != "alice.env.eml") continue;
        crypto::StringSink out;
        const core::RingDecryptOutcome r = decrypt(sealmilter::base::read_file(entry.path().string()), ring, out);
        ASSERT_EQ(r.outcome.status, crypto::DecryptStatus::Ok) << name << ": " << r.outcome.detail;
        ASSERT_TRUE(r.key);
        EXPECT_NE(r.key->addresses.end(), std::find(r.key->addresses.begin(), r.key->addresses.end(), "bob@example.com"));
        EXPECT_NE(out.out.find("\n\nThis is a test message from Alice to Bob."), std::string::npos) << out.out;
        ++opened;
    }
    EXPECT_EQ(opened, 1);
}

TEST(KeyRing, NoKeyNamesTheEnvelopesIdentifiers) {
    keys::MemoryKeyRing ring;
    ASSERT_TRUE(ring.add(load("Dave.p12"), "dave"));
    crypto::StringSink out;
    const core::RingDecryptOutcome r =
        decrypt(sealmilter::base::read_file(kNss + "alice.env.eml"), ring, out);
    EXPECT_EQ(r.outcome.status, crypto::DecryptStatus::NoMatchingRecipient);
    ASSERT_FALSE(r.unmatched.empty());
    EXPECT_NE(r.outcome.detail.find("serial="), std::string::npos) << r.outcome.detail;
    EXPECT_TRUE(out.out.empty());
}

TEST(KeyRing, RetiredByExpiryAndNewestActiveSigns) {
    keys::MemoryKeyRing ring;
    const auto old_id = make_identity({.email = "Staff@Bank.Example", .days_valid = 1, .serial = 11});
    const auto new_id = make_identity({.email = "staff@bank.example", .days_valid = 365, .serial = 12});
    ASSERT_TRUE(ring.add(old_id.material(), "k1"));
    ASSERT_TRUE(ring.add(new_id.material(), "k2"));
    EXPECT_EQ(ring.size(), 2u);
    EXPECT_EQ(ring.for_address("STAFF@bank.example").size(), 2u);
    const std::time_t later = old_id.cert.not_after() + 60;  // K1 expired, K2 still valid
    ring.for_each([&](const keys::KeyEntry& e) {
        const bool is_old = e->certificate.fingerprint_sha256() == old_id.cert.fingerprint_sha256();
        EXPECT_EQ(keys::effective_state(*e, later), is_old ? keys::KeyState::Retired : keys::KeyState::Active);
    });
    const keys::KeyEntry signer = keys::active_key_for(ring, "staff@bank.example", later);
    ASSERT_TRUE(signer);
    EXPECT_EQ(signer->certificate.fingerprint_sha256(), new_id.cert.fingerprint_sha256());

    // Mail encrypted to K1 before it expired still opens after: decryption ignores the state.
    const std::string raw = "From: p@partner.example\r\nTo: staff@bank.example\r\nContent-Type: application/pkcs7-mime;"
                            " smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    crypto::StringSink b64;
    crypto::Base64LineWriter w(b64, "\r\n");
    const std::string der = envelope_der({old_id.cert}, "Content-Type: text/plain\r\n\r\nold\r\n");
    w.write(der.data(), der.size());
    w.finish();
    crypto::StringSink out;
    const core::RingDecryptOutcome r = decrypt(raw + b64.out, ring, out);
    ASSERT_EQ(r.outcome.status, crypto::DecryptStatus::Ok) << r.outcome.detail;
    EXPECT_EQ(r.key->certificate.fingerprint_sha256(), old_id.cert.fingerprint_sha256());
    EXPECT_NE(out.out.find("\nold\n"), std::string::npos) << out.out;
}

TEST(KeyRing, KeyWithoutCertificateIsRefused) {
    keys::MemoryKeyRing ring;
    crypto::KeyMaterial m;
    m.key = std::move(make_identity({}).key);
    EXPECT_FALSE(ring.add(std::move(m), "x"));
    EXPECT_EQ(ring.size(), 0u);
}

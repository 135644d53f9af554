// keys::KeyStore: the on-disk store under a master key. The NSS corpus opens through Bob's
// imported key; a key history keeps old mail open while the new key signs; nothing private is
// on disk in the clear; a wrong or badly kept master key is refused; a killed import leaves the
// store consistent; rewrap moves every key to a new master key; PKCS#12 histories round-trip.
#include "keys/store.hpp"

#include "base/ascii.hpp"
#include "base/encoding.hpp"
#include "base/file.hpp"
#include "core/decrypt.hpp"
#include "crypto/base64.hpp"
#include "crypto/envelope.hpp"
#include "crypto/pkcs12.hpp"
#include "crypto/recipient_id.hpp"
#include "keys/wrap.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/core_names.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <utility>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
namespace fs = std::filesystem;
using sealmilter::testing::make_identity;

namespace {

const std::string kNss = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";

class FixedClock final : public sealmilter::base::Clock {
public:
    std::time_t now() const override { return t; }
    std::time_t t = std::time(nullptr);
};

// A fresh keys.dir and master key under a per-test temp directory, removed afterwards.
class StoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sealmilter-keys-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root_ = tmpl;
        options_.dir = root_ + "/keys";
        options_.master_key_file = root_ + "/master.key";
        options_.clock = &clock_;
        std::string error;
        ASSERT_TRUE(keys::create_master_key_file(options_.master_key_file, &error)) << error;
    }
    void TearDown() override { fs::remove_all(root_); }

    std::shared_ptr<keys::KeyStore> open(const keys::StoreOptions& o) {
        std::string error;
        auto s = keys::KeyStore::open(o, &error);
        EXPECT_TRUE(s) << error;
        return s;
    }
    std::shared_ptr<keys::KeyStore> open() { return open(options_); }

    std::vector<crypto::KeyMaterial> p12(const std::string& name) {
        crypto::Pkcs12Read r = crypto::read_pkcs12_all(sealmilter::base::read_file(kNss + name), "nss");
        EXPECT_TRUE(r.error.empty()) << r.error;
        return std::move(r.keys);
    }

    std::string root_;
    keys::StoreOptions options_;
    FixedClock clock_;
};

core::RingDecryptOutcome decrypt(const std::string& raw, const keys::KeyRing& ring, crypto::StringSink& out) {
    core::Message m;
    core::MessageSplitter splitter(m);
    splitter.feed(raw.data(), raw.size());
    splitter.finish();
    return core::decrypt_message(m, ring, "\n", out);
}

std::string smime_to(const std::vector<crypto::Certificate>& to, const std::string& inner) {
    crypto::StringSink der;
    crypto::EnvelopeWriter w(to, {}, der);
    w.write(inner.data(), inner.size());
    w.finish();
    crypto::StringSink b64;
    crypto::Base64LineWriter bw(b64, "\r\n");
    bw.write(der.out.data(), der.out.size());
    bw.finish();
    return "From: p@partner.example\r\nTo: staff@bank.example\r\nContent-Type: application/pkcs7-mime;"
           " smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64.out;
}

std::string normalized(std::string s) {
    std::string out;
    for (const char c : s)
        if (c != '\r') out += c;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

using sealmilter::testing::der_of_private;
using sealmilter::testing::private_component;

std::string all_files(const std::string& dir) {
    std::string all;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) all += sealmilter::base::read_file(e.path().string()) + "\n";
    return all;
}

}  // namespace

TEST_F(StoreTest, NssCorpusOpensThroughTheStoreWithBobsImportedKey) {
    {
        auto s = open();
        std::string error;
        const auto r = s->import_keys(p12("Bob.p12"), &error);
        ASSERT_TRUE(r) << error;
        EXPECT_EQ(r->added.size(), 1u);
    }
    const auto store = open();  // from disk
    ASSERT_EQ(store->size(), 1u);
    const std::string mime = normalized(sealmilter::base::read_file(kNss + "alice.mime"));
    const std::string text = normalized(sealmilter::base::read_file(kNss + "alice.textplain"));
    int opened = 0;
    for (const auto& entry : fs::directory_iterator(kNss)) {
        const std::string name = entry.path().filename().string();
        const bool env_last = name.size() > 8 && name.compare(name.size() - 8, 8, ".env.eml") == 0;
        if (name.rfind("alice.", 0) != 0 || !env_last) continue;
        crypto::StringSink out;
        const core::RingDecryptOutcome r = decrypt(sealmilter::base::read_file(entry.path().string()), *store, out);
        ASSERT_EQ(r.outcome.status, crypto::DecryptStatus::Ok) << name << ": " << r.outcome.detail;
        ASSERT_TRUE(r.key);
        EXPECT_EQ(r.key->addresses, std::vector<std::string>{"bob@example.com"});
        const std::string got = normalized(out.out);
        if (name == "alice.env.eml") {
            // The decrypted entity is alice.mime (its header fields and body), after the outer fields.
            EXPECT_NE(got.find(mime), std::string::npos) << got;
        } else {
            // alice.<signed>.env.eml: the decrypted message is the signed inner message, whose
            // content is alice.textplain.
            const std::string inner_name = name.substr(0, name.size() - 8) + ".eml";
            EXPECT_NE(got.find("Content-Type: "), std::string::npos);
            EXPECT_TRUE(got.find(text) != std::string::npos || got.find("application/pkcs7-mime") != std::string::npos ||
                        got.find("multipart/signed") != std::string::npos)
                << name << " (inner " << inner_name << "): " << got.substr(0, 400);
        }
        ++opened;
    }
    EXPECT_EQ(opened, 13);  // alice.env.eml + 4 dsig + 4 sig + 4 html.sig
}

TEST_F(StoreTest, KeyHistoryOldMailOpensWithTheRetiredKeyAndTheNewKeySigns) {
    const auto k1 = make_identity({.email = "staff@bank.example", .days_valid = 1, .serial = 101});
    const auto k2 = make_identity({.email = "staff@bank.example", .days_valid = 365, .serial = 102});
    std::string error;
    ASSERT_TRUE(open()->import_keys([&] { std::vector<crypto::KeyMaterial> v; v.push_back(k1.material()); return v; }(), &error)) << error;
    const std::string old_mail = smime_to({k1.cert}, "Content-Type: text/plain\r\n\r\nsent to K1\r\n");
    ASSERT_TRUE(open()->import_keys([&] { std::vector<crypto::KeyMaterial> v; v.push_back(k2.material()); return v; }(), &error)) << error;

    clock_.t = k1.cert.not_after() + 3600;  // K1 has expired, K2 has not
    const auto store = open();
    ASSERT_EQ(store->size(), 2u);
    const keys::KeyEntry e1 = store->resolve(k1.cert.fingerprint_sha256());  // with colons
    ASSERT_TRUE(e1);
    EXPECT_EQ(e1->state, keys::KeyState::Active);  // never rewritten by the store itself
    EXPECT_EQ(keys::effective_state(*e1, store->now()), keys::KeyState::Retired);
    const keys::KeyEntry signer = keys::active_key_for(*store, "STAFF@bank.example", store->now());
    ASSERT_TRUE(signer);
    EXPECT_EQ(signer->certificate.fingerprint_sha256(), k2.cert.fingerprint_sha256());
    crypto::StringSink out;
    const core::RingDecryptOutcome r = decrypt(old_mail, *store, out);
    ASSERT_EQ(r.outcome.status, crypto::DecryptStatus::Ok) << r.outcome.detail;
    EXPECT_EQ(r.key->id, e1->id);
    EXPECT_NE(out.out.find("\nsent to K1"), std::string::npos);

    // Retire K2 and mark K1 compromised: nothing signs any more, old mail still opens.
    ASSERT_TRUE(store->set_state(signer->id, keys::KeyState::Retired, &error)) << error;
    ASSERT_TRUE(store->set_state(e1->sha256(), keys::KeyState::Compromised, &error)) << error;
    const auto again = open();
    EXPECT_FALSE(keys::active_key_for(*again, "staff@bank.example", again->now()));
    EXPECT_EQ(again->resolve(e1->id)->state, keys::KeyState::Compromised);
    crypto::StringSink out2;
    EXPECT_EQ(decrypt(old_mail, *again, out2).outcome.status, crypto::DecryptStatus::Ok);
    EXPECT_EQ(again->size(), 2u);  // states change, keys stay
}

TEST_F(StoreTest, NothingPrivateIsOnDiskInTheClear) {
    const auto rsa = make_identity({.email = "rsa@bank.example", .key = "rsa2048"});
    const auto ec = make_identity({.email = "ec@bank.example", .key = "ec-p256"});
    std::vector<crypto::KeyMaterial> v;
    v.push_back(rsa.material());
    v.push_back(ec.material());
    std::string error;
    ASSERT_TRUE(open()->import_keys(std::move(v), &error)) << error;
    const std::string disk = all_files(options_.dir);
    ASSERT_NE(disk.find("BEGIN CERTIFICATE"), std::string::npos);  // the files were read
    EXPECT_EQ(disk.find("PRIVATE KEY"), std::string::npos);
    for (EVP_PKEY* k : {rsa.key.get(), ec.key.get()}) {
        const std::string der = der_of_private(k);
        const std::string component = private_component(k);
        ASSERT_FALSE(component.empty());
        EXPECT_EQ(disk.find(der), std::string::npos);
        EXPECT_EQ(disk.find(component), std::string::npos);
        EXPECT_EQ(disk.find(sealmilter::base::to_hex(component)), std::string::npos);
    }
    for (const auto& e : fs::directory_iterator(options_.dir)) {
        struct stat st {};
        ASSERT_EQ(stat(e.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 077, 0u) << e.path();
    }
    // And every key comes back whole from its wrapped form.
    const auto store = open();
    store->for_each([&](const keys::KeyEntry& e) {
        std::string why;
        const keys::PrivateKey k = store->private_key(*e, &why);
        ASSERT_TRUE(k) << why;
        EXPECT_EQ(X509_check_private_key(e->certificate.native(), k->key.get()), 1);
    });
}

TEST_F(StoreTest, BadMasterKeysAreRefusedWithAClearReason) {
    std::string error;
    ASSERT_TRUE(open()->import_keys(p12("Bob.p12"), &error)) << error;
    struct Row {
        const char* name;
        std::string content;
        mode_t mode;
        const char* reason;
    };
    const std::vector<Row> rows = {
        {"other", std::string(64, 'a') + "\n", 0600, "does not open the key store"},
        {"short", std::string(62, 'a') + "\n", 0600, "malformed"},
        {"nonhex", std::string(63, 'a') + "g", 0600, "malformed"},
        {"twolines", std::string(64, 'a') + "\n\n", 0600, "malformed"},
        {"groupread", std::string(64, 'a'), 0640, "chmod 0600"},
        {"worldread", std::string(64, 'a'), 0604, "chmod 0600"},
    };
    for (const Row& row : rows) {
        const std::string path = root_ + "/" + row.name;
        sealmilter::base::write_atomically(path, row.content, 0600);
        ASSERT_EQ(chmod(path.c_str(), row.mode), 0);
        keys::StoreOptions o = options_;
        o.master_key_file = path;
        error.clear();
        EXPECT_FALSE(keys::KeyStore::open(o, &error)) << row.name;
        EXPECT_NE(error.find(row.reason), std::string::npos) << row.name << ": " << error;
    }
    keys::StoreOptions missing = options_;
    missing.master_key_file = root_ + "/absent";
    EXPECT_FALSE(keys::KeyStore::open(missing, &error));
    EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
    // new-master-key never overwrites.
    EXPECT_FALSE(keys::create_master_key_file(options_.master_key_file, &error));
    EXPECT_NE(error.find("already exists"), std::string::npos) << error;
}

TEST_F(StoreTest, AFailureBetweenKeyFilesAndIndexLeavesTheStoreAsItWas) {
    std::string error;
    ASSERT_TRUE(open()->import_keys(p12("Bob.p12"), &error)) << error;
    const std::string index_before = sealmilter::base::read_file(options_.dir + "/index");
    auto store = open();
    store->set_before_index_hook([] { throw std::runtime_error("injected crash before the index rename"); });
    EXPECT_FALSE(store->import_keys(p12("Dave.p12"), &error));
    EXPECT_NE(error.find("injected"), std::string::npos) << error;
    EXPECT_EQ(sealmilter::base::read_file(options_.dir + "/index"), index_before);
    const auto reopened = open();
    EXPECT_EQ(reopened->size(), 1u);
    // The next import completes normally.
    ASSERT_TRUE(reopened->import_keys(p12("Dave.p12"), &error)) << error;
    EXPECT_EQ(open()->size(), 2u);
}

TEST_F(StoreTest, AnImportKilledAtAnyPointLeavesTheStoreConsistent) {
    std::string error;
    ASSERT_TRUE(open()->import_keys(p12("Bob.p12"), &error)) << error;
    constexpr int kRounds = 14;
    constexpr size_t kBatch = 40;
    // Minted before the forks, so the kill lands in the import itself (distinct keys per round).
    std::vector<std::vector<crypto::KeyMaterial>> batches(kRounds);
    for (int round = 0; round < kRounds; ++round)
        for (size_t i = 0; i < kBatch; ++i)
            batches[static_cast<size_t>(round)].push_back(
                make_identity({.email = "k" + std::to_string(round) + "-" + std::to_string(i) + "@bank.example", .key = "ec-p256"})
                    .material());
    int completed = 0;
    useconds_t delay = 1000, next = 2000;  // 1, 2, 3, 5, 8, ... 610 ms: the last ones outlast the import
    for (int round = 0; round < kRounds; ++round) {  // bounded: 14 kill points over the import
        const pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            std::string e;
            auto s = keys::KeyStore::open(options_, &e);
            _exit(s && s->import_keys(std::move(batches[static_cast<size_t>(round)]), &e) ? 0 : 1);
        }
        usleep(delay);
        delay = std::exchange(next, next + delay);
        kill(child, SIGKILL);
        int status = 0;
        ASSERT_EQ(waitpid(child, &status, 0), child);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ++completed;
        // Whatever the kill point: the store opens, holds whole batches only, and every key
        // it names unwraps.
        const auto s = open();
        ASSERT_TRUE(s);
        EXPECT_EQ(s->size() % kBatch, 1u) << s->size();
        EXPECT_GE(s->size(), 1u + kBatch * static_cast<size_t>(completed));
        s->for_each([&](const keys::KeyEntry& e) {
            std::string why;
            EXPECT_TRUE(s->private_key(*e, &why)) << e->id << ": " << why;
        });
    }
    std::cout << "killed imports: " << kRounds - completed << " of " << kRounds << " killed before they finished\n";
}

TEST_F(StoreTest, RewrapMovesEveryKeyToTheNewMasterKey) {
    std::string error;
    std::vector<crypto::KeyMaterial> v = p12("Bob.p12");
    for (crypto::KeyMaterial& m : p12("Dave.p12")) v.push_back(std::move(m));
    ASSERT_TRUE(open()->import_keys(std::move(v), &error)) << error;
    const std::string fresh = root_ + "/master2.key";
    ASSERT_TRUE(keys::create_master_key_file(fresh, &error)) << error;
    const std::optional<keys::MasterKey> key2 = keys::read_master_key(fresh, &error);
    ASSERT_TRUE(key2) << error;
    ASSERT_TRUE(open()->rewrap(*key2, &error)) << error;

    EXPECT_FALSE(keys::KeyStore::open(options_, &error));  // the old key no longer opens it
    EXPECT_NE(error.find("does not open"), std::string::npos) << error;
    keys::StoreOptions o = options_;
    o.master_key_file = fresh;
    const auto store = open(o);
    ASSERT_EQ(store->size(), 2u);
    crypto::StringSink out;
    EXPECT_EQ(decrypt(sealmilter::base::read_file(kNss + "alice.env.eml"), *store, out).outcome.status,
              crypto::DecryptStatus::Ok);
    size_t key_files = 0;
    for (const auto& e : fs::directory_iterator(options_.dir)) key_files += e.path().extension() == ".key" ? 1 : 0;
    EXPECT_EQ(key_files, 2u);  // generation 1 removed once generation 2 was in the index
}

TEST_F(StoreTest, AWrappedKeyMovedToAnotherEntryDoesNotOpen) {
    const auto master = keys::read_master_key(options_.master_key_file, nullptr);
    ASSERT_TRUE(master);
    const std::string w = keys::wrap(*master, "secret", "entry-a");
    EXPECT_EQ(keys::unwrap(*master, w, "entry-a"), std::optional<std::string>("secret"));
    EXPECT_FALSE(keys::unwrap(*master, w, "entry-b"));
    std::string damaged = w;
    damaged[damaged.size() / 2] ^= 1;
    EXPECT_FALSE(keys::unwrap(*master, damaged, "entry-a"));
}

TEST_F(StoreTest, Pkcs12HistoryRoundTripsEveryKey) {
    const auto k1 = make_identity({.email = "staff@bank.example", .serial = 201});
    const auto k2 = make_identity({.email = "staff@bank.example", .key = "ec-p256", .serial = 202});
    const crypto::KeyMaterial m1 = k1.material();
    const crypto::KeyMaterial m2 = k2.material();
    const std::string der = crypto::write_pkcs12_all({&m1, &m2}, "pw");
    crypto::Pkcs12Read r = crypto::read_pkcs12_all(der, "pw");
    ASSERT_TRUE(r.error.empty()) << r.error;
    ASSERT_EQ(r.keys.size(), 2u);
    for (const crypto::KeyMaterial& m : r.keys) {
        ASSERT_TRUE(m.certificate);
        EXPECT_EQ(X509_check_private_key(m.certificate->native(), m.key.get()), 1);
    }
    EXPECT_FALSE(crypto::read_pkcs12_all(der, "wrong").error.empty());
}

// The index records what lookups need (identifiers, addresses, validity, fingerprint): a store
// opened from disk answers them from the index, and its certificates are held as DER until an
// entry is used.
TEST_F(StoreTest, TheIndexAnswersLookupsWithoutParsingCertificates) {
    std::string error;
    ASSERT_TRUE(open()->import_keys(p12("Bob.p12"), &error)) << error;
    const std::vector<crypto::KeyMaterial> bob = p12("Bob.p12");
    const crypto::Certificate& cert = *bob.front().certificate;
    const auto store = open();
    ASSERT_EQ(store->size(), 1u);
    const keys::KeyEntry e = store->for_address("Bob@Example.com").front();
    std::string want_sha = cert.fingerprint_sha256();
    want_sha.erase(std::remove(want_sha.begin(), want_sha.end(), ':'), want_sha.end());
    EXPECT_EQ(e->recorded_sha256, sealmilter::base::to_lower(want_sha));
    EXPECT_EQ(e->recorded_not_before, cert.not_before());
    EXPECT_EQ(e->recorded_not_after, cert.not_after());
    std::vector<std::string> want_keys;
    for (const crypto::RecipientId& id : crypto::certificate_ids(cert)) want_keys.push_back(id.index_key());
    EXPECT_EQ(e->index_keys, want_keys);
    for (const crypto::RecipientId& id : crypto::certificate_ids(cert)) EXPECT_EQ(store->find(id).size(), 1u);
    // The lazily held certificate is the same certificate once used.
    EXPECT_EQ(e->certificate.der(), cert.der());
    EXPECT_EQ(e->certificate.subject(), cert.subject());
    EXPECT_EQ(store->resolve(want_sha)->id, e->id);
}

// A store written before the lazy index ("sealmilter-keys 1": no recorded fields) still opens,
// and the next write stores the new form with the same keys.
TEST_F(StoreTest, AnIndexOfTheFirstFormOpensAndIsRewrittenInTheNewForm) {
    std::string error;
    ASSERT_TRUE(open()->import_keys(p12("Bob.p12"), &error)) << error;
    const std::string index = sealmilter::base::read_file(options_.dir + "/index");
    ASSERT_EQ(index.rfind("sealmilter-keys 2\n", 0), 0u);
    // Version 1: "key ID STATE ORIGIN FILE URI CERT CHAIN".
    std::istringstream in(index);
    std::string line;
    std::string v1;
    while (std::getline(in, line)) {
        if (line == "sealmilter-keys 2") line = "sealmilter-keys 1";
        if (line.rfind("key ", 0) == 0) {
            std::istringstream f(line);
            std::vector<std::string> w;
            for (std::string x; f >> x;) w.push_back(x);
            ASSERT_EQ(w.size(), 13u) << line;
            line = w[0] + " " + w[1] + " " + w[2] + " " + w[3] + " " + w[4] + " " + w[5] + " " + w[11] + " " + w[12];
        }
        v1 += line + "\n";
    }
    sealmilter::base::write_atomically(options_.dir + "/index", v1, 0600);
    {
        const auto old = open();
        ASSERT_TRUE(old);
        ASSERT_EQ(old->size(), 1u);
        EXPECT_EQ(old->for_address("bob@example.com").size(), 1u);
        crypto::StringSink out;
        EXPECT_EQ(decrypt(sealmilter::base::read_file(kNss + "alice.env.eml"), *old, out).outcome.status,
                  crypto::DecryptStatus::Ok);
        // A write (here: the next import) stores version 2.
        ASSERT_TRUE(old->import_keys(p12("Dave.p12"), &error)) << error;
    }
    EXPECT_EQ(sealmilter::base::read_file(options_.dir + "/index").rfind("sealmilter-keys 2\n", 0), 0u);
    const auto now = open();
    ASSERT_EQ(now->size(), 2u);
    crypto::StringSink out;
    EXPECT_EQ(decrypt(sealmilter::base::read_file(kNss + "alice.env.eml"), *now, out).outcome.status,
              crypto::DecryptStatus::Ok);
}

// A certificate damaged in the index is found at open (its bytes no longer hash to the
// recorded fingerprint), not at its first use.
TEST_F(StoreTest, ACertificateDamagedInTheIndexIsRefusedAtOpen) {
    std::string error;
    ASSERT_TRUE(open()->import_keys(p12("Bob.p12"), &error)) << error;
    std::string index = sealmilter::base::read_file(options_.dir + "/index");
    const size_t key_line = index.find("\nkey ");
    ASSERT_NE(key_line, std::string::npos);
    // The certificate column is the 12th field; flip a base64 character in its middle.
    size_t at = key_line + 1;
    for (int field = 0; field < 11; ++field) at = index.find(' ', at) + 1;
    at += 200;
    index[at] = index[at] == 'A' ? 'B' : 'A';
    sealmilter::base::write_atomically(options_.dir + "/index", index, 0600);
    EXPECT_FALSE(keys::KeyStore::open(options_, &error));
    EXPECT_NE(error.find("is damaged"), std::string::npos) << error;
}

TEST(LazyCertificate, ParsesOnFirstUseAndSharesWithCopies) {
    const auto id = make_identity({.email = "lazy@bank.example", .serial = 77});
    const std::vector<unsigned char> der = id.cert.der();
    const crypto::Certificate lazy = crypto::Certificate::from_der_lazily(std::string(der.begin(), der.end()));
    const crypto::Certificate copy = lazy;  // before the parse
    EXPECT_EQ(lazy.der(), der);             // no parse needed
    EXPECT_EQ(copy.subject(), id.cert.subject());
    EXPECT_EQ(copy.native(), lazy.native());  // one parse, shared
    EXPECT_EQ(lazy.email_addresses(), std::vector<std::string>{"lazy@bank.example"});
    const crypto::Certificate broken = crypto::Certificate::from_der_lazily("not a certificate");
    EXPECT_THROW((void)broken.subject(), crypto::CryptoError);
}

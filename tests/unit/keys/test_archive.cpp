// core::open_maildir / open_mbox: an archive of 1,000 messages encrypted over time to K1, K2
// (K1 retired by then) and a key the store does not have, plus plain mail: exact counts, every
// opened message equals its original, the others are copied unchanged, the input is untouched.
#include "core/archive.hpp"

#include "base/file.hpp"
#include "crypto/base64.hpp"
#include "crypto/envelope.hpp"
#include "keys/store.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
namespace fs = std::filesystem;
using sealmilter::base::read_file;
using sealmilter::testing::make_identity;

namespace {

std::string original(int n) {
    return "From: partner@partner.example\nTo: staff@bank.example\nSubject: message " + std::to_string(n) +
           "\nContent-Type: text/plain; charset=us-ascii\n\nbody of message " + std::to_string(n) + "\nFrom the archive\n";
}

std::string encrypted(int n, const crypto::Certificate& to) {
    const std::string inner = "Content-Type: text/plain; charset=us-ascii\r\n\r\nbody of message " + std::to_string(n) +
                              "\r\nFrom the archive\r\n";
    crypto::StringSink der;
    crypto::EnvelopeWriter w({to}, {}, der);
    w.write(inner.data(), inner.size());
    w.finish();
    crypto::StringSink b64;
    crypto::Base64LineWriter bw(b64, "\n");
    bw.write(der.out.data(), der.out.size());
    bw.finish();
    return "From: partner@partner.example\nTo: staff@bank.example\nSubject: message " + std::to_string(n) +
           "\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\n"
           "Content-Transfer-Encoding: base64\n\n" + b64.out;
}

// A test fixture file: no fsync (1,000 of them would dominate the test's time).
void write_plain(const std::string& path, const std::string& text) {
    std::ofstream o(path, std::ios::binary);
    o << text;
}

// mboxrd quoting as an MTA delivers it: a line starting with ">*From " gains one ">".
std::string mboxed(const std::string& m) {
    std::string out;
    size_t at = 0;
    while (at < m.size()) {
        const size_t q = m.find_first_not_of('>', at);
        if (q != std::string::npos && m.compare(q, 5, "From ") == 0) out += '>';
        const size_t nl = m.find('\n', at);
        const size_t end = nl == std::string::npos ? m.size() : nl + 1;
        out.append(m, at, end - at);
        at = end;
    }
    return out;
}

class ArchiveTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sealmilter-archive-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root_ = tmpl;
        options_.dir = root_ + "/keys";
        options_.master_key_file = root_ + "/master.key";
        std::string error;
        ASSERT_TRUE(keys::create_master_key_file(options_.master_key_file, &error)) << error;
        auto store = keys::KeyStore::open(options_, &error);
        ASSERT_TRUE(store) << error;
        std::vector<crypto::KeyMaterial> v;
        v.push_back(k1_.material());
        v.push_back(k2_.material());
        ASSERT_TRUE(store->import_keys(std::move(v), &error)) << error;
        ASSERT_TRUE(store->set_state(store->for_address("staff@bank.example").back()->id, keys::KeyState::Retired, &error));
    }
    void TearDown() override { fs::remove_all(root_); }

    // Message n: K1 for n % 20 < 8, K2 for < 16, the unknown key for < 19, plain otherwise.
    std::string message(int n) const {
        const int k = n % 20;
        if (k < 8) return encrypted(n, k1_.cert);
        if (k < 16) return encrypted(n, k2_.cert);
        if (k < 19) return encrypted(n, unknown_.cert);
        return original(n);
    }

    std::string root_;
    keys::StoreOptions options_;
    sealmilter::testing::TestIdentity k1_ = make_identity({.email = "staff@bank.example", .key = "ec-p256", .serial = 301});
    sealmilter::testing::TestIdentity k2_ = make_identity({.email = "staff@bank.example", .key = "ec-p256", .serial = 302});
    sealmilter::testing::TestIdentity unknown_ = make_identity({.email = "staff@bank.example", .key = "ec-p256", .serial = 303});
};

}  // namespace

TEST_F(ArchiveTest, AMaildirOfAThousandMessagesOpensWithExactCounts) {
    const std::string in = root_ + "/Maildir";
    for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(in + "/" + sub);
    constexpr int kMessages = 1000;
    for (int n = 0; n < kMessages; ++n)
        write_plain(in + (n % 3 == 0 ? "/new/" : "/cur/") + std::to_string(n) + ".host:2,S", message(n));
    std::string error;
    const auto store = keys::KeyStore::open(options_, &error);
    ASSERT_TRUE(store) << error;
    size_t progress_calls = 0;
    const core::ArchiveSummary s =
        core::open_maildir(in, root_ + "/out", *store, [&](size_t done, size_t total) {
            ++progress_calls;
            EXPECT_LE(done, total);
        });
    EXPECT_EQ(s.total, 1000u);
    EXPECT_EQ(s.opened, 800u);
    EXPECT_EQ(s.no_key, 150u);
    EXPECT_EQ(s.plain, 50u);
    EXPECT_EQ(s.damaged, 0u);
    EXPECT_EQ(progress_calls, 1000u);
    ASSERT_EQ(s.unmatched.size(), 1u);
    EXPECT_EQ(s.unmatched.begin()->second, 150u);
    EXPECT_EQ(s.by_key.size(), 2u);
    for (const auto& [id, n] : s.by_key) EXPECT_EQ(n, 400u) << id;
    for (int n = 0; n < kMessages; ++n) {
        const std::string rel = std::string(n % 3 == 0 ? "/new/" : "/cur/") + std::to_string(n) + ".host:2,S";
        const std::string got = read_file(root_ + "/out" + rel);
        const int k = n % 20;
        if (k < 16 || k == 19) {
            ASSERT_EQ(got, original(n)) << rel;
        } else {
            ASSERT_EQ(got, read_file(in + rel)) << rel;  // no key: copied unchanged
        }
    }
    EXPECT_TRUE(fs::is_directory(root_ + "/out/tmp"));
    // The originals are untouched: still encrypted.
    EXPECT_NE(read_file(in + "/new/0.host:2,S").find("application/pkcs7-mime"), std::string::npos);
    // The output must be new.
    EXPECT_THROW(core::open_maildir(in, root_ + "/out", *store), std::runtime_error);
    EXPECT_THROW(core::open_maildir(in, in + "/cur", *store), std::runtime_error);
}

TEST_F(ArchiveTest, AnMboxOpensWithItsSeparatorsAndQuoting) {
    std::string mbox;
    constexpr int kMessages = 40;
    std::vector<std::string> sent;  // ciphertext is random: keep what was written
    for (int n = 0; n < kMessages; ++n) {
        sent.push_back(mboxed(message(n)));
        mbox += "From partner@partner.example Mon Jan  1 00:00:00 2024\n" + sent.back() + "\n";
    }
    sealmilter::base::write_atomically(root_ + "/archive.mbox", mbox);
    std::string error;
    const auto store = keys::KeyStore::open(options_, &error);
    ASSERT_TRUE(store) << error;
    const core::ArchiveSummary s = core::open_mbox(root_ + "/archive.mbox", root_ + "/opened.mbox", *store);
    EXPECT_EQ(s.total, 40u);
    EXPECT_EQ(s.opened, 32u);
    EXPECT_EQ(s.no_key, 6u);
    EXPECT_EQ(s.plain, 2u);
    const std::string out = read_file(root_ + "/opened.mbox");
    std::string expected;
    for (int n = 0; n < kMessages; ++n) {
        const int k = n % 20;
        const std::string m = k < 16 ? mboxed(original(n)) : sent[static_cast<size_t>(n)];
        expected += "From partner@partner.example Mon Jan  1 00:00:00 2024\n" + m + "\n";
    }
    EXPECT_EQ(out, expected);
    EXPECT_EQ(read_file(root_ + "/archive.mbox"), mbox);
}

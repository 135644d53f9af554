// keys::IssuedRegistry: every field survives the file, a token finds its record and a new
// token retires the old one, concurrent writers (two threads, two registries = two processes)
// lose no update, a damaged file is an error and never a crash nor overwritten.
#include "keys/issued.hpp"

#include "base/file.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include <set>
#include <openssl/pem.h>

#include <filesystem>
#include <thread>
#include <sys/stat.h>

namespace keys = sealmilter::keys;
namespace fs = std::filesystem;

namespace {

std::string pem_of(const sealmilter::crypto::Certificate& c) {
    sealmilter::crypto::BIO_ptr mem(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(mem.get(), c.native());
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem.get(), &data);
    return {data, static_cast<size_t>(n)};
}

class IssuedTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sealmilter-issued-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root_ = tmpl;
    }
    void TearDown() override { fs::remove_all(root_); }

    keys::IssuedRecord full_record() {
        static const sealmilter::testing::TestIdentity id = sealmilter::testing::make_identity({.email = "new@customer.example"});
        keys::IssuedRecord r;
        r.address = "new@customer.example";
        r.key_id = "0123456789abcdef";
        r.sha256 = std::string(64, 'a');
        r.certificate_pem = pem_of(id.cert);
        r.state = keys::IssuedState::PickedUp;
        r.issued_at = 1700000000;
        r.state_changed_at = 1700000100;
        r.notice_due = true;
        r.notice_sent_at = 1700000200;
        r.notice_attempts = 2;
        r.token_hash = keys::sha256_hex("token-1");
        r.token_expires = 1701000000;
        r.locked = true;
        r.code_hash = keys::sha256_hex("K7QW2XPA" + r.token_hash);
        r.code_expires = 1700000900;
        r.wrong_codes = 4;
        r.code_mails = {1700000300, 1700000400, 1700000500};
        r.pickups = 3;
        r.last_pickup_at = 1700000600;
        return r;
    }

    bool put(keys::IssuedRegistry& reg, const keys::IssuedRecord& r) {
        std::string error;
        const bool ok = reg.update(r.address, [&](const auto&) { return std::optional<keys::IssuedRecord>(r); }, &error);
        EXPECT_TRUE(ok) << error;
        return ok;
    }

    std::string root_;
};

TEST_F(IssuedTest, Sha256HexAndConstantTimeCompare) {
    EXPECT_EQ(keys::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_TRUE(keys::digests_equal(keys::sha256_hex("x"), keys::sha256_hex("x")));
    EXPECT_FALSE(keys::digests_equal(keys::sha256_hex("x"), keys::sha256_hex("y")));
    EXPECT_FALSE(keys::digests_equal("abc", "abcd"));
}

TEST_F(IssuedTest, EveryFieldRoundTripsAndFilesArePrivate) {
    keys::IssuedRegistry reg(root_);
    keys::IssuedRecord r = full_record();
    r.address = "New@Customer.Example";  // the key is the lower-cased address
    ASSERT_TRUE(put(reg, r));
    std::string error;
    const std::optional<keys::IssuedRecord> got = keys::IssuedRegistry(root_).get("NEW@customer.example", &error);
    ASSERT_TRUE(got) << error;
    const keys::IssuedRecord want = full_record();
    EXPECT_EQ(got->address, want.address);
    EXPECT_EQ(got->key_id, want.key_id);
    EXPECT_EQ(got->sha256, want.sha256);
    EXPECT_EQ(got->certificate_pem, want.certificate_pem);
    EXPECT_EQ(got->state, want.state);
    EXPECT_EQ(got->issued_at, want.issued_at);
    EXPECT_EQ(got->state_changed_at, want.state_changed_at);
    EXPECT_EQ(got->notice_due, want.notice_due);
    EXPECT_EQ(got->notice_sent_at, want.notice_sent_at);
    EXPECT_EQ(got->notice_attempts, want.notice_attempts);
    EXPECT_EQ(got->token_hash, want.token_hash);
    EXPECT_EQ(got->token_expires, want.token_expires);
    EXPECT_EQ(got->locked, want.locked);
    EXPECT_EQ(got->code_hash, want.code_hash);
    EXPECT_EQ(got->code_expires, want.code_expires);
    EXPECT_EQ(got->wrong_codes, want.wrong_codes);
    EXPECT_EQ(got->code_mails, want.code_mails);
    EXPECT_EQ(got->pickups, want.pickups);
    EXPECT_EQ(got->last_pickup_at, want.last_pickup_at);

    for (const keys::IssuedState s :
         {keys::IssuedState::Escrowed, keys::IssuedState::PickedUp, keys::IssuedState::Retired, keys::IssuedState::Revoked})
        EXPECT_EQ(keys::parse_issued_state(keys::issued_state_name(s)), s);
    EXPECT_FALSE(keys::parse_issued_state("lost"));

    struct stat st {};
    ASSERT_EQ(stat((root_ + "/issued").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700U);
    for (const auto& f : fs::directory_iterator(root_ + "/issued")) {
        if (f.path().filename() == "lock") continue;
        ASSERT_EQ(stat(f.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0077, 0U) << f.path();
    }
    const std::vector<keys::IssuedRecord> all = reg.list(&error);
    ASSERT_EQ(all.size(), 1U);
    EXPECT_EQ(all.front().address, want.address);
}

TEST_F(IssuedTest, ATokenFindsItsRecordAndANewTokenRetiresTheOld) {
    keys::IssuedRegistry reg(root_);
    keys::IssuedRecord r = full_record();
    ASSERT_TRUE(put(reg, r));
    const std::string first = r.token_hash;
    ASSERT_TRUE(reg.by_token_hash(first));
    EXPECT_EQ(reg.by_token_hash(first)->address, r.address);
    EXPECT_FALSE(reg.by_token_hash(keys::sha256_hex("never sent")));
    EXPECT_FALSE(reg.by_token_hash("../../etc/passwd"));

    std::string error;
    const std::string second = keys::sha256_hex("token-2");
    ASSERT_TRUE(reg.update(r.address, [&](const std::optional<keys::IssuedRecord>& cur) {
        keys::IssuedRecord n = *cur;
        n.token_hash = second;
        return std::optional<keys::IssuedRecord>(n);
    }, &error)) << error;
    EXPECT_FALSE(reg.by_token_hash(first));
    EXPECT_FALSE(fs::exists(root_ + "/issued/t-" + first));
    ASSERT_TRUE(reg.by_token_hash(second));

    // A stale token file (a crash between the record and the removal) is no match.
    sealmilter::base::write_atomically(root_ + "/issued/t-" + first, r.address, 0600);
    EXPECT_FALSE(reg.by_token_hash(first));

    // A change that returns nullopt writes nothing.
    ASSERT_TRUE(reg.update(r.address, [](const auto&) { return std::optional<keys::IssuedRecord>(); }, &error));
    EXPECT_EQ(reg.get(r.address)->token_hash, second);
}

TEST_F(IssuedTest, TwoThreadsAndTwoRegistriesLoseNoUpdate) {
    keys::IssuedRegistry a(root_);
    keys::IssuedRegistry b(root_);  // a second registry on the same directory: another process's view
    keys::IssuedRecord r = full_record();
    r.pickups = 0;
    ASSERT_TRUE(put(a, r));
    constexpr int kEach = 40;
    const auto bump = [&](keys::IssuedRegistry* reg) {
        for (int i = 0; i < kEach; ++i) {
            std::string error;
            EXPECT_TRUE(reg->update(r.address, [](const std::optional<keys::IssuedRecord>& cur) {
                keys::IssuedRecord n = *cur;
                ++n.pickups;
                return std::optional<keys::IssuedRecord>(n);
            }, &error)) << error;
        }
    };
    std::thread t1(bump, &a);
    std::thread t2(bump, &a);
    std::thread t3(bump, &b);
    std::thread t4(bump, &b);
    t1.join();
    t2.join();
    t3.join();
    t4.join();
    EXPECT_EQ(a.get(r.address)->pickups, 4U * kEach);
}

TEST_F(IssuedTest, ADamagedRecordIsAnErrorNeverACrashNorOverwritten) {
    keys::IssuedRegistry reg(root_);
    const keys::IssuedRecord r = full_record();
    ASSERT_TRUE(put(reg, r));
    const std::string path = root_ + "/issued/" + keys::sha256_hex(r.address);
    const std::string whole = sealmilter::base::read_file(path);
    for (const std::string& damaged : {whole.substr(0, whole.size() / 2), std::string("garbage\n"), std::string(),
                                       whole.substr(0, whole.find("state ")) + "state lost\n" +
                                           whole.substr(whole.find("\nissued_at") + 1)}) {
        sealmilter::base::write_atomically(path, damaged, 0600);
        std::string error;
        EXPECT_FALSE(reg.get(r.address, &error));
        EXPECT_NE(error.find("damaged"), std::string::npos) << error;
        error.clear();
        EXPECT_FALSE(reg.update(r.address, [&](const auto&) { return std::optional<keys::IssuedRecord>(r); }, &error));
        EXPECT_NE(error.find("damaged"), std::string::npos) << error;
        EXPECT_EQ(sealmilter::base::read_file(path), damaged);
        error.clear();
        EXPECT_TRUE(reg.list(&error).empty());
        EXPECT_FALSE(error.empty());
    }
    std::string error;
    EXPECT_FALSE(reg.get("nobody@customer.example", &error));
    EXPECT_TRUE(error.empty()) << error;
}

// Review finding 3: the notice worker reads only the due records, through the due index
// (issued/due/<sha256(address)>), bounded per call and round robin.
TEST_F(IssuedTest, TheDueIndexListsOnlyDueRecordsBoundedAndRoundRobin) {
    keys::IssuedRegistry reg(root_);
    for (int n = 0; n < 20; ++n) {
        keys::IssuedRecord r = full_record();
        r.address = "n" + std::to_string(n) + "@customer.example";
        r.token_hash.clear();
        r.notice_due = n % 5 == 0;  // 4 due
        ASSERT_TRUE(put(reg, r));
    }
    size_t markers = 0;
    for (const auto& e : fs::directory_iterator(root_ + "/issued/due")) {
        (void)e;
        ++markers;
    }
    EXPECT_EQ(markers, 4U);
    std::string error;
    auto due = reg.list_due(100, &error);
    EXPECT_TRUE(error.empty()) << error;
    std::set<std::string> all;
    for (const auto& r : due) {
        EXPECT_TRUE(r.notice_due);
        all.insert(r.address);
    }
    EXPECT_EQ(all, (std::set<std::string>{"n0@customer.example", "n5@customer.example", "n10@customer.example",
                                          "n15@customer.example"}));
    // Bounded and round robin: two calls of 3 see all 4 due records.
    std::set<std::string> seen;
    for (int call = 0; call < 2; ++call) {
        due = reg.list_due(3, &error);
        EXPECT_LE(due.size(), 3U);
        for (const auto& r : due) seen.insert(r.address);
    }
    EXPECT_EQ(seen, all);
    // Sent: the marker goes with notice_due.
    ASSERT_TRUE(reg.update("n0@customer.example", [](const std::optional<keys::IssuedRecord>& c) {
        keys::IssuedRecord r = *c;
        r.notice_due = false;
        return std::optional<keys::IssuedRecord>(r);
    }, &error));
    EXPECT_FALSE(fs::exists(root_ + "/issued/due/" + keys::sha256_hex("n0@customer.example")));
    EXPECT_EQ(reg.list_due(100, &error).size(), 3U);
    // A due record without a marker (written by an older version) is indexed by the first call
    // of a process; a stale marker (its record is not due) is dropped.
    fs::remove(root_ + "/issued/due/" + keys::sha256_hex("n5@customer.example"));
    std::ofstream(root_ + "/issued/due/" + keys::sha256_hex("n1@customer.example")) << "n1@customer.example";
    keys::IssuedRegistry restarted(root_);
    EXPECT_EQ(restarted.list_due(100, &error).size(), 3U);
    EXPECT_TRUE(fs::exists(root_ + "/issued/due/" + keys::sha256_hex("n5@customer.example")));
    EXPECT_FALSE(fs::exists(root_ + "/issued/due/" + keys::sha256_hex("n1@customer.example")));
}

TEST_F(IssuedTest, WithdrawnMarkers) {
    keys::IssuedRegistry reg(root_);
    std::string error;
    const std::string fp(64, 'b');
    EXPECT_FALSE(reg.is_withdrawn(fp));
    ASSERT_TRUE(reg.mark_withdrawn(fp, &error)) << error;
    EXPECT_TRUE(reg.is_withdrawn(fp));
    EXPECT_FALSE(reg.mark_withdrawn("../x", &error));
    EXPECT_FALSE(reg.is_withdrawn("../../etc/passwd"));
}

}  // namespace

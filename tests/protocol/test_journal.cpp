// The re-injection journal's key releases its OpenSSL digest context even when reading the
// body spool throws. OpenSSL's allocations are counted through CRYPTO_set_mem_functions, which
// must run before OpenSSL allocates anything: this executable has its own main().
#include "milter/journal.hpp"

#include <gtest/gtest.h>

#include <openssl/crypto.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace core = sealmilter::core;
namespace milter = sealmilter::milter;

namespace {

std::atomic<long> g_live{0};

void* counting_malloc(size_t n, const char*, int) {
    void* p = std::malloc(n);
    if (p != nullptr) ++g_live;
    return p;
}
void* counting_realloc(void* p, size_t n, const char*, int) {
    void* q = std::realloc(p, n);
    if (p == nullptr && q != nullptr) ++g_live;
    return q;
}
void counting_free(void* p, const char*, int) {
    if (p != nullptr) --g_live;
    std::free(p);
}

// Makes every later read of the message's spool file fail (EBADF): its descriptor, found by
// the spool directory in /proc/self/fd, is replaced by a write-only /dev/null.
void break_spool(const std::string& dir) {
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
        if (ec || target.rfind(dir, 0) != 0) continue;
        const int null = ::open("/dev/null", O_WRONLY);
        ASSERT_GE(::dup2(null, std::stoi(e.path().filename().string())), 0);
        ::close(null);
        return;
    }
    FAIL() << "no spool file under " << dir;
}

TEST(Journal, KeyReleasesTheDigestWhenTheSpoolCannotBeRead) {
    char tmpl[] = "/tmp/sealmilter-journal-spool-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    core::Message m(16, dir);  // spills to a file after 16 bytes
    m.headers.push_back({"Subject", " x"});
    const std::string body(4096, 'b');
    m.body.append(body.data(), body.size());
    ASSERT_TRUE(m.body.on_disk());
    const std::string first = milter::Journal::key(m, "a@b.example", {"c@d.example"});  // warms OpenSSL's caches
    long before = g_live.load();
    EXPECT_EQ(milter::Journal::key(m, "a@b.example", {"c@d.example"}), first);
    EXPECT_EQ(g_live.load(), before) << "a successful key() must not keep allocations";
    break_spool(dir);
    before = g_live.load();
    EXPECT_ANY_THROW(milter::Journal::key(m, "a@b.example", {"c@d.example"}));
    EXPECT_EQ(g_live.load(), before) << "the EVP_MD_CTX leaked";
    std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
    if (CRYPTO_set_mem_functions(counting_malloc, counting_realloc, counting_free) != 1) return 2;
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

// The SQLite certificate cache: freshness rules, keys, purge, concurrency (threads and
// processes on one file) and robustness against corrupt or unusable files.
#include "lookup/cache.hpp"
#include "lookup/source.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace {

namespace crypto = sealmilter::crypto;
namespace fs = std::filesystem;
using sealmilter::lookup::Cache;
using sealmilter::lookup::CacheEntry;
using sealmilter::lookup::CacheOptions;
using sealmilter::base::Clock;
using sealmilter::testing::make_identity;

class ManualClock final : public Clock {
public:
    explicit ManualClock(std::time_t t) : now_(t) {}
    std::time_t now() const override { return now_.load(); }
    void set(std::time_t t) { now_.store(t); }
    void advance(long long s) { now_.fetch_add(static_cast<std::time_t>(s)); }

private:
    std::atomic<std::time_t> now_;
};

template <auto Fn>
struct Free {
    template <typename T>
    void operator()(T* p) const noexcept {
        Fn(p);
    }
};
using RawDb = std::unique_ptr<sqlite3, Free<sqlite3_close_v2>>;

// A second, independent connection for inspecting or damaging the file behind the cache.
RawDb open_raw(const std::string& path) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
    RawDb db(raw);
    if (rc != SQLITE_OK) ADD_FAILURE() << "open " << path << ": " << sqlite3_errstr(rc);
    sqlite3_busy_timeout(db.get(), 5000);
    return db;
}

std::string query_text(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) return "prepare failed";
    std::unique_ptr<sqlite3_stmt, Free<sqlite3_finalize>> s(raw);
    if (sqlite3_step(s.get()) != SQLITE_ROW) return "no row";
    const unsigned char* t = sqlite3_column_text(s.get(), 0);
    return t == nullptr ? "" : reinterpret_cast<const char*>(t);
}

void exec(sqlite3* db, const std::string& sql) {
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
}

void write_garbage(const std::string& path, size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

struct Identities {
    crypto::Certificate a, b, c;      // valid for a year
    crypto::Certificate short_lived;  // valid for 30 days
};

const Identities& ids() {
    static const Identities k = [] {
        return Identities{make_identity({.email = "a@example.org", .key = "ec-p256"}).cert,
                          make_identity({.email = "b@example.org", .key = "ec-p256"}).cert,
                          make_identity({.email = "c@example.org", .key = "ec-p256"}).cert,
                          make_identity({.email = "s@example.org", .key = "ec-p256", .days_valid = 30}).cert};
    }();
    return k;
}

std::vector<std::string> fingerprints(const std::vector<crypto::Certificate>& certs) {
    std::vector<std::string> out;
    out.reserve(certs.size());
    for (const auto& c : certs) out.push_back(c.fingerprint_sha256());
    return out;
}

class CacheTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sealmilter-cache-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/cache.db";
        ids();
    }
    void TearDown() override { fs::remove_all(dir_); }

    CacheOptions options(const std::string& path = "") {
        CacheOptions o;
        o.path = path.empty() ? path_ : path;
        o.clock = &clock_;
        o.on_error = [this](const std::string& line) {
            std::lock_guard<std::mutex> lock(errors_mutex_);
            errors_.push_back(line);
        };
        return o;
    }
    std::vector<std::string> errors() {
        std::lock_guard<std::mutex> lock(errors_mutex_);
        return errors_;
    }
    bool some_error_names(const std::string& what) {
        for (const auto& e : errors())
            if (e.find(what) != std::string::npos) return true;
        return false;
    }

    // Every operation on a broken cache: no exception, a miss, nothing written.
    void expect_degraded(Cache& cache, const std::string& named) {
        EXPECT_NO_THROW({
            EXPECT_FALSE(cache.get("a@example.org").has_value());
            cache.put_positive("a@example.org", {ids().a}, "directory", 7200, std::nullopt, "\"e\"");
            EXPECT_FALSE(cache.get("a@example.org").has_value());
            cache.put_negative("n@example.org", "directory", "HTTP 404");
            EXPECT_FALSE(cache.get("n@example.org").has_value());
            cache.revalidated("a@example.org", 60);
            EXPECT_TRUE(cache.list().empty());
            EXPECT_EQ(cache.purge("a@example.org"), 0);
            EXPECT_EQ(cache.purge_all(), 0);
        });
        EXPECT_FALSE(cache.healthy());
        EXPECT_TRUE(some_error_names(named)) << "no error line names " << named;
    }

    ManualClock clock_{1'700'000'000};
    std::string dir_, path_;
    std::mutex errors_mutex_;
    std::vector<std::string> errors_;
};

TEST_F(CacheTest, HitReturnsWhatWasStored) {
    Cache cache(options());
    EXPECT_TRUE(cache.healthy());
    EXPECT_FALSE(cache.get("a@example.org").has_value());
    cache.put_positive("a@example.org", {ids().a, ids().b}, "directory", 7200, std::nullopt, "\"v1\"");
    const auto e = cache.get("a@example.org");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->email, "a@example.org");
    EXPECT_FALSE(e->negative);
    EXPECT_EQ(fingerprints(e->certificates), fingerprints({ids().a, ids().b}));
    EXPECT_EQ(e->source, "directory");
    EXPECT_EQ(e->etag, "\"v1\"");
    EXPECT_EQ(e->stored_at, clock_.now());
    EXPECT_TRUE(e->fresh(clock_.now()));
    EXPECT_TRUE(cache.healthy());
    EXPECT_TRUE(errors().empty());
}

TEST_F(CacheTest, SurvivesReopen) {
    {
        Cache cache(options());
        cache.put_positive("a@example.org", {ids().a}, "ldap", std::nullopt, std::nullopt, "");
        cache.put_negative("n@example.org", "directory", "HTTP 410 (opted out)");
    }
    Cache again(options());
    ASSERT_TRUE(again.get("a@example.org").has_value());
    EXPECT_EQ(again.get("a@example.org")->source, "ldap");
    ASSERT_TRUE(again.get("n@example.org").has_value());
    EXPECT_EQ(again.get("n@example.org")->reason, "HTTP 410 (opted out)");
    RawDb raw = open_raw(path_);
    EXPECT_EQ(query_text(raw.get(), "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(query_text(raw.get(), "PRAGMA user_version"), "1");
}

struct TtlRow {
    const char* name;
    std::optional<long long> max_age;
    long long expect_ttl;
};

class CacheTtl : public CacheTest, public ::testing::WithParamInterface<TtlRow> {};

TEST_P(CacheTtl, PositiveExpiryIsClamped) {
    const TtlRow& row = GetParam();
    CacheOptions o = options();
    o.min_ttl = 3600;
    o.max_ttl = 86400;
    o.max_stale = 604800;
    Cache cache(o);
    const std::time_t t0 = clock_.now();
    cache.put_positive("a@example.org", {ids().a}, "directory", row.max_age, std::nullopt, "");
    const auto e = cache.get("a@example.org");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->expires_at, t0 + row.expect_ttl);
    EXPECT_EQ(e->stale_until, t0 + row.expect_ttl + 604800);
    EXPECT_TRUE(e->fresh(t0 + row.expect_ttl - 1));
    EXPECT_FALSE(e->fresh(t0 + row.expect_ttl));
}

INSTANTIATE_TEST_SUITE_P(CacheTable, CacheTtl,
                         ::testing::Values(TtlRow{"none_is_min_ttl", std::nullopt, 3600}, TtlRow{"below_min", 60, 3600},
                                           TtlRow{"zero", 0, 3600}, TtlRow{"negative", -5, 3600},
                                           TtlRow{"inside", 7200, 7200}, TtlRow{"at_max", 86400, 86400},
                                           TtlRow{"above_max", 10'000'000, 86400}),
                         [](const auto& row_info) { return std::string(row_info.param.name); });

TEST_F(CacheTest, NeverFreshOrStalePastNotAfter) {
    const crypto::Certificate& soon = ids().short_lived;
    clock_.set(soon.not_after() - 600);  // the certificate expires in ten minutes
    Cache cache(options());
    cache.put_positive("s@example.org", {ids().a, soon}, "directory", 86400, std::nullopt, "");
    const auto e = cache.get("s@example.org");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->expires_at, soon.not_after());  // the earliest notAfter of the set
    EXPECT_LE(e->stale_until, soon.not_after());
    EXPECT_FALSE(e->servable_stale(soon.not_after()));
    // A revalidation cannot push it further either.
    cache.revalidated("s@example.org", 86400);
    EXPECT_EQ(cache.get("s@example.org")->expires_at, soon.not_after());
}

TEST_F(CacheTest, NegativeExpiry) {
    CacheOptions o = options();
    o.negative_ttl = 1800;
    o.max_stale = 3000;
    Cache cache(o);
    const std::time_t t0 = clock_.now();
    cache.put_negative("Nobody@Example.ORG", "directory", "HTTP 404");
    const auto e = cache.get("Nobody@example.org");
    ASSERT_TRUE(e.has_value());
    EXPECT_TRUE(e->negative);
    EXPECT_TRUE(e->certificates.empty());
    EXPECT_EQ(e->reason, "HTTP 404");
    EXPECT_EQ(e->source, "directory");
    EXPECT_EQ(e->expires_at, t0 + 1800);
    EXPECT_EQ(e->stale_until, t0 + 1800 + 3000);
    // A later positive answer replaces the negative one, and vice versa.
    cache.put_positive("nobody@example.org", {ids().a}, "ldap", std::nullopt, std::nullopt, "");
    EXPECT_FALSE(cache.get("nobody@example.org")->negative);
    cache.put_negative("nobody@example.org", "directory", "HTTP 410 (opted out)");
    EXPECT_TRUE(cache.get("nobody@example.org")->negative);
}

TEST_F(CacheTest, StaleWindow) {
    CacheOptions o = options();
    o.max_stale = 1000;
    Cache cache(o);
    cache.put_positive("a@example.org", {ids().a}, "directory", 7200, std::nullopt, "");
    const std::time_t t0 = clock_.now();
    struct Probe {
        long long at;
        bool fresh, stale_ok;
    };
    for (const Probe& p : {Probe{0, true, true}, Probe{7199, true, true}, Probe{7200, false, true},
                           Probe{8199, false, true}, Probe{8200, false, false}}) {
        clock_.set(t0 + p.at);
        const auto e = cache.get("a@example.org");  // fresh or stale alike, the caller decides
        ASSERT_TRUE(e.has_value()) << p.at;
        EXPECT_EQ(e->fresh(clock_.now()), p.fresh) << p.at;
        EXPECT_EQ(e->servable_stale(clock_.now()), p.stale_ok) << p.at;
    }
}

struct StaleRow {
    const char* name;
    std::optional<long long> stale_if_error;
    long long expect_window;
};

class CacheStaleIfError : public CacheTest, public ::testing::WithParamInterface<StaleRow> {};

TEST_P(CacheStaleIfError, SmallerWins) {
    CacheOptions o = options();
    o.max_stale = 5000;
    Cache cache(o);
    cache.put_positive("a@example.org", {ids().a}, "directory", 3600, GetParam().stale_if_error, "");
    const auto e = cache.get("a@example.org");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->stale_until - e->expires_at, GetParam().expect_window);
}

INSTANTIATE_TEST_SUITE_P(CacheTable, CacheStaleIfError,
                         ::testing::Values(StaleRow{"absent", std::nullopt, 5000}, StaleRow{"smaller", 60, 60},
                                           StaleRow{"larger", 90000, 5000}, StaleRow{"zero", 0, 0},
                                           StaleRow{"negative", -1, 0}),
                         [](const auto& row_info) { return std::string(row_info.param.name); });

TEST_F(CacheTest, RevalidatedMakesFreshAgain) {
    Cache cache(options());
    cache.put_positive("a@example.org", {ids().a}, "directory", 3600, 120, "\"v1\"");
    clock_.advance(5000);  // expired, still servable stale
    ASSERT_FALSE(cache.get("a@example.org")->fresh(clock_.now()));
    cache.revalidated("other@example.org", 7200);  // another key: no effect here
    EXPECT_FALSE(cache.get("a@example.org")->fresh(clock_.now()));
    cache.revalidated("A@EXAMPLE.org", 7200);
    auto e = cache.get("a@example.org");
    ASSERT_TRUE(e.has_value());
    EXPECT_TRUE(e->fresh(clock_.now()));
    EXPECT_EQ(e->expires_at, clock_.now() + 7200);
    EXPECT_EQ(e->stale_until, e->expires_at + 120);  // stale-if-error kept
    EXPECT_EQ(e->etag, "\"v1\"");
    EXPECT_EQ(fingerprints(e->certificates), fingerprints({ids().a}));
    cache.revalidated("a@example.org", std::nullopt);  // clamped like a put: min_ttl
    EXPECT_EQ(cache.get("a@example.org")->expires_at, clock_.now() + 3600);
    cache.revalidated("a@example.org", 1'000'000);
    EXPECT_EQ(cache.get("a@example.org")->expires_at, clock_.now() + 86400);

    cache.revalidated("absent@example.org", 7200);  // no-op
    EXPECT_FALSE(cache.get("absent@example.org").has_value());
    cache.put_negative("n@example.org", "directory", "HTTP 404");
    const auto before = cache.get("n@example.org");
    clock_.advance(100);
    cache.revalidated("n@example.org", 7200);  // negative entries are not revalidated
    EXPECT_EQ(cache.get("n@example.org")->expires_at, before->expires_at);
    EXPECT_TRUE(cache.healthy());
    EXPECT_TRUE(errors().empty());
}

TEST_F(CacheTest, EtagStoredAndReplaced) {
    Cache cache(options());
    cache.put_positive("a@example.org", {ids().a}, "directory", std::nullopt, std::nullopt, "W/\"abc\"");
    EXPECT_EQ(cache.get("a@example.org")->etag, "W/\"abc\"");
    cache.put_positive("a@example.org", {ids().b}, "directory", std::nullopt, std::nullopt, "");
    const auto e = cache.get("a@example.org");
    EXPECT_EQ(e->etag, "");
    EXPECT_EQ(fingerprints(e->certificates), fingerprints({ids().b}));
}

TEST_F(CacheTest, KeyIsTheNormalisedAddress) {
    // The key is lookup::normalize_address: at least the domain is case-insensitive
    // (RFC 5321 §2.4); the local part follows whatever normalize_address decides.
    Cache cache(options());
    cache.put_positive("Alice@Example.ORG", {ids().a}, "directory", std::nullopt, std::nullopt, "");
    for (const char* q : {"Alice@example.org", "Alice@EXAMPLE.ORG", "Alice@Example.ORG"}) {
        const auto e = cache.get(q);
        ASSERT_TRUE(e.has_value()) << q;
        EXPECT_EQ(e->email, sealmilter::lookup::normalize_address("Alice@Example.ORG")) << q;
        EXPECT_EQ(e->email, sealmilter::lookup::normalize_address(q)) << q;
    }
    EXPECT_FALSE(cache.get("Alice@example.net").has_value());
    EXPECT_EQ(cache.list().size(), 1u);
    EXPECT_EQ(cache.purge("Alice@EXAMPLE.org"), 1);
    EXPECT_FALSE(cache.get("Alice@example.org").has_value());
}

TEST_F(CacheTest, ListAndPurge) {
    Cache cache(options());
    cache.put_positive("c@example.org", {ids().c}, "directory", std::nullopt, std::nullopt, "");
    cache.put_negative("b@example.org", "directory", "HTTP 404");
    cache.put_positive("a@example.org", {ids().a}, "ldap", std::nullopt, std::nullopt, "");
    std::vector<std::string> emails;
    for (const CacheEntry& e : cache.list()) emails.push_back(e.email);
    EXPECT_EQ(emails, (std::vector<std::string>{"a@example.org", "b@example.org", "c@example.org"}));
    EXPECT_EQ(cache.list()[1].negative, true);

    EXPECT_EQ(cache.purge("b@example.org"), 1);
    EXPECT_EQ(cache.purge("b@example.org"), 0);
    EXPECT_EQ(cache.purge("unknown@example.org"), 0);
    EXPECT_EQ(cache.list().size(), 2u);
    EXPECT_EQ(cache.purge_all(), 2);
    EXPECT_EQ(cache.purge_all(), 0);
    EXPECT_TRUE(cache.list().empty());
    EXPECT_TRUE(cache.healthy());
}

TEST_F(CacheTest, UnreadableCertificatesAreAMiss) {
    Cache cache(options());
    cache.put_positive("a@example.org", {ids().a}, "directory", std::nullopt, std::nullopt, "");
    cache.put_positive("b@example.org", {ids().b}, "directory", std::nullopt, std::nullopt, "");
    {
        RawDb raw = open_raw(path_);
        exec(raw.get(), "UPDATE entries SET certs = x'0000000341424300' WHERE email = 'a@example.org'");
    }
    EXPECT_FALSE(cache.get("a@example.org").has_value());
    EXPECT_TRUE(some_error_names("a@example.org"));
    EXPECT_TRUE(some_error_names(path_));
    ASSERT_EQ(cache.list().size(), 1u);  // the unreadable row is not listed as if usable
    EXPECT_TRUE(cache.get("b@example.org").has_value());
    // A fresh answer replaces the broken row.
    cache.put_positive("a@example.org", {ids().a}, "directory", std::nullopt, std::nullopt, "");
    EXPECT_TRUE(cache.get("a@example.org").has_value());
}

TEST_F(CacheTest, NewerSchemaIsNotTouched) {
    { Cache cache(options()); }
    {
        RawDb raw = open_raw(path_);
        exec(raw.get(), "PRAGMA user_version = 99");
    }
    Cache cache(options());
    expect_degraded(cache, path_);
    EXPECT_TRUE(some_error_names("schema version 99"));
}

TEST_F(CacheTest, ForeignTableIsNotTouched) {
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
        RawDb db(raw);
        exec(db.get(), "CREATE TABLE entries (x INTEGER)");
    }
    EXPECT_NO_THROW({
        Cache cache(options());
        expect_degraded(cache, path_);
    });
}

struct CorruptRow {
    const char* name;
    bool keep_header;  // a valid SQLite header with garbage pages behind it
    size_t size;
};

class CacheCorruptFile : public CacheTest, public ::testing::WithParamInterface<CorruptRow> {};

TEST_P(CacheCorruptFile, DegradesToMiss) {
    const CorruptRow& row = GetParam();
    if (row.keep_header) {
        {
            Cache cache(options());
            for (int i = 0; i < 40; ++i)
                cache.put_positive("u" + std::to_string(i) + "@example.org", {ids().a, ids().b, ids().c}, "directory",
                                   std::nullopt, std::nullopt, "");
        }  // the last connection checkpoints the WAL into the file
        ASSERT_GT(fs::file_size(path_), 8192u);
        std::string bytes;
        {
            std::ifstream in(path_, std::ios::binary);
            bytes.assign(std::istreambuf_iterator<char>(in), {});
        }
        std::mt19937 rng(7);
        for (size_t i = 4096 + 512; i < bytes.size(); ++i) bytes[i] = static_cast<char>(rng() & 0xff);
        std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes;
    } else {
        write_garbage(path_, row.size, 42);
    }
    std::optional<Cache> cache;
    ASSERT_NO_THROW(cache.emplace(options()));
    expect_degraded(*cache, path_);
    // Nothing was written over the damaged file.
    EXPECT_FALSE(fs::exists(path_ + "-wal") && fs::file_size(path_ + "-wal") > 0);
}

INSTANTIATE_TEST_SUITE_P(CacheTable, CacheCorruptFile,
                         ::testing::Values(CorruptRow{"garbage_small", false, 100},
                                           CorruptRow{"garbage_pages", false, size_t{64} * 1024},
                                           CorruptRow{"valid_header_garbage_pages", true, 0}),
                         [](const auto& row_info) { return std::string(row_info.param.name); });

TEST_F(CacheTest, CorruptedWhileOpenNeverAnswersWrong) {
    Cache cache(options());
    std::map<std::string, std::vector<std::string>> stored;
    for (int i = 0; i < 40; ++i) {
        const std::string key = "u" + std::to_string(i) + "@example.org";
        const crypto::Certificate& cert = i % 2 ? ids().a : ids().b;
        cache.put_positive(key, {cert}, "directory", std::nullopt, std::nullopt, "");
        stored[key] = fingerprints({cert});
    }
    ASSERT_TRUE(cache.healthy());
    {
        // Move everything into the main file and empty the WAL, so the cache must read pages
        // from the file again; then overwrite the file with garbage.
        RawDb raw = open_raw(path_);
        EXPECT_EQ(query_text(raw.get(), "PRAGMA wal_checkpoint(TRUNCATE)"), "0");
    }
    write_garbage(path_, static_cast<size_t>(fs::file_size(path_)), 99);

    EXPECT_NO_THROW({
        for (int round = 0; round < 2; ++round) {
            for (const auto& [key, fps] : stored) {
                const auto e = cache.get(key);
                if (e) {
                    EXPECT_EQ(fingerprints(e->certificates), fps) << key;  // right or nothing
                }
            }
            cache.put_positive("new@example.org", {ids().c}, "directory", std::nullopt, std::nullopt, "");
            const auto n = cache.get("new@example.org");
            if (n) {
                EXPECT_EQ(fingerprints(n->certificates), fingerprints({ids().c}));
            }
            for (const CacheEntry& e : cache.list())
                if (stored.count(e.email)) {
                    EXPECT_EQ(fingerprints(e.certificates), stored[e.email]);
                }
            cache.purge("u1@example.org");
        }
    });
    EXPECT_FALSE(cache.healthy());
    EXPECT_TRUE(some_error_names(path_));
    // Once detected, the cache stays a miss: it never falls back to pages it cached earlier.
    EXPECT_FALSE(cache.get("u2@example.org").has_value());
}

TEST_F(CacheTest, UnusablePathDegradesToMiss) {
    fs::create_directory(dir_ + "/a-directory");
    // Tests run as root, so permission bits do not make a file unwritable; these paths fail
    // for everyone.
    for (const std::string& path : {dir_ + "/missing/dir/cache.db", dir_ + "/a-directory"}) {
        SCOPED_TRACE(path);
        errors_.clear();
        std::optional<Cache> cache;
        ASSERT_NO_THROW(cache.emplace(options(path)));
        expect_degraded(*cache, path);
    }
    EXPECT_FALSE(fs::exists(dir_ + "/missing"));
}

TEST_F(CacheTest, NoErrorCallbackIsFine) {
    write_garbage(path_, 4096, 3);
    CacheOptions o = options();
    o.on_error = nullptr;
    Cache cache(o);
    EXPECT_FALSE(cache.get("a@example.org").has_value());
    EXPECT_FALSE(cache.healthy());
}

std::string thread_key(int t, int i) {
    return i % 2 == 0 ? "t" + std::to_string(t) + "-" + std::to_string(i) + "@example.org"
                      : "shared-" + std::to_string(i % 20) + "@example.org";
}

std::string process_key(int p, int i) {
    return i % 2 == 0 ? "p" + std::to_string(p) + "-" + std::to_string(i) + "@example.org"
                      : "shared-" + std::to_string(i % 20) + "@EXAMPLE.org";  // same keys, other case
}

// Runs in a forked child: its own Cache on the shared file. Exit status 0 = all went well.
[[noreturn]] void child_writer(const std::string& path, int p, int start_fd) {
    int failures = 0;
    {
        char go = 0;
        if (read(start_fd, &go, 1) != 0) ++failures;  // EOF: the parent's writers are starting
        CacheOptions o;
        o.path = path;
        o.on_error = [&failures](const std::string&) { ++failures; };
        Cache cache(o);
        const crypto::Certificate* certs[] = {&ids().a, &ids().b, &ids().c};
        for (int i = 0; i < 300; ++i)
            cache.put_positive(process_key(p, i), {*certs[i % 3]}, "child", 3600, std::nullopt, "");
        for (int i = 0; i < 300; i += 2)
            if (!cache.get(process_key(p, i))) ++failures;
        if (!cache.healthy()) ++failures;
    }
    _exit(failures == 0 ? 0 : 1);
}

TEST_F(CacheTest, ConcurrentWritersThreadsAndProcessesLoseNothing) {
    // Fork first: a child must never inherit an open SQLite connection (or running threads).
    int start[2];
    ASSERT_EQ(pipe(start), 0);
    std::vector<pid_t> children;
    for (int p = 0; p < 2; ++p) {
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            close(start[1]);
            child_writer(path_, p, start[0]);
        }
        children.push_back(pid);
    }
    close(start[0]);
    Cache cache(options());
    const crypto::Certificate* certs[] = {&ids().a, &ids().b, &ids().c};
    std::vector<std::thread> threads;
    threads.reserve(8);
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                cache.put_positive(thread_key(t, i), {*certs[(t + i) % 3]}, "thread", 3600, std::nullopt, "");
                if (i % 10 == 0) (void)cache.get(thread_key(t, i / 2));
            }
        });
    }
    close(start[1]);  // releases the children: processes and threads write at once
    for (auto& th : threads) th.join();
    for (pid_t pid : children) {
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid << " status " << status;
    }
    EXPECT_TRUE(cache.healthy());
    EXPECT_TRUE(errors().empty()) << errors().front();

    std::set<std::string> expected;
    for (int t = 0; t < 8; ++t)
        for (int i = 0; i < 200; ++i) expected.insert(thread_key(t, i));
    for (int p = 0; p < 2; ++p)
        for (int i = 0; i < 300; ++i) expected.insert(sealmilter::lookup::normalize_address(process_key(p, i)));
    ASSERT_EQ(expected.size(), 8u * 100 + 2 * 150 + 10);  // 10 shared keys

    std::set<std::string> listed;
    for (const CacheEntry& e : cache.list()) {
        listed.insert(e.email);
        EXPECT_EQ(e.certificates.size(), 1u) << e.email;
    }
    EXPECT_EQ(listed, expected);
    for (const std::string& key : expected) {
        const auto e = cache.get(key);
        ASSERT_TRUE(e.has_value()) << key;
        EXPECT_EQ(e->certificates.size(), 1u);
    }
    RawDb raw = open_raw(path_);
    EXPECT_EQ(query_text(raw.get(), "PRAGMA integrity_check"), "ok");
    EXPECT_EQ(query_text(raw.get(), "SELECT count(*) FROM entries"), std::to_string(expected.size()));
}

}  // namespace

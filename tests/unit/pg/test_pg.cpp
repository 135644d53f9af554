// The PostgreSQL backends (pg/) against a real PostgreSQL 15: one cluster for the whole
// suite, started by tests/support/pg_cluster.py on a loopback port as user nobody and stopped
// by its pid at the end; each test works in a database of its own. Covers the schema
// migration, the cache (shared by two "nodes", concurrent writers, the freshness rules across
// nodes), the harvest store and source, the journal, the pool's bound, and the faults: a
// locked table (slow database) answers a miss instead of blocking, a stopped server makes
// the cache miss, the harvest source fail and the journal answer Unknown, and every backend
// recovers by itself when the server is back.
#include "lookup/harvest_store.hpp"
#include "lookup/source.hpp"
#include "pg/cache.hpp"
#include "pg/harvest.hpp"
#include "pg/journal.hpp"
#include "pg/publish.hpp"
#include "pg/keys.hpp"
#include "crypto/envelope.hpp"
#include "keys/store.hpp"
#include "pg/schema.hpp"
#include "pg/shared.hpp"
#include "tests/support/http/servers.hpp"
#include "tests/support/polling.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

namespace {

namespace fs = std::filesystem;
namespace pg = sealmilter::pg;
namespace lookup = sealmilter::lookup;
using sealmilter::testing::make_identity;

std::string run_command(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    if (pclose(p) != 0) return {};
    return out;
}

using sealmilter::testing::wait_for;

// Entries of the process: open file descriptors or threads (/proc/self/fd, /proc/self/task).
size_t proc_entries(const char* what) {
    size_t n = 0;
    std::error_code ec;
    for (fs::directory_iterator it(std::string("/proc/self/") + what, ec), end; !ec && it != end; it.increment(ec)) ++n;
    return n;
}

std::string pem_of(int n) {
    return "-----BEGIN CERTIFICATE-----\nMIIB" + std::to_string(n) + "\n-----END CERTIFICATE-----\n";
}

// The publish endpoint: tests/support/http/publish_recorder.py, one file per POST received.
struct Recorder {
    std::string dir = sealmilter::testing::http::make_temp_dir("pg-publish");
    int port = sealmilter::testing::http::free_loopback_port();
    sealmilter::testing::http::Child child;
    bool start() {
        fs::create_directories(dir + "/received");
        return child.spawn({"python3", sealmilter::testing::http::support_dir() + "/publish_recorder.py",
                            std::to_string(port), dir + "/received"},
                           true, dir + "/recorder.log") &&
               child.read_line(15000) == std::to_string(port);
    }
    size_t received() const { return sealmilter::testing::count_files(dir + "/received", ".req"); }
    std::multiset<std::string> bodies() const {
        std::multiset<std::string> out;
        std::error_code ec;
        for (fs::directory_iterator it(dir + "/received", ec), end; !ec && it != end; it.increment(ec)) {
            if (it->path().extension() != ".req") continue;
            // PATH, CONTENT-TYPE, AUTHORIZATION, an empty line, the body.
            const std::string t = sealmilter::testing::http::read_text(it->path().string());
            size_t at = 0;
            for (int line = 0; line < 4 && at != std::string::npos; ++line) at = t.find('\n', at) + 1;
            out.insert(at == std::string::npos ? t : t.substr(at));
        }
        return out;
    }
    lookup::PublishOptions options(const std::string& spool) const {
        lookup::PublishOptions o;
        o.url_template = "http://127.0.0.1:" + std::to_string(port) + "/certs/{email}";
        o.queue_dir = spool;
        o.http.timeout_ms = 2000;
        o.initial_backoff_ms = 100;
        o.max_backoff_ms = 400;
        return o;
    }
};

class ManualClock final : public sealmilter::base::Clock {
public:
    explicit ManualClock(std::time_t t) : now_(t) {}
    std::time_t now() const override { return now_.load(); }
    void advance(long long s) { now_.fetch_add(static_cast<std::time_t>(s)); }

private:
    std::atomic<std::time_t> now_;
};

class PgTest : public ::testing::Test {
protected:
    static inline std::string dir_;
    static inline int port_ = 0;
    static inline int pid_ = 0;
    static inline int databases_ = 0;
    static inline bool tls_ = false;

    static std::string helper() { return std::string(SEALMILTER_SOURCE_DIR) + "/tests/support/pg_cluster.py"; }

    static void start_server(int port) {
        const std::string out = run_command("python3 " + helper() + " start " + dir_ + "/data" +
                                            (port != 0 ? " --port " + std::to_string(port) : std::string()));
        std::istringstream in(out);
        in >> port_ >> pid_;
    }

    // The suite's server serves TLS with a certificate for 127.0.0.1 from a throw-away CA
    // made here (openssl, EC P-256); a second CA that signed nothing is the wrong one.
    static bool make_tls() {
        const std::string d = dir_;
        const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
        const std::string cmd =
            "cd " + d + " && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
            " && openssl req -x509" + ec + "-keyout ca.key -out ca.pem -days 2 -subj /CN=sealmilter-test-db-ca"
            " && openssl req -x509" + ec + "-keyout wrong-ca.key -out wrong-ca.pem -days 2 -subj /CN=sealmilter-test-db-ca"
            " && openssl req" + ec + "-keyout server.key -out server.csr -subj /CN=127.0.0.1"
            " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2"
            " -extfile san.ext && python3 " + helper() + " init " + d + "/data --tls server.pem server.key"
            " && echo made";
        return run_command("(" + cmd + ") 2>/dev/null").find("made") != std::string::npos;
    }

    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/sealmilter-pg-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
        tls_ = make_tls();
        start_server(0);
    }

    static void TearDownTestSuite() {
        if (pid_ > 0) run_command("python3 " + helper() + " stop " + std::to_string(pid_));
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    static std::string dsn(const std::string& db) {
        return "host=127.0.0.1 port=" + std::to_string(port_) + " user=sealmilter dbname=" + db;
    }

    // A fresh database for this test, migrated; its pool.
    std::shared_ptr<pg::Pool> fresh(size_t max_connections = 4, long timeout_ms = 3000) {
        ASSERT_GT_PORT();
        db_ = "t" + std::to_string(getpid()) + "_" + std::to_string(++databases_);
        pg::Pool admin({dsn("postgres"), 1, 10000, 1000, "test"});
        EXPECT_EQ(admin.run([&](pg::Conn& c) { c.exec("CREATE DATABASE " + db_); }), "");
        auto pool = std::make_shared<pg::Pool>(pg::PoolOptions{dsn(db_), max_connections, timeout_ms, 200, "test"});
        const pg::MigrateResult r = pg::migrate(*pool, 10000);
        EXPECT_EQ(r.error, "");
        return pool;
    }

    void ASSERT_GT_PORT() const { ASSERT_GT(port_, 0) << "PostgreSQL did not start (see " << dir_ << "/data/server.log)"; }

    std::string db_;
};

TEST_F(PgTest, MigrationCreatesTheSchemaOnceAndRefusesANewerOne) {
    auto pool = fresh();
    pg::MigrateResult again = pg::migrate(*pool, 10000);
    EXPECT_EQ(again.error, "");
    EXPECT_EQ(again.from, pg::schema_version());
    EXPECT_EQ(pg::inspect(*pool, 10000).from, pg::schema_version());
    // Two nodes starting at once: both succeed, the schema is made once.
    std::string e1, e2;
    std::thread t([&] { e1 = pg::migrate(*pool, 10000).error; });
    e2 = pg::migrate(*pool, 10000).error;
    t.join();
    EXPECT_EQ(e1, "");
    EXPECT_EQ(e2, "");
    EXPECT_EQ(pool->run([](pg::Conn& c) { c.exec("UPDATE sealmilter_schema SET version = 99"); }), "");
    const pg::MigrateResult newer = pg::migrate(*pool, 10000);
    EXPECT_NE(newer.error.find("newer than this program's"), std::string::npos) << newer.error;
    EXPECT_EQ(newer.from, 99);
}

TEST_F(PgTest, CacheEntriesWrittenOnOneNodeServeTheOther) {
    auto pool = fresh();
    ManualClock clock(1'800'000'000);
    pg::PgCacheOptions o;
    o.clock = &clock;
    pg::PgCache node_a(pool, o);
    pg::PgCache node_b(std::make_shared<pg::Pool>(pool->options()), o);  // its own connections
    const auto bob = make_identity({.email = "bob@partner.example", .days_valid = 36500});
    node_a.put_positive("Bob@Partner.Example", {bob.cert}, "directory", 7200, std::nullopt, "\"v1\"");
    node_a.put_negative("nobody@partner.example", "directory", "HTTP 404");
    const auto hit = node_b.get("bob@partner.example");
    ASSERT_TRUE(hit.has_value());
    EXPECT_FALSE(hit->negative);
    ASSERT_EQ(hit->certificates.size(), 1u);
    EXPECT_EQ(hit->certificates[0].fingerprint_sha256(), bob.cert.fingerprint_sha256());
    EXPECT_EQ(hit->etag, "\"v1\"");
    EXPECT_EQ(hit->expires_at, clock.now() + 7200);
    const auto neg = node_b.get("nobody@partner.example");
    ASSERT_TRUE(neg.has_value());
    EXPECT_TRUE(neg->negative);
    EXPECT_EQ(neg->reason, "HTTP 404");
    EXPECT_EQ(neg->expires_at, clock.now() + 3600);  // negative_ttl, the same rule on every node
    // Revalidated on B: fresh again for A, stale window kept.
    clock.advance(8000);
    EXPECT_FALSE(node_a.get("bob@partner.example")->fresh(clock.now()));
    node_b.revalidated("bob@partner.example", 3600);
    const auto again = node_a.get("bob@partner.example");
    ASSERT_TRUE(again.has_value());
    EXPECT_TRUE(again->fresh(clock.now()));
    EXPECT_EQ(again->stale_until - again->expires_at, hit->stale_until - hit->expires_at);
    EXPECT_EQ(node_a.list().size(), 2u);
    EXPECT_EQ(node_b.purge("BOB@partner.example"), 1);
    EXPECT_FALSE(node_a.get("bob@partner.example").has_value());
    EXPECT_EQ(node_a.purge_all(), 1);
    EXPECT_TRUE(node_a.list().empty());
    EXPECT_TRUE(node_a.healthy());
    EXPECT_TRUE(node_b.healthy());
}

TEST_F(PgTest, ConcurrentWritersOnTwoNodesNeverLeaveATornEntry) {
    auto pool = fresh(4);
    auto pool_b = std::make_shared<pg::Pool>(pool->options());
    pg::PgCache a(pool, {});
    pg::PgCache b(pool_b, {});
    const auto one = make_identity({.email = "carol@partner.example", .serial = 11});
    const auto two = make_identity({.email = "carol@partner.example", .serial = 12});
    std::atomic<int> bad{0};
    const auto writer = [&](pg::PgCache& cache, const sealmilter::crypto::Certificate& cert, bool negative) {
        for (int i = 0; i < 40; ++i) {
            if (negative && i % 3 == 0)
                cache.put_negative("carol@partner.example", "directory", "HTTP 404");
            else
                cache.put_positive("carol@partner.example", {cert}, "directory", 600, std::nullopt, "");
            const auto e = cache.get("carol@partner.example");
            if (!e || (!e->negative && e->certificates.size() != 1)) ++bad;
        }
    };
    std::thread t1(writer, std::ref(a), one.cert, false);
    std::thread t2(writer, std::ref(b), two.cert, true);
    std::thread t3(writer, std::ref(a), two.cert, false);
    writer(b, one.cert, false);
    t1.join();
    t2.join();
    t3.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_TRUE(a.healthy());
    EXPECT_TRUE(b.healthy());
}

TEST_F(PgTest, HarvestedOnOneNodeIsFoundByTheOthersSource) {
    auto pool = fresh();
    pg::PgHarvestStore a(pool);
    const auto dave = make_identity({.email = "dave@partner.example"});
    a.save({"Dave@Partner.Example", dave.cert, 100, 200, {"aes256-gcm", "aes256-cbc"}, "ab:cd", true});
    a.save({"dave@partner.example", dave.cert, 50, 150, {"aes256-cbc"}, "ab:cd", false});  // an older copy
    lookup::HarvestSource b(std::make_shared<pg::PgHarvestStore>(std::make_shared<pg::Pool>(pool->options())));
    lookup::Query q;
    q.email = "dave@partner.example";
    const lookup::SourceAnswer answer = b.lookup(q);
    ASSERT_EQ(answer.outcome, lookup::Outcome::Found) << answer.reason;
    ASSERT_EQ(answer.candidates.size(), 1u);
    EXPECT_EQ(answer.candidates[0].fingerprint_sha256(), dave.cert.fingerprint_sha256());
    EXPECT_EQ(answer.capabilities, (std::vector<std::string>{"aes256-cbc"}));
    const auto recs = a.records("dave@partner.example");
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].first_seen, 50);  // the earliest
    EXPECT_EQ(recs[0].last_seen, 200);  // the latest
    q.email = "erin@partner.example";
    EXPECT_EQ(b.lookup(q).outcome, lookup::Outcome::NotFound);
}

TEST_F(PgTest, TheJournalIsSharedByTheNodes) {
    auto pool = fresh();
    pg::PgJournal a(pool, "node-a");
    pg::PgJournal b(std::make_shared<pg::Pool>(pool->options()), "node-b");
    std::string error;
    EXPECT_EQ(b.contains("k1", &error), sealmilter::milter::Journal::Seen::No);
    EXPECT_TRUE(a.record("k1", &error)) << error;
    EXPECT_TRUE(a.record("k1", &error)) << error;  // a second writer of the same key is harmless
    EXPECT_EQ(b.contains("k1", &error), sealmilter::milter::Journal::Seen::Yes);
    EXPECT_EQ(b.contains("k2", &error), sealmilter::milter::Journal::Seen::No);
    EXPECT_EQ(pool->run([](pg::Conn& c) { c.exec("UPDATE sealmilter_journal SET recorded_at = 1"); }), "");
    EXPECT_EQ(b.contains("k1", &error), sealmilter::milter::Journal::Seen::No);  // older than max_age
    EXPECT_EQ(a.prune(), 1u);
}

TEST_F(PgTest, ASlowDatabaseIsAMissWithinTheTimeoutAndThePoolIsBounded) {
    auto pool = fresh(1, 600);
    pg::PgCache cache(pool, {});
    const auto bob = make_identity({.email = "bob@partner.example"});
    cache.put_positive("bob@partner.example", {bob.cert}, "directory", 600, std::nullopt, "");
    ASSERT_TRUE(cache.get("bob@partner.example").has_value());
    // Another session holds the table locked: the cache's statement cannot finish.
    pg::Pool locker({dsn(db_), 1, 20000, 200, "locker"});
    std::atomic<bool> locked{false};
    std::atomic<bool> release{false};
    std::thread holder([&] {
        locker.run([&](pg::Conn& c) {
            c.exec("BEGIN");
            c.exec("LOCK TABLE sealmilter_cache IN ACCESS EXCLUSIVE MODE");
            locked = true;
            for (int i = 0; i < 400 && !release; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
            c.exec("COMMIT");
        });
    });
    for (int i = 0; i < 400 && !locked; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    ASSERT_TRUE(locked.load());
    std::vector<std::string> errors;
    pg::PgCacheOptions o;
    o.on_error = [&](const std::string& e) { errors.push_back(e); };
    pg::PgCache slow(pool, o);
    EXPECT_FALSE(slow.get("bob@partner.example").has_value());  // a miss, not a wait for the lock
    EXPECT_FALSE(slow.healthy());
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find("timed out"), std::string::npos) << errors[0];
    // The pool has one connection: while a call holds it, another gives up within the timeout.
    std::string second;
    const std::string first = pool->run([&](pg::Conn&) { second = pool->run([](pg::Conn& c) { c.exec("SELECT 1"); }); });
    EXPECT_EQ(first, "");
    EXPECT_NE(second.find("no free database connection"), std::string::npos) << second;
    release = true;
    holder.join();
    EXPECT_TRUE(slow.get("bob@partner.example").has_value());  // the lock is gone: answering again
    EXPECT_TRUE(slow.healthy());
    EXPECT_EQ(errors.back(), "certificate cache (PostgreSQL): answering again");
}

TEST_F(PgTest, DsnFileAndSelection) {
    const std::string f = dir_ + "/dsn";
    std::ofstream(f) << "# the shared database\n\n  " << dsn("postgres") << "  \n";
    EXPECT_EQ(pg::read_dsn_file(f), dsn("postgres"));
    std::ofstream(f, std::ios::trunc) << "# nothing\n";
    EXPECT_THROW(pg::read_dsn_file(f), std::runtime_error);
    EXPECT_THROW(pg::read_dsn_file(dir_ + "/absent"), std::runtime_error);
    const pg::Selection s = pg::parse_selection({"cache", "journal"});
    EXPECT_TRUE(s.cache);
    EXPECT_TRUE(s.journal);
    EXPECT_FALSE(s.harvest);
    EXPECT_TRUE(pg::parse_selection({"cache", "keys"}).keys);  // the key store (pg/keys.hpp)
    EXPECT_THROW(pg::parse_selection({"cache", "nonsense"}), pg::SharedStateError);
    EXPECT_TRUE(pg::parse_selection({"publish"}).publish);  // also without directory.publish_url
    EXPECT_TRUE(pg::parse_selection({"publish"}).any());
}

// TLS to PostgreSQL (issue 16): the connection string in database.dsn_file asks for
// sslmode=verify-full with the CA that signed the server's certificate: the backends work over
// TLS. The wrong CA, or a host name the certificate does not name, is refused with libpq's
// reason (the call fails: verify-full never falls back to plaintext or to an unverified server).
TEST_F(PgTest, TlsVerifyFullThroughTheDsnFileAndAWrongCaIsRefused) {
    ASSERT_TRUE(tls_) << "the throw-away CA or the server's TLS set-up failed (openssl, " << dir_ << ")";
    auto plain = fresh();
    const auto pool_for = [&](const std::string& name, const std::string& conn) {
        const std::string file = dir_ + "/" + name;
        std::ofstream(file) << "# the shared state, over TLS\n" << conn << "\n";
        return pg::make_pool({file, 2, 3000});
    };
    const std::string tls = " sslmode=verify-full sslrootcert=" + dir_ + "/ca.pem";
    auto pool = pool_for("dsn-tls", dsn(db_) + tls);
    std::string ssl;
    std::string version;
    EXPECT_EQ(pool->run([&](pg::Conn& c) {
        pg::Rows r = c.exec("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
        ASSERT_EQ(r.size(), 1);
        ssl = r.text(0, 0);
        version = r.text(0, 1);
    }), "");
    EXPECT_EQ(ssl, "t");
    EXPECT_EQ(version.rfind("TLSv1.", 0), 0u) << version;
    pg::PgJournal journal(pool, "node-tls");
    std::string error;
    EXPECT_TRUE(journal.record("over-tls", &error)) << error;
    EXPECT_EQ(pg::PgJournal(plain, "node-plain").contains("over-tls", &error), sealmilter::milter::Journal::Seen::Yes);

    const std::string wrong = " sslmode=verify-full sslrootcert=" + dir_ + "/wrong-ca.pem";
    auto bad = pool_for("dsn-wrong-ca", dsn(db_) + wrong);
    const std::string refused = bad->run([](pg::Conn& c) { c.exec("SELECT 1"); });
    EXPECT_NE(refused.find("certificate verify failed"), std::string::npos) << refused;
    std::string named = dsn(db_) + tls;
    named.replace(named.find("host=127.0.0.1"), 14, "host=localhost");  // the certificate names 127.0.0.1 only
    auto other_name = pool_for("dsn-wrong-name", named);
    const std::string mismatch = other_name->run([](pg::Conn& c) { c.exec("SELECT 1"); });
    EXPECT_NE(mismatch.find("does not match host name"), std::string::npos) << mismatch;
}

// database.shared = publish: one queue for the nodes. A certificate queued by two nodes is
// one row; two nodes claiming at once never get the same row (FOR UPDATE SKIP LOCKED); a
// failure keeps the row with a doubling back-off; a claimed row another node holds comes
// back only after the lease.
TEST_F(PgTest, PublishQueueClaimsEachEntryOnceAndKeepsTheBackoff) {
    auto pool = fresh(4, 3000);
    auto pool_b = std::make_shared<pg::Pool>(pg::PoolOptions{dsn(db_), 4, 3000, 200, "test-b"});
    pg::PgPublishQueue a(pool, {"node-a", 100, 400, 60000});
    pg::PgPublishQueue b(pool_b, {"node-b", 100, 400, 60000});
    for (int i = 0; i < 40; ++i) ASSERT_EQ((i % 2 == 0 ? a : b).add("u" + std::to_string(i) + "@partner.example", pem_of(i)), "");
    EXPECT_EQ(b.add("u0@partner.example", pem_of(0)), "");  // harvested on the other node too: no second row
    std::vector<long long> got_a, got_b;
    const auto drain = [](pg::PgPublishQueue& q, std::vector<long long>& got) {
        for (int n = 0; n < 100; ++n) {
            lookup::SharedPublishQueue::Entry e;
            bool claimed = false;
            if (!q.claim(e, claimed).empty() || !claimed) return;
            EXPECT_EQ(e.pem, pem_of(std::stoi(e.email.substr(1, e.email.find('@') - 1))));
            got.push_back(e.id);
        }
    };
    std::thread t([&] { drain(b, got_b); });
    drain(a, got_a);
    t.join();
    std::set<long long> all(got_a.begin(), got_a.end());
    all.insert(got_b.begin(), got_b.end());
    EXPECT_EQ(got_a.size() + got_b.size(), 40u);  // each row claimed once ...
    EXPECT_EQ(all.size(), 40u);                    // ... by one node
    long long due = -2;
    EXPECT_EQ(a.due_in(due), "");
    EXPECT_GT(due, 50000);  // all leased (60 s)
    for (const long long id : all) EXPECT_EQ(a.done(id), "");
    EXPECT_EQ(a.due_in(due), "");
    EXPECT_EQ(due, -1);  // empty

    // The back-off: 100, 200, 400, 400 ms, kept in the row (any node sees it).
    ASSERT_EQ(a.add("r@partner.example", pem_of(99)), "");
    const long expected[] = {100, 200, 400, 400};
    for (const long want : expected) {
        lookup::SharedPublishQueue::Entry e;
        bool claimed = false;
        std::string why;
        ASSERT_TRUE(wait_for([&] { return (why = b.claim(e, claimed)).empty() && claimed; }, 5000)) << why;
        long backoff = 0;
        EXPECT_EQ(b.failed(e.id, "HTTP 503", backoff), "");
        EXPECT_EQ(backoff, want);
        bool early = true;
        EXPECT_EQ(a.claim(e, early), "");
        EXPECT_FALSE(early) << "claimed during its back-off";
    }
    EXPECT_EQ(pool->run([](pg::Conn& c) {
        pg::Rows r = c.exec("SELECT attempts, last_error FROM sealmilter_publish");
        ASSERT_EQ(r.size(), 1);
        EXPECT_EQ(r.integer(0, 0), 4);
        EXPECT_EQ(r.text(0, 1), "HTTP 503");
    }), "");

    // A node that dies holding a claim: the row comes back after the lease, to another node.
    pg::PgPublishQueue short_lease(pool, {"node-c", 100, 400, 300});
    ASSERT_EQ(short_lease.add("l@partner.example", pem_of(77)), "");
    lookup::SharedPublishQueue::Entry held;
    bool claimed = false;
    ASSERT_TRUE(wait_for([&] { return short_lease.claim(held, claimed).empty() && claimed && held.email == "l@partner.example"; }, 5000));
    lookup::SharedPublishQueue::Entry other;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // past the lease (and r@'s back-off)
    std::set<std::string> back;
    for (int i = 0; i < 2 && b.claim(other, claimed).empty() && claimed; ++i) back.insert(other.email);
    EXPECT_EQ(back.count("l@partner.example"), 1u);
}

// Two daemons' publishers (each with its own spool) sharing the queue: every certificate,
// including one harvested on both nodes, reaches the directory exactly once.
TEST_F(PgTest, PublishersOnTwoNodesPublishEachCertificateOnce) {
    auto pool = fresh(4, 3000);
    auto pool_b = std::make_shared<pg::Pool>(pg::PoolOptions{dsn(db_), 4, 3000, 200, "test-b"});
    Recorder rec;
    ASSERT_TRUE(rec.start());
    std::vector<std::string> log;
    std::mutex log_mutex;
    const auto logger = [&](const std::string& l) {
        const std::lock_guard<std::mutex> lock(log_mutex);
        log.push_back(l);
    };
    {
        lookup::PublishOptions oa = rec.options(rec.dir + "/spool-a");
        oa.shared = std::make_shared<pg::PgPublishQueue>(pool, pg::PgPublishOptions{"node-a", 100, 400, 60000});
        lookup::PublishOptions ob = rec.options(rec.dir + "/spool-b");
        ob.shared = std::make_shared<pg::PgPublishQueue>(pool_b, pg::PgPublishOptions{"node-b", 100, 400, 60000});
        // Queued while both publishers were down (6..11 harvested on both nodes) ...
        for (int i = 0; i < 12; ++i) {
            ASSERT_EQ(oa.shared->add("p" + std::to_string(i) + "@partner.example", pem_of(i)), "");
            ASSERT_EQ(ob.shared->add("p" + std::to_string(i + 6) + "@partner.example", pem_of(i + 6)), "");
        }
        // ... and both start at once; each also gets two new ones (queued by the other's
        // publisher's thread as much as by its own).
        lookup::Publisher node_a(oa, logger);
        lookup::Publisher node_b(ob, logger);
        node_a.enqueue("p18@partner.example", pem_of(18));
        node_b.enqueue("p19@partner.example", pem_of(19));
        EXPECT_TRUE(wait_for([&] { return rec.received() >= 20; }, 30000)) << rec.received();
        long long due = 0;
        EXPECT_TRUE(wait_for([&] { return oa.shared->due_in(due).empty() && due == -1; }, 10000));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // anything late would arrive now
        EXPECT_EQ(sealmilter::testing::count_files(rec.dir + "/spool-a", ".req") + sealmilter::testing::count_files(rec.dir + "/spool-b", ".req"), 0u);
    }
    const std::multiset<std::string> bodies = rec.bodies();
    EXPECT_EQ(bodies.size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(bodies.count(pem_of(i)), 1u) << i;
    std::error_code ec;
    fs::remove_all(rec.dir, ec);
}

// The pool under database restarts and concurrent load (the soak's suspect for a daemon that
// stopped): connections to a server that went away are closed, never piled up; the number of
// open descriptors comes back to where it was plus at most the pool's idle connections, and
// the pool starts no thread of its own.
TEST_F(PgTest, ZyRestartsUnderLoadLeaveDescriptorsAndThreadsBounded) {
    auto pool = fresh(4, 1000);
    pg::PgJournal journal(pool, "node-a");
    pg::PgPublishQueue queue(pool, {"node-a", 100, 400, 60000});
    std::string error;
    ASSERT_TRUE(journal.record("warm", &error)) << error;
    const size_t fds_before = proc_entries("fd");
    const size_t threads_before = proc_entries("task");
    std::atomic<bool> stop{false};
    std::atomic<long> ok{0};
    std::atomic<long> failed{0};
    std::vector<std::thread> load;
    for (int t = 0; t < 8; ++t) {
        load.emplace_back([&, t] {
            for (long i = 0; !stop.load(); ++i) {
                std::string e;
                const bool good = t % 2 == 0 ? journal.contains("warm", &e) != sealmilter::milter::Journal::Seen::Unknown
                                             : queue.add("z" + std::to_string(t) + "@x.example", pem_of(static_cast<int>(i % 50))).empty();
                (good ? ok : failed).fetch_add(1);
                if (!good) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        });
    }
    const size_t fds_loaded = proc_entries("fd");
    size_t peak = fds_loaded;
    for (int restart = 0; restart < 2; ++restart) {
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
        run_command("python3 " + helper() + " stop " + std::to_string(pid_));
        const int port = port_;
        pid_ = 0;
        for (int i = 0; i < 10; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            peak = std::max(peak, proc_entries("fd"));
        }
        start_server(port);
        ASSERT_EQ(port_, port) << "PostgreSQL did not come back on its port";
    }
    ASSERT_TRUE(wait_for([&] { return journal.contains("warm", &error) == sealmilter::milter::Journal::Seen::Yes; }, 5000))
        << error;
    const long ok_before_end = ok.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    stop = true;
    for (std::thread& t : load) t.join();
    EXPECT_GT(ok.load(), ok_before_end) << "the pool did not recover";
    EXPECT_GT(failed.load(), 0) << "the restarts were not seen";
    // The 8 load threads, run_command's pipes and the pool's <= 4 connections at most.
    EXPECT_LE(peak, fds_before + 4 + 8) << "fds during the outages";
    EXPECT_LE(proc_entries("fd"), fds_before + 4);
    EXPECT_EQ(proc_entries("task"), threads_before);
}

// --- the key store on PostgreSQL (database.shared = keys) ---------------------------------------

namespace keys = sealmilter::keys;
namespace crypto = sealmilter::crypto;

using sealmilter::testing::der_of_private;
using sealmilter::testing::private_component;

std::string to_hex(const std::string& bytes) {
    static const char* const kHex = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        out += kHex[static_cast<unsigned char>(c) >> 4];
        out += kHex[static_cast<unsigned char>(c) & 15];
    }
    return out;
}

std::string envelope_to(const crypto::Certificate& to, const std::string& content) {
    crypto::StringSink der;
    crypto::EnvelopeWriter w({to}, {}, der);
    w.write(content.data(), content.size());
    w.finish();
    return der.out;
}

std::string open_with(const keys::KeyRing& ring, const std::string& der) {
    std::vector<crypto::RecipientId> ids;
    if (crypto::inspect_envelope(der, ids).status != crypto::DecryptStatus::Ok) return "(not an envelope)";
    for (const crypto::RecipientId& id : ids) {
        for (const keys::KeyEntry& e : ring.find(id)) {
            std::string error;
            const keys::PrivateKey k = ring.private_key(*e, &error);
            if (!k) return "(no private key: " + error + ")";
            crypto::BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
            crypto::StringSink out;
            if (crypto::decrypt_envelope(in.get(), *k, out).status == crypto::DecryptStatus::Ok) return out.out;
        }
    }
    return "(no key)";
}

std::vector<crypto::KeyMaterial> materials(std::initializer_list<const sealmilter::testing::TestIdentity*> ids) {
    std::vector<crypto::KeyMaterial> out;
    for (const auto* id : ids) out.push_back(id->material());
    return out;
}

class PgKeysTest : public PgTest {
protected:
    void SetUp() override {
        master_ = dir_ + "/master-" + std::to_string(getpid()) + "-" + std::to_string(++masters_);
        std::string error;
        ASSERT_TRUE(keys::create_master_key_file(master_, &error)) << error;
    }
    void TearDown() override { fs::remove(master_); }

    // One node's view: its own pool over the test's database, the store in PostgreSQL.
    keys::StoreOptions node(const std::shared_ptr<pg::Pool>& pool) const {
        keys::StoreOptions o;
        o.dir = dir_ + "/unused-keys-dir";  // never written: the storage is PostgreSQL
        o.master_key_file = master_;
        o.storage = pg::key_storage(std::make_shared<pg::Pool>(pool->options()));
        return o;
    }
    static std::shared_ptr<keys::KeyStore> open(const keys::StoreOptions& o) {
        std::string error;
        auto s = keys::KeyStore::open(o, &error);
        EXPECT_TRUE(s) << error;
        return s;
    }

    std::string master_;
    static inline int masters_ = 0;
};

TEST_F(PgKeysTest, AKeyImportedOnOneNodeOpensMailOnTheOtherAfterReopening) {
    auto pool = fresh();
    const keys::StoreOptions a = node(pool);
    const keys::StoreOptions b = node(pool);
    const auto b_before = open(b);
    ASSERT_TRUE(b_before);
    EXPECT_EQ(b_before->size(), 0u);
    const auto staff = make_identity({.email = "staff@bank.example", .serial = 501});
    std::string error;
    {
        auto store = open(a);
        ASSERT_TRUE(store);
        ASSERT_TRUE(store->import_keys(materials({&staff}), &error)) << error;
        EXPECT_EQ(store->size(), 1u);
    }
    EXPECT_EQ(b_before->size(), 0u);  // a node sees changes when it reopens (SIGHUP)
    const auto b_after = open(b);
    ASSERT_EQ(b_after->size(), 1u);
    const keys::KeyEntry e = b_after->for_address("staff@bank.example").front();
    EXPECT_EQ(e->location.rfind("postgresql:", 0), 0u) << e->location;
    EXPECT_EQ(open_with(*b_after, envelope_to(staff.cert, "to staff, opened on node B")), "to staff, opened on node B");
    // Nothing was written to keys.dir on either node.
    EXPECT_FALSE(fs::exists(a.dir));
    // State changes and rewrap go through the database too.
    ASSERT_TRUE(b_after->set_state(e->id, keys::KeyState::Retired, &error)) << error;
    EXPECT_EQ(open(a)->for_address("staff@bank.example").front()->state, keys::KeyState::Retired);
    const std::string fresh_master = master_ + ".new";
    ASSERT_TRUE(keys::create_master_key_file(fresh_master, &error)) << error;
    const std::optional<keys::MasterKey> key = keys::read_master_key(fresh_master, &error);
    ASSERT_TRUE(key) << error;
    ASSERT_TRUE(open(a)->rewrap(*key, &error)) << error;
    EXPECT_FALSE(keys::KeyStore::open(b, &error));  // the old master key no longer opens it
    EXPECT_NE(error.find("does not open the key store"), std::string::npos) << error;
    keys::StoreOptions b_new = b;
    b_new.master_key_file = fresh_master;
    const auto rewrapped = open(b_new);
    EXPECT_EQ(open_with(*rewrapped, envelope_to(staff.cert, "after rewrap")), "after rewrap");
    long long texts = -1;
    EXPECT_EQ(pool->run([&](pg::Conn& c) { texts = c.exec("SELECT count(*) FROM sealmilter_key_texts").integer(0, 0); }), "");
    EXPECT_EQ(texts, 1);  // the superseded generation is gone
    fs::remove(fresh_master);
}

// Issue 16: "the database never sees a key in the clear". Every row of every table, as text
// and (bytea columns) as raw bytes, is searched for PEM/DER private key markers, each key's
// DER and its private component.
TEST_F(PgKeysTest, NoKeyBytesInTheClearInAnyTable) {
    auto pool = fresh();
    const auto rsa = make_identity({.email = "rsa@bank.example", .serial = 601});
    const auto ec = make_identity({.email = "ec@bank.example", .key = "ec-p256", .serial = 602});
    std::string error;
    ASSERT_TRUE(open(node(pool))->import_keys(materials({&rsa, &ec}), &error)) << error;
    std::string dump;
    std::string raw;
    ASSERT_EQ(pool->run([&](pg::Conn& c) {
                  pg::Rows tables = c.exec("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
                  for (int i = 0; i < tables.size(); ++i) {
                      const std::string t = tables.text(i, 0);
                      pg::Rows rows = c.exec("SELECT t::text FROM " + t + " t");
                      for (int r = 0; r < rows.size(); ++r) dump += rows.text(r, 0) + "\n";
                  }
                  pg::Rows idx = c.exec("SELECT body FROM sealmilter_key_index");
                  for (int r = 0; r < idx.size(); ++r) raw += idx.bytes(r, 0);
                  pg::Rows texts = c.exec("SELECT body FROM sealmilter_key_texts");
                  for (int r = 0; r < texts.size(); ++r) raw += texts.bytes(r, 0);
              }),
              "");
    ASSERT_NE(dump.find(to_hex("sealmilter-keys 2")), std::string::npos);  // the index is there (bytea as hex)
    ASSERT_NE(raw.find("sealmilter-keys 2"), std::string::npos);
    ASSERT_NE(raw.find("wrapped "), std::string::npos);            // and the wrapped keys
    for (const std::string& where : {dump, raw}) {
        EXPECT_EQ(where.find("PRIVATE KEY"), std::string::npos);
        for (const auto* id : {&rsa, &ec}) {
            const std::string der = der_of_private(id->key.get());
            const std::string priv = private_component(id->key.get());
            ASSERT_FALSE(priv.empty());
            EXPECT_EQ(where.find(der), std::string::npos);
            EXPECT_EQ(where.find(priv), std::string::npos);
            EXPECT_EQ(where.find(to_hex(der)), std::string::npos);
            EXPECT_EQ(where.find(to_hex(priv)), std::string::npos);
        }
    }
}

// Two writers on two nodes: the one whose index is no longer current is refused (nothing
// lost, nothing half-written) and succeeds when run again.
TEST_F(PgKeysTest, AWriterOnAnotherNodeMeanwhileMakesTheChangeRetryNotLoseAKey) {
    auto pool = fresh();
    const keys::StoreOptions a = node(pool);
    const keys::StoreOptions b = node(pool);
    const auto one = make_identity({.email = "one@bank.example", .serial = 701});
    const auto two = make_identity({.email = "two@bank.example", .serial = 702});
    std::string error;
    auto store_b = open(b);
    store_b->set_before_index_hook([&] {
        std::string e;
        EXPECT_TRUE(open(a)->import_keys(materials({&one}), &e)) << e;  // node A commits first
    });
    EXPECT_FALSE(store_b->import_keys(materials({&two}), &error));
    EXPECT_NE(error.find("changed by another writer"), std::string::npos) << error;
    EXPECT_EQ(open(b)->size(), 1u);  // A's key, whole
    store_b->set_before_index_hook({});
    ASSERT_TRUE(store_b->import_keys(materials({&two}), &error)) << error;
    const auto both = open(a);
    EXPECT_EQ(both->size(), 2u);
    EXPECT_EQ(open_with(*both, envelope_to(one.cert, "one")), "one");
    EXPECT_EQ(open_with(*both, envelope_to(two.cert, "two")), "two");
}

// Last (gtest runs a suite's tests in order): stops and restarts the suite's server.
TEST_F(PgTest, ZzServerDownMissesFailsAndRecoversWithoutARestart) {
    auto pool = fresh(2, 2000);
    std::vector<std::string> errors;
    pg::PgCacheOptions o;
    o.on_error = [&](const std::string& e) { errors.push_back(e); };
    pg::PgCache cache(pool, o);
    pg::PgJournal journal(pool, "node-a");
    lookup::HarvestSource harvest(std::make_shared<pg::PgHarvestStore>(pool));
    const auto bob = make_identity({.email = "bob@partner.example"});
    cache.put_positive("bob@partner.example", {bob.cert}, "directory", 600, std::nullopt, "");
    std::make_shared<pg::PgHarvestStore>(pool)->save({"bob@partner.example", bob.cert, 1, 2, {}, "", false});
    std::string error;
    ASSERT_TRUE(journal.record("k", &error)) << error;
    Recorder rec;
    ASSERT_TRUE(rec.start());
    lookup::PublishOptions po = rec.options(rec.dir + "/spool");
    po.shared = std::make_shared<pg::PgPublishQueue>(pool, pg::PgPublishOptions{"node-a", 100, 400, 60000});
    auto publisher = lookup::Publisher::without_thread(po, [](const std::string&) {});

    run_command("python3 " + helper() + " stop " + std::to_string(pid_));
    const int port = port_;
    pid_ = 0;
    EXPECT_FALSE(cache.get("bob@partner.example").has_value());  // a miss: the other sources answer
    EXPECT_FALSE(cache.healthy());
    cache.put_negative("x@partner.example", "directory", "HTTP 404");  // a no-op, no exception
    EXPECT_EQ(errors.size(), 1u);  // one line per outage, not one per call
    lookup::Query q;
    q.email = "bob@partner.example";
    EXPECT_EQ(harvest.lookup(q).outcome, lookup::Outcome::TempError);  // a failed source (SPEC §7)
    EXPECT_EQ(journal.contains("k", &error), sealmilter::milter::Journal::Seen::Unknown);
    EXPECT_FALSE(journal.record("k2", &error));
    EXPECT_FALSE(error.empty());
    // The publish queue: what is harvested meanwhile stays in this node's spool, and this
    // node publishes it itself.
    publisher->enqueue("down@partner.example", pem_of(1));
    EXPECT_EQ(sealmilter::testing::count_files(rec.dir + "/spool", ".req"), 1u);
    EXPECT_GE(publisher->flush_once(), 1u);  // the shared queue's content is unknown meanwhile
    EXPECT_EQ(sealmilter::testing::count_files(rec.dir + "/spool", ".req"), 0u);
    EXPECT_EQ(rec.received(), 1u);
    publisher->enqueue("later@partner.example", pem_of(2));
    EXPECT_EQ(sealmilter::testing::count_files(rec.dir + "/spool", ".req"), 1u);

    start_server(port);
    ASSERT_EQ(port_, port) << "PostgreSQL did not come back on its port";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the pool's retry_after
    EXPECT_TRUE(cache.get("bob@partner.example").has_value());
    EXPECT_TRUE(cache.healthy());
    EXPECT_EQ(journal.contains("k", &error), sealmilter::milter::Journal::Seen::Yes);
    EXPECT_EQ(harvest.lookup(q).outcome, lookup::Outcome::Found);
    // The spool moves into the shared queue and is published from there; nothing left.
    EXPECT_EQ(publisher->flush_once(), 0u);
    EXPECT_EQ(sealmilter::testing::count_files(rec.dir + "/spool", ".req"), 0u);
    EXPECT_EQ(rec.received(), 2u);
    const std::multiset<std::string> bodies = rec.bodies();
    EXPECT_EQ(bodies.count(pem_of(1)) + bodies.count(pem_of(2)), 2u);
    long long due = 0;
    EXPECT_EQ(po.shared->due_in(due), "");
    EXPECT_EQ(due, -1);
    std::error_code ec;
    fs::remove_all(rec.dir, ec);
}

}  // namespace

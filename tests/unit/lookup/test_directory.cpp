// tests/unit/lookup/test_directory.cpp — the directory HTTP API source (lookup/directory.hpp).
//
// ExpandUrl*, ParseDirectoryResponse*: pure, table-driven.
// DirectoryNginx*: a real nginx (TLS, HTTP/2) on 127.0.0.1 serving JSON / PEM / DER answers,
//   404, 410, ETag/304, bearer-token auth (tests/support/http/start_nginx.sh).
// DirectoryFault*: tests/support/http/fault_server.py for what nginx will not do (hangs, cut
//   bodies, lying lengths, junk, bombs, redirects).
// Servers listen on loopback only and are stopped by PID at the end of each suite.
#include "lookup/directory.hpp"
#include "lookup/http.hpp"
#include "lookup/publisher.hpp"
#include "lookup/registry.hpp"

#include "tests/support/http/servers.hpp"
#include "tests/support/test_pki.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <chrono>
#include <iostream>
#include <random>
#include <set>
#include <thread>

namespace sealmilter::lookup {
namespace {

namespace http = sealmilter::testing::http;
using Clock = std::chrono::steady_clock;

Query with_etag(const std::string& email, std::string etag) {
    Query q = make_query(email);
    q.if_none_match = std::move(etag);
    return q;
}

std::string to_pem(const crypto::Certificate& c) {
    crypto::BIO_ptr b(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(b.get(), c.native());
    char* data = nullptr;
    const long n = BIO_get_mem_data(b.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

std::string to_der(const crypto::Certificate& c) {
    const std::vector<unsigned char> d = c.der();
    return std::string(d.begin(), d.end());
}

std::string json_answer(const std::vector<crypto::Certificate>& certs) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : certs) list.push_back({{"pem", to_pem(c)}, {"note", "ignored"}});
    return nlohmann::json{{"certificates", list}, {"version", 1}}.dump();
}

crypto::Certificate cert_for(const std::string& email) {
    testing::CertSpec spec;
    spec.email = email;
    spec.key = "ec-p256";  // fast to make
    return testing::make_identity(spec).cert;
}

std::vector<std::string> fingerprints(const SourceAnswer& a) {
    std::vector<std::string> out;
    for (const auto& c : a.candidates) out.push_back(c.fingerprint_sha256());
    return out;
}

// ---- expand_url -------------------------------------------------------------------------

std::string host_of(const std::string& url) {
    const size_t start = url.find("://") + 3;
    return url.substr(start, url.find('/', start) - start);
}

TEST(ExpandUrl, KnownValues) {
    const std::string t = "https://dir.example/v1/certs/{email}";
    EXPECT_EQ(expand_url(t, "alice@example.test"), "https://dir.example/v1/certs/alice%40example.test");
    EXPECT_EQ(expand_url(t, "j\xC3\xB6rg@x.example"), "https://dir.example/v1/certs/j%C3%B6rg%40x.example");
    EXPECT_EQ(expand_url(t, "Alice@X.EXAMPLE"), "https://dir.example/v1/certs/Alice%40x.example");  // domain folded
    EXPECT_EQ(expand_url(t, "a~b-c_d.e@x"), "https://dir.example/v1/certs/a~b-c_d.e%40x");
    EXPECT_EQ(expand_url("https://d.example/{domain}/{local}", "\"a@b\"@X.example"),
              "https://d.example/x.example/%22a%40b%22");  // split at the LAST '@'
    EXPECT_EQ(expand_url("https://d.example/{local}/{domain}", "nodomain"), "https://d.example/nodomain/");
    EXPECT_EQ(expand_url("https://d.example/{other}/{email", "a@b"), "https://d.example/{other}/{email");
}

TEST(ExpandUrl, HostileAddressesCannotChangeTheStructure) {
    const std::string prefix = "https://dir.example/v1/certs/";
    const std::vector<std::string> hostile = {"a/../b@x.example",
                                              std::string("%00@x", 5),
                                              std::string("a\0b@x", 5),
                                              "a?b#c@x",
                                              "a b@x",
                                              "j\xC3\xB6rg@x.example",
                                              "UPPER@X.EXAMPLE",
                                              "a@evil.example/../../admin?x=",
                                              "@",
                                              "",
                                              "a\r\nHost: evil@x",
                                              "a@b@c@d",
                                              "..@..",
                                              "a%2F@x",
                                              "a\\b@x",
                                              "a;b=c@x",
                                              "a:b@[::1]:443"};
    for (const std::string& email : hostile) {
        for (const std::string tail : {"{email}", "{local}/{domain}", "{domain}?q={local}"}) {
            const std::string url = expand_url(prefix + tail, email);
            SCOPED_TRACE(url);
            EXPECT_EQ(host_of(url), "dir.example");
            ASSERT_EQ(url.rfind(prefix, 0), 0u);
            std::string rest = url.substr(prefix.size());
            if (tail == "{local}/{domain}") rest.erase(rest.find('/'), 1);  // the template's own
            if (tail == "{domain}?q={local}") rest.erase(rest.find("?q="), 3);
            for (const char c : rest) {
                const bool unreserved = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' ||
                                        c == '_' || c == '~' || c == '%';
                EXPECT_TRUE(unreserved) << "raw byte " << static_cast<int>(static_cast<unsigned char>(c));
            }
            EXPECT_EQ(rest.find("%00") == std::string::npos, email.find('\0') == std::string::npos);
        }
    }
}

// ---- parse_directory_response -------------------------------------------------------------

struct Certs {
    crypto::Certificate alice = cert_for("alice@example.test");
    crypto::Certificate alice2 = cert_for("alice@example.test");
};
const Certs& certs() {
    static const Certs c;
    return c;
}

using Headers = std::map<std::string, std::string>;
Headers ct(const std::string& type) {
    return {{"content-type", type}};
}
constexpr long long kMax = 1 << 20;

struct BodyCase {
    const char* name;
    long status;
    std::string type;
    std::string body;
    Outcome outcome;
    size_t candidates;
    std::string reason_part;
};

std::vector<BodyCase> body_cases() {
    const auto& c = certs();
    const std::string pem = to_pem(c.alice), pem2 = to_pem(c.alice2), der = to_der(c.alice);
    std::string many = "{\"certificates\":[";
    for (int i = 0; i < 101; ++i) many += (i ? "," : "") + nlohmann::json{{"pem", pem}}.dump();
    many += "]}";
    const std::string deep = "{\"certificates\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
    const std::string depth64 = std::string(64, '[') + std::string(64, ']');
    const std::string mixed =
        nlohmann::json{{"certificates", {{{"pem", "junk"}}, 5, {{"der", "x"}}, {{"pem", pem}}}}}.dump();
    const std::string all_bad = nlohmann::json{
        {"certificates",
         {{{"pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}},
          {{"pem", 7}}}}}.dump();
    return {
        {"json", 200, "application/json", json_answer({c.alice}), Outcome::Found, 1, ""},
        {"json two", 200, "application/json", json_answer({c.alice, c.alice2}), Outcome::Found, 2, ""},
        {"json params+case", 200, "Application/JSON ; charset=\"utf-8\"", json_answer({c.alice}), Outcome::Found, 1,
         ""},
        {"json mixed entries", 200, "application/json", mixed, Outcome::Found, 1, ""},
        {"json no entry parses", 200, "application/json", all_bad, Outcome::TempError, 0, "unparsable"},
        {"json empty list", 200, "application/json", "{\"certificates\":[]}", Outcome::TempError, 0, "no certificates"},
        {"json no list", 200, "application/json", "{\"certs\":[]}", Outcome::TempError, 0, "certificates"},
        {"json list not array", 200, "application/json", "{\"certificates\":{}}", Outcome::TempError, 0, ""},
        {"json array top", 200, "application/json", "[1,2]", Outcome::TempError, 0, ""},
        {"json truncated", 200, "application/json", json_answer({c.alice}).substr(0, 40), Outcome::TempError, 0,
         "JSON"},
        {"json empty body", 200, "application/json", "", Outcome::TempError, 0, ""},
        {"json too many", 200, "application/json", many, Outcome::TempError, 0, "too many"},
        {"json deep", 200, "application/json", deep, Outcome::TempError, 0, "deep"},
        {"json depth 64 ok", 200, "application/json", depth64, Outcome::TempError, 0, "certificates"},
        {"json bad utf8", 200, "application/json", "{\"certificates\":[{\"pem\":\"\xff\xfe\"}]}", Outcome::TempError, 0,
         ""},
        {"pem chain", 200, "application/pem-certificate-chain", pem + pem2, Outcome::Found, 2, ""},
        {"x-pem-file", 200, "application/x-pem-file; charset=us-ascii", pem, Outcome::Found, 1, ""},
        {"pem junk", 200, "application/pem-certificate-chain", "hello", Outcome::TempError, 0, "unparsable"},
        {"pem but der", 200, "application/x-pem-file", der, Outcome::TempError, 0, "unparsable"},
        {"der", 200, "application/pkix-cert", der, Outcome::Found, 1, ""},
        {"der trailing", 200, "application/pkix-cert", der + "x", Outcome::TempError, 0, "trailing"},
        {"der but pem", 200, "application/pkix-cert", pem, Outcome::TempError, 0, "unparsable"},
        {"der empty", 200, "application/pkix-cert", "", Outcome::TempError, 0, "unparsable"},
        {"html", 200, "text/html", "<html>", Outcome::TempError, 0, "content type"},
        {"no type", 200, "", pem, Outcome::TempError, 0, "content type"},
        {"404", 404, "text/html", "<h1>nope</h1>", Outcome::NotFound, 0, "HTTP 404"},
        {"410", 410, "", "", Outcome::NotFound, 0, "HTTP 410 (opted out)"},
        {"500", 500, "application/json", json_answer({c.alice}), Outcome::TempError, 0, "HTTP 500"},
        {"503", 503, "", "", Outcome::TempError, 0, "HTTP 503"},
        {"302", 302, "", "", Outcome::TempError, 0, "HTTP 302"},
        {"201", 201, "application/json", json_answer({c.alice}), Outcome::TempError, 0, "HTTP 201"},
        {"204", 204, "", "", Outcome::TempError, 0, "HTTP 204"},
        {"401", 401, "", "", Outcome::TempError, 0, "HTTP 401"},
        {"no status", 0, "", "", Outcome::TempError, 0, "no HTTP answer"},
    };
}

TEST(HttpStreamReset, ACompleteResponseSurvivesTheResetThatFollowsIt) {
    // What is whole on its own survives a reset (RFC 9113 §8.1); anything else stays an error.
    EXPECT_TRUE(response_complete_before_reset(204, {}, 0));
    EXPECT_TRUE(response_complete_before_reset(304, {}, 0));
    EXPECT_TRUE(response_complete_before_reset(200, {{"content-length", "5"}}, 5));
    EXPECT_TRUE(response_complete_before_reset(403, {{"content-length", "0"}}, 0));
    EXPECT_FALSE(response_complete_before_reset(200, {{"content-length", "5"}}, 4));  // cut short
    EXPECT_FALSE(response_complete_before_reset(200, {}, 5));  // length unknown
    EXPECT_FALSE(response_complete_before_reset(200, {{"content-length", "5x"}}, 5));
    EXPECT_FALSE(response_complete_before_reset(200, {{"content-length", ""}}, 0));
    EXPECT_FALSE(response_complete_before_reset(200, {{"content-length", "99999999999999999999"}}, 0));
    EXPECT_FALSE(response_complete_before_reset(0, {}, 0));    // no status line yet
    EXPECT_FALSE(response_complete_before_reset(100, {}, 0));  // interim only
}

TEST(ParseDirectoryResponse, ContentTypesStatusesAndMalformedBodies) {
    for (const BodyCase& bc : body_cases()) {
        SCOPED_TRACE(bc.name);
        const SourceAnswer a = parse_directory_response(bc.status, ct(bc.type), bc.body, kMax);
        EXPECT_EQ(a.outcome, bc.outcome) << a.reason;
        EXPECT_EQ(a.candidates.size(), bc.candidates);
        EXPECT_NE(a.reason.find(bc.reason_part), std::string::npos) << a.reason;
        EXPECT_FALSE(a.not_modified);
    }
}

TEST(ParseDirectoryResponse, FoundCandidatesAreTheServedCertificates) {
    const auto& c = certs();
    const SourceAnswer a = parse_directory_response(200, ct("application/pem-certificate-chain"),
                                                    to_pem(c.alice) + to_pem(c.alice2), kMax);
    EXPECT_EQ(fingerprints(a), (std::vector<std::string>{c.alice.fingerprint_sha256(), c.alice2.fingerprint_sha256()}));
}

TEST(ParseDirectoryResponse, NotModifiedKeepsTheCache) {
    Headers h = {{"etag", "\"abc\""}, {"cache-control", "max-age=60"}};
    const SourceAnswer a = parse_directory_response(304, h, "", kMax);
    EXPECT_EQ(a.outcome, Outcome::Found);
    EXPECT_TRUE(a.not_modified);
    EXPECT_TRUE(a.candidates.empty());
    EXPECT_EQ(a.etag, "\"abc\"");
    EXPECT_EQ(a.max_age, 60);
}

TEST(ParseDirectoryResponse, BodyOverMaxBody) {
    const SourceAnswer a =
        parse_directory_response(200, ct("application/pem-certificate-chain"), to_pem(certs().alice), 100);
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_NE(a.reason.find("body exceeds directory.max_body"), std::string::npos);
}

TEST(ParseDirectoryResponse, CacheControlAndEtag) {
    struct Case {
        std::string cc;
        std::optional<long long> max_age, stale;
    };
    const std::vector<Case> cases = {
        {"max-age=600, stale-if-error=3600", 600, 3600},
        {"  MAX-AGE = \"60\" ,STALE-IF-ERROR=5", 60, 5},
        {"public,max-age=0", 0, std::nullopt},
        {"max-age=abc, stale-if-error=-3", std::nullopt, std::nullopt},
        {"max-age=99999999999999999999999", 2147483648LL, std::nullopt},
        {"stale-if-error=7,,,max-age=8,max-age=9", 8, 7},
        {"max-age", std::nullopt, std::nullopt},
        {"max-age=\"", std::nullopt, std::nullopt},
        {"=,=,\"\"", std::nullopt, std::nullopt},
        {"", std::nullopt, std::nullopt},
        {"no-store", std::nullopt, std::nullopt},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.cc);
        Headers h = ct("application/x-pem-file");
        h["cache-control"] = c.cc;
        h["etag"] = "W/\"x y\"";
        const SourceAnswer a = parse_directory_response(200, h, to_pem(certs().alice), kMax);
        EXPECT_EQ(a.max_age, c.max_age);
        EXPECT_EQ(a.stale_if_error, c.stale);
        EXPECT_EQ(a.etag, "W/\"x y\"");
    }
    // Hints travel with authoritative negatives too (the cache decides what to do with them).
    const SourceAnswer nf = parse_directory_response(404, {{"cache-control", "max-age=30"}}, "", kMax);
    EXPECT_EQ(nf.max_age, 30);
}

// Every truncation of every valid body, and random bytes: never a crash, never NotFound.
TEST(ParseDirectoryResponse, TruncatedAndRandomBodiesNeverCrash) {
    const auto& c = certs();
    const std::vector<std::pair<std::string, std::string>> bodies = {
        {"application/json", json_answer({c.alice})},
        {"application/pem-certificate-chain", to_pem(c.alice) + to_pem(c.alice2)},
        {"application/pkix-cert", to_der(c.alice)}};
    for (const auto& [type, body] : bodies) {
        for (size_t n = 0; n < body.size(); ++n) {
            const SourceAnswer a = parse_directory_response(200, ct(type), body.substr(0, n), kMax);
            EXPECT_NE(a.outcome, Outcome::NotFound);
            if (a.outcome == Outcome::Found) {
                EXPECT_FALSE(a.candidates.empty());
            }
        }
    }
    std::mt19937 rng(42);
    for (int i = 0; i < 300; ++i) {
        std::string junk(rng() % 2000, '\0');
        for (char& ch : junk) ch = static_cast<char>(rng() % 256);
        if (i % 3 == 0) junk = "{\"certificates\":[" + junk;
        for (const auto& [type, body] : bodies) {
            static_cast<void>(body);
            EXPECT_EQ(parse_directory_response(200, ct(type), junk, kMax).outcome, Outcome::TempError);
        }
    }
}

// ---- a real nginx ---------------------------------------------------------------------------

constexpr int kMany = 50;

struct NginxEnv {
    http::NginxServer server;
    crypto::Certificate alice = cert_for("alice@example.test");
    crypto::Certificate alice2 = cert_for("alice@example.test");
    crypto::Certificate mallory = cert_for("mallory@evil.example");
    std::vector<crypto::Certificate> users;
    std::string error;
    bool started = false;

    NginxEnv() {
        const std::string www = server.www();
        http::write_file(www + "/json/alice@example.test", json_answer({alice}));
        http::write_file(www + "/pem/alice@example.test", to_pem(alice) + to_pem(alice2));
        http::write_file(www + "/der/alice@example.test", to_der(alice));
        http::write_file(www + "/auth/alice@example.test", json_answer({alice}));
        http::write_file(www + "/mtls/alice@example.test", json_answer({alice}));
        // The directory answers carol's lookup with somebody else's certificate.
        http::write_file(www + "/json/carol@example.test", json_answer({mallory}));
        // Present on disk, but the location answers 410 first.
        http::write_file(www + "/json/optout@example.test", json_answer({alice}));
        for (int i = 0; i < kMany; ++i) {
            users.push_back(cert_for("user" + std::to_string(i) + "@example.test"));
            http::write_file(www + "/json/user" + std::to_string(i) + "@example.test", json_answer({users.back()}));
        }
        started = server.start(error);
    }
};

class DirectoryNginx : public ::testing::Test {
protected:
    static void SetUpTestSuite() { env_ = new NginxEnv(); }
    static void TearDownTestSuite() {
        delete env_;  // stops nginx (SIGTERM to its PID) and removes its prefix
        env_ = nullptr;
    }
    void SetUp() override {
        if (!env_->started && env_->error.find("nginx not installed") != std::string::npos) GTEST_SKIP() << env_->error;
        ASSERT_TRUE(env_->started) << env_->error;
    }

    static DirectoryOptions options(const std::string& kind) {
        DirectoryOptions o;
        o.url_template = env_->server.base_url() + "/" + kind + "/{email}";
        o.ca_file = env_->server.ca_file();
        o.timeout_ms = 10000;
        return o;
    }
    static SourceAnswer look(const DirectoryOptions& o, const std::string& email, const std::string& etag = "") {
        DirectorySource source(o);
        return source.lookup(with_etag(email, etag));
    }

    // nginx writes its access log line after the answer has left: wait for it (bounded).
    static std::string access_log_with(const std::string& needle, size_t times = 1) {
        std::string log;
        for (int i = 0; i < 100; ++i) {
            log = env_->server.access_log();
            size_t n = 0;
            for (size_t p = log.find(needle); p != std::string::npos; p = log.find(needle, p + 1)) ++n;
            if (n >= times) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return log;
    }

    static NginxEnv* env_;
};
NginxEnv* DirectoryNginx::env_ = nullptr;

TEST_F(DirectoryNginx, JsonFound) {
    const SourceAnswer a = look(options("json"), "alice@example.test");
    ASSERT_EQ(a.outcome, Outcome::Found) << a.reason;
    EXPECT_EQ(fingerprints(a), std::vector<std::string>{env_->alice.fingerprint_sha256()});
    EXPECT_FALSE(a.not_modified);
}

TEST_F(DirectoryNginx, PemBundleFound) {
    const SourceAnswer a = look(options("pem"), "alice@example.test");
    ASSERT_EQ(a.outcome, Outcome::Found) << a.reason;
    EXPECT_EQ(fingerprints(a),
              (std::vector<std::string>{env_->alice.fingerprint_sha256(), env_->alice2.fingerprint_sha256()}));
}

TEST_F(DirectoryNginx, DerFound) {
    const SourceAnswer a = look(options("der"), "alice@EXAMPLE.test");  // domain case folded
    ASSERT_EQ(a.outcome, Outcome::Found) << a.reason;
    EXPECT_EQ(fingerprints(a), std::vector<std::string>{env_->alice.fingerprint_sha256()});
}

TEST_F(DirectoryNginx, UnknownAddressIsNotFound) {
    const SourceAnswer a = look(options("json"), "nobody@example.test");
    EXPECT_EQ(a.outcome, Outcome::NotFound);
    EXPECT_EQ(a.reason, "HTTP 404");
}

TEST_F(DirectoryNginx, OptedOutIsNotFound) {
    const SourceAnswer a = look(options("json"), "optout@example.test");
    EXPECT_EQ(a.outcome, Outcome::NotFound);
    EXPECT_EQ(a.reason, "HTTP 410 (opted out)");
}

// The address reaches the server as one encoded path segment. What the server makes of it is
// its business: nginx decodes %2F and resolves the dot segments, so this request is served
// alice's file — which is why every directory answer is validated against the recipient.
TEST_F(DirectoryNginx, TraversalAttemptStaysOneEncodedSegment) {
    const SourceAnswer a = look(options("json"), "../json/alice@example.test");
    std::cout << "nginx answered: " << to_string(a.outcome) << "\n";
    const std::string log = access_log_with("GET /json/..%2Fjson%2Falice%40example.test ");
    EXPECT_NE(log.find("GET /json/..%2Fjson%2Falice%40example.test "), std::string::npos) << log;
}

TEST_F(DirectoryNginx, CacheControlReported) {
    const SourceAnswer a = look(options("json"), "alice@example.test");
    EXPECT_EQ(a.max_age, 600);
    EXPECT_EQ(a.stale_if_error, 3600);
    const SourceAnswer nf = look(options("json"), "nobody@example.test");
    EXPECT_EQ(nf.max_age, 600);
}

TEST_F(DirectoryNginx, EtagRevalidation) {
    DirectorySource source(options("json"));
    const SourceAnswer first = source.lookup(make_query("alice@example.test"));
    ASSERT_EQ(first.outcome, Outcome::Found) << first.reason;
    ASSERT_FALSE(first.etag.empty());
    const SourceAnswer again = source.lookup(with_etag("alice@example.test", first.etag));
    EXPECT_EQ(again.outcome, Outcome::Found) << again.reason;
    EXPECT_TRUE(again.not_modified);
    EXPECT_TRUE(again.candidates.empty());
    const SourceAnswer changed = source.lookup(with_etag("alice@example.test", "\"stale-etag\""));
    EXPECT_FALSE(changed.not_modified);
    EXPECT_EQ(changed.candidates.size(), 1u);
    // A hostile ETag (line break) is never sent as a header: the request is unconditional.
    const SourceAnswer injected = source.lookup(with_etag("alice@example.test", first.etag + "\r\nX-Evil: 1"));
    EXPECT_FALSE(injected.not_modified);
    EXPECT_EQ(injected.candidates.size(), 1u);
}

TEST_F(DirectoryNginx, BearerToken) {
    DirectoryOptions o = options("auth");
    EXPECT_EQ(look(o, "alice@example.test").outcome, Outcome::TempError);
    EXPECT_EQ(look(o, "alice@example.test").reason, "HTTP 401");
    o.bearer_token = "wrong";
    EXPECT_EQ(look(o, "alice@example.test").outcome, Outcome::TempError);
    o.bearer_token = "secret";
    const SourceAnswer a = look(o, "alice@example.test");
    EXPECT_EQ(a.outcome, Outcome::Found) << a.reason;
    o.bearer_token = "secret\r\nX-Evil: 1";
    EXPECT_EQ(look(o, "alice@example.test").outcome, Outcome::TempError);
}

TEST_F(DirectoryNginx, ClientCertificate) {
    DirectoryOptions o = options("mtls");
    EXPECT_EQ(look(o, "alice@example.test").reason, "HTTP 403");
    o.client_cert_file = env_->server.client_cert_file();
    o.client_key_file = env_->server.client_key_file();
    const SourceAnswer a = look(o, "alice@example.test");
    EXPECT_EQ(a.outcome, Outcome::Found) << a.reason;
    o.client_key_file = env_->server.prefix() + "/no-such.key";
    EXPECT_EQ(look(o, "alice@example.test").outcome, Outcome::TempError);
}

TEST_F(DirectoryNginx, TlsVerificationFailsWithoutTheRightCa) {
    DirectoryOptions o = options("json");
    o.ca_file = env_->server.other_ca_file();
    const SourceAnswer wrong = look(o, "alice@example.test");
    EXPECT_EQ(wrong.outcome, Outcome::TempError);
    std::cout << "wrong CA: " << wrong.reason << "\n";
    o.ca_file.clear();  // the system store does not know the test CA
    EXPECT_EQ(look(o, "alice@example.test").outcome, Outcome::TempError);
    o.ca_file = env_->server.prefix() + "/does-not-exist.pem";
    EXPECT_EQ(look(o, "alice@example.test").outcome, Outcome::TempError);
    // The server certificate names localhost too: verified by name, it works.
    o = options("json");
    o.url_template = "https://localhost:" + std::to_string(env_->server.port()) + "/json/{email}";
    EXPECT_EQ(look(o, "alice@example.test").outcome, Outcome::Found);
}

TEST_F(DirectoryNginx, OtherAddressCertificateIsStillACandidate) {
    // The source does not filter: the Chain's validator rejects the wrong address later.
    const SourceAnswer a = look(options("json"), "carol@example.test");
    ASSERT_EQ(a.outcome, Outcome::Found) << a.reason;
    EXPECT_EQ(fingerprints(a), std::vector<std::string>{env_->mallory.fingerprint_sha256()});
}

TEST_F(DirectoryNginx, LookupManyFiftyInOrderOverFewConnections) {
    DirectorySource source(options("json"));
    std::vector<Query> queries;
    for (int i = 0; i < kMany; ++i) queries.push_back(make_query("user" + std::to_string(i) + "@example.test"));
    queries.push_back(make_query("nobody@example.test"));
    const auto t0 = Clock::now();
    const std::vector<SourceAnswer> answers = source.lookup_many(queries);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    std::cout << "lookup_many of " << queries.size() << " addresses took " << ms << " ms\n";
    ASSERT_EQ(answers.size(), queries.size());
    for (int i = 0; i < kMany; ++i) {
        ASSERT_EQ(answers[static_cast<size_t>(i)].outcome, Outcome::Found)
            << i << answers[static_cast<size_t>(i)].reason;
        EXPECT_EQ(fingerprints(answers[static_cast<size_t>(i)]),
                  std::vector<std::string>{env_->users[static_cast<size_t>(i)].fingerprint_sha256()});
    }
    EXPECT_EQ(answers.back().outcome, Outcome::NotFound);
    // A second round reuses the connection(s) of the first.
    const auto again = source.lookup_many(queries);
    EXPECT_EQ(again[7].outcome, Outcome::Found);

    std::set<std::string> connections;
    size_t requests = 0;
    const std::string log = access_log_with("/json/user", 2 * kMany);
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
        if (line.find("/json/user") == std::string::npos) continue;
        ++requests;
        connections.insert(line.substr(0, line.find(' ')));
        EXPECT_NE(line.find("\"sealmilter\""), std::string::npos) << line;         // User-Agent
        EXPECT_NE(line.find("application/pkix-cert"), std::string::npos) << line;  // Accept
        if ((curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2) != 0) {
            EXPECT_NE(line.find("HTTP/2.0"), std::string::npos) << line;
        }
    }
    std::cout << requests << " requests over " << connections.size() << " connection(s)\n";
    EXPECT_EQ(requests, 2u * kMany);
    EXPECT_LE(connections.size(), 8u);  // CURLMOPT_MAX_HOST_CONNECTIONS; 1 with HTTP/2
}

TEST_F(DirectoryNginx, SeveralThreadsShareOneSource) {
    DirectorySource source(options("json"));
    std::vector<std::thread> threads;
    std::vector<int> found(4, 0);
    for (size_t t = 0; t < found.size(); ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                const std::string email =
                    "user" + std::to_string((static_cast<int>(t) * 10 + i) % kMany) + "@example.test";
                if (source.lookup(make_query(email)).outcome == Outcome::Found) ++found[t];
            }
        });
    }
    for (auto& th : threads) th.join();
    for (const int f : found) EXPECT_EQ(f, 10);
}

// The publisher goes through the same HTTP client and TLS policy as lookups: built from the
// directory.* settings, it presents directory.client_cert (it used to ignore it, and a
// directory that demands client certificates refused every publication).
TEST_F(DirectoryNginx, PublisherPresentsTheDirectoryClientCertificate) {
    const std::string dir = http::make_temp_dir("publish-mtls");
    std::map<std::string, std::string, std::less<>> values = {
        {"directory.publish_url", env_->server.base_url() + "/publish-mtls/{email}"},
        {"directory.timeout_ms", "10000"},
        {"directory.token_file", ""},
        {"directory.ca_file", env_->server.ca_file()},
        {"directory.client_cert", env_->server.client_cert_file()},
        {"directory.client_key", env_->server.client_key_file()},
        {"directory.max_body", "1048576"},
        {"directory.follow_redirects", "false"},
        {"directory.max_connections", "4"},
        {"harvest.dir", dir}};
    const std::string pem = to_pem(env_->alice);
    int published = 0;
    {
        std::vector<std::string> log;
        PublishOptions o = publish_options(MapSettings(values));
        o.on_published = [&published] { ++published; };
        auto with_cert = Publisher::without_thread(o, [&log](const std::string& l) { log.push_back(l); });
        with_cert->enqueue("alice@example.test", pem);
        // nginx answers `return 204` before it has read the POST body and may then reset the
        // HTTP/2 stream (RFC 9113 §8.1); the client takes the complete 204 as the answer.
        const size_t left = with_cert->flush_once();
        EXPECT_EQ(left, 0u) << (log.empty() ? "" : log.back());  // 204: published and dequeued
        EXPECT_EQ(published, 1);  // the daemon's sealmilter_published_certificates_total
    }
    values["directory.client_cert"] = "";
    values["directory.client_key"] = "";
    {
        std::vector<std::string> log;
        auto without = Publisher::without_thread(publish_options(MapSettings(values)),
                                                 [&log](const std::string& l) { log.push_back(l); });
        without->enqueue("alice@example.test", pem);
        EXPECT_EQ(without->flush_once(), 1u);  // the endpoint refuses: stays queued
        ASSERT_FALSE(log.empty());
        EXPECT_NE(log.back().find("HTTP 403"), std::string::npos) << log.back();
    }
    EXPECT_EQ(published, 1);  // a refused publication is not counted
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

// ---- a scripted fault server ------------------------------------------------------------------

class DirectoryFault : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new http::FaultServer();
        started_ = server_->start(error_);
    }
    static void TearDownTestSuite() {
        delete server_;  // SIGTERM to the server's PID
        server_ = nullptr;
    }
    void SetUp() override { ASSERT_TRUE(started_) << error_; }

    static SourceAnswer look(const std::string& route, long timeout_ms = 10000, bool follow = false) {
        DirectoryOptions o;
        o.url_template = server_->base_url() + "/" + route + "/{email}";
        o.timeout_ms = timeout_ms;
        o.max_body = 1 << 20;
        o.follow_redirects = follow;
        DirectorySource source(o);
        const auto t0 = Clock::now();
        SourceAnswer a = source.lookup(make_query("alice@example.test"));
        std::cout << route << ": " << to_string(a.outcome) << " (" << a.reason << ") after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() << " ms\n";
        return a;
    }

    static http::FaultServer* server_;
    static bool started_;
    static std::string error_;
};
http::FaultServer* DirectoryFault::server_ = nullptr;
bool DirectoryFault::started_ = false;
std::string DirectoryFault::error_;

TEST_F(DirectoryFault, NeverAnswersTimesOut) {
    const SourceAnswer a = look("hang", 700);  // returning at all is the point
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_FALSE(a.reason.empty());
}

TEST_F(DirectoryFault, ServerErrors) {
    EXPECT_EQ(look("status/500").reason, "HTTP 500");
    EXPECT_EQ(look("status/503").reason, "HTTP 503");
    EXPECT_EQ(look("status/503").outcome, Outcome::TempError);
    EXPECT_EQ(look("status/404").outcome, Outcome::NotFound);
}

TEST_F(DirectoryFault, ClosedMidBody) {
    EXPECT_EQ(look("cut").outcome, Outcome::TempError);
}

TEST_F(DirectoryFault, TenMegabytesOfJunkHitTheBodyLimit) {
    for (const char* route : {"junk", "junk-chunked"}) {
        const SourceAnswer a = look(route);
        EXPECT_EQ(a.outcome, Outcome::TempError);
        EXPECT_NE(a.reason.find("body exceeds directory.max_body"), std::string::npos) << a.reason;
    }
}

TEST_F(DirectoryFault, TwoGigabytesAnnouncedAreRefusedEarly) {
    const SourceAnswer a = look("huge-length", 20000);  // a timeout would name the timeout instead
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_NE(a.reason.find("body exceeds directory.max_body"), std::string::npos) << a.reason;
}

TEST_F(DirectoryFault, ThousandEntriesAreTooMany) {
    const SourceAnswer a = look("many");
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_NE(a.reason.find("too many"), std::string::npos) << a.reason;
}

TEST_F(DirectoryFault, RedirectNotFollowed) {
    const SourceAnswer a = look("redirect");
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_EQ(a.reason, "HTTP 302");
}

TEST_F(DirectoryFault, RedirectFollowedOnlyWhenAllowedAndOnlyToHttp) {
    EXPECT_EQ(look("redirect-local", 10000, false).reason, "HTTP 302");
    EXPECT_EQ(look("redirect-local", 10000, true).outcome, Outcome::NotFound);
    EXPECT_EQ(look("redirect-file", 10000, true).outcome, Outcome::TempError);  // file:// refused
}

TEST_F(DirectoryFault, GzipBombIsNotDecoded) {
    const SourceAnswer a = look("gzip");
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_EQ(a.reason.find("max_body"), std::string::npos) << "the bomb was inflated: " << a.reason;
}

TEST_F(DirectoryFault, DeepJsonDoesNotCrash) {
    const SourceAnswer a = look("deep");
    EXPECT_EQ(a.outcome, Outcome::TempError);
    EXPECT_NE(a.reason.find("deep"), std::string::npos) << a.reason;
}

TEST_F(DirectoryFault, NonHttpSchemesAndClosedPortsAreErrors) {
    DirectoryOptions o;
    o.timeout_ms = 5000;
    for (const std::string& t : {std::string("file:///etc/passwd?{email}"), std::string("ftp://127.0.0.1/{email}"),
                                 "http://127.0.0.1:" + std::to_string(http::free_loopback_port()) + "/{email}"}) {
        o.url_template = t;
        DirectorySource source(o);
        const SourceAnswer a = source.lookup(make_query("alice@example.test"));
        EXPECT_EQ(a.outcome, Outcome::TempError) << t;
        std::cout << t << ": " << a.reason << "\n";
    }
}

TEST_F(DirectoryFault, OneHangingAddressDoesNotHoldUpTheOthers) {
    DirectoryOptions o;
    o.url_template = server_->base_url() + "/{local}/{domain}";  // local part picks the route
    o.timeout_ms = 1000;
    DirectorySource source(o);
    const auto answers = source.lookup_many({make_query("hang@x.example"), make_query("status@404"),
                                             make_query("status@500"), make_query("unknown@x.example")});
    ASSERT_EQ(answers.size(), 4u);
    EXPECT_EQ(answers[0].outcome, Outcome::TempError);
    EXPECT_EQ(answers[1].outcome, Outcome::NotFound);
    EXPECT_EQ(answers[2].reason, "HTTP 500");
    EXPECT_EQ(answers[3].reason, "HTTP 400");
    EXPECT_TRUE(source.lookup_many({}).empty());
}

// One SMTP session's slow lookup must not block another session's lookup on the same source
// (the milter runs one thread per session). Asserted by order of completion, not by time: the
// second caller's answer arrives while the first caller is still waiting.
TEST_F(DirectoryFault, ConcurrentCallersDoNotWaitForEachOther) {
    DirectoryOptions o;
    o.url_template = server_->base_url() + "/{local}/{domain}";
    o.timeout_ms = 3000;
    DirectorySource source(o);
    std::atomic<bool> slow_done{false};
    std::thread slow([&] {
        EXPECT_EQ(source.lookup(make_query("hang@x.example")).outcome, Outcome::TempError);
        slow_done = true;
    });
    // Let the slow request start first (bounded wait on the fault server's connection log is
    // not available; a short sleep only orders the two calls, it is not a timing assertion).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const SourceAnswer quick = source.lookup(make_query("status@404"));
    const bool slow_finished_first = slow_done.load();
    slow.join();
    EXPECT_EQ(quick.outcome, Outcome::NotFound);
    EXPECT_FALSE(slow_finished_first) << "the quick lookup waited for the hanging one";
}

// directory.max_connections caps the connections to one host, for one batch and for several
// callers at once: the fault server (HTTP/1.1, one request per connection) counts how many
// were open at the same time. Every request still gets its answer.
TEST_F(DirectoryFault, ConnectionsPerHostNeverExceedMaxConnections) {
    constexpr long kCap = 3;
    DirectoryOptions o;
    o.url_template = server_->base_url() + "/slow/{email}";
    o.timeout_ms = 20000;
    o.max_connections = kCap;
    DirectorySource source(o);
    std::vector<Query> batch;
    for (int i = 0; i < 24; ++i) batch.push_back(make_query("r" + std::to_string(i) + "@x.example"));
    std::vector<std::vector<SourceAnswer>> answers(3);
    std::vector<std::thread> callers;
    for (auto& a : answers) callers.emplace_back([&source, &batch, &a] { a = source.lookup_many(batch); });
    for (auto& t : callers) t.join();
    for (const auto& a : answers) {
        ASSERT_EQ(a.size(), batch.size());
        for (const SourceAnswer& one : a) EXPECT_EQ(one.reason, "HTTP 404");
    }
    HttpClient stats_client(HttpOptions{});
    HttpRequest stats;
    stats.url = server_->base_url() + "/stats/";
    const HttpResponse r = stats_client.perform({stats}).front();
    ASSERT_EQ(r.status, 200) << r.error;
    const nlohmann::json j = nlohmann::json::parse(r.body);
    EXPECT_GE(j["connections"].get<int>(), 72);
    EXPECT_GE(j["max_concurrent"].get<int>(), 1);
    EXPECT_LE(j["max_concurrent"].get<int>(), kCap) << r.body;
}

}  // namespace
}  // namespace sealmilter::lookup

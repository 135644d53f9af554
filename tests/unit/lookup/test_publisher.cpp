// Publishing harvested certificates: queued on disk, POSTed in the background, retried with
// backoff while the endpoint is down, delivered once it is back, across a restart.
#include "lookup/publisher.hpp"
#include "tests/support/http/servers.hpp"
#include "tests/support/polling.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using sealmilter::lookup::Publisher;
using sealmilter::lookup::PublishOptions;
namespace http = sealmilter::testing::http;

namespace {

using sealmilter::testing::count_files;
using sealmilter::testing::wait_for;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A loopback port that refuses connections and that no other test can take: bound, never
// listening, until release() (right before the recorder starts on it).
class ReservedPort {
public:
    ReservedPort() {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0)
            port_ = ntohs(a.sin_port);
    }
    ~ReservedPort() { release(); }
    int port() const { return port_; }
    void release() {
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
    int port_ = 0;
};

const std::string kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

TEST(Publisher, RetriesWhileTheEndpointIsDownAndDeliversWhenItIsBack) {
    const std::string dir = http::make_temp_dir("publish");
    const std::string queue = dir + "/queue";
    const std::string received = dir + "/received";
    fs::create_directories(received);
    ReservedPort reserved;
    const int port = reserved.port();
    ASSERT_GT(port, 0);
    PublishOptions o;
    o.url_template = "http://127.0.0.1:" + std::to_string(port) + "/certs/{email}";
    o.http.bearer_token = "secret";
    o.queue_dir = queue;
    o.http.timeout_ms = 2000;
    o.initial_backoff_ms = 100;
    o.max_backoff_ms = 400;
    std::vector<std::string> log;
    std::mutex log_mutex;
    {
        Publisher pub(o, [&](const std::string& l) {
            const std::lock_guard<std::mutex> lock(log_mutex);
            log.push_back(l);
        });
        pub.enqueue("p@partner.example", kPem);
        // Nobody listens: the request stays queued and is retried.
        EXPECT_TRUE(wait_for([&] {
            const std::lock_guard<std::mutex> lock(log_mutex);
            return log.size() >= 2;
        }, 20000));
        EXPECT_EQ(count_files(queue, ".req"), 1u);
    }  // the daemon stops with the request still queued
    EXPECT_EQ(count_files(queue, ".req"), 1u);

    // The endpoint comes back; a new publisher (the restarted daemon) finds the queue.
    reserved.release();
    http::Child recorder;
    ASSERT_TRUE(recorder.spawn({"python3", http::support_dir() + "/publish_recorder.py", std::to_string(port), received},
                               true, dir + "/recorder.log"));
    ASSERT_EQ(recorder.read_line(15000), std::to_string(port));
    {
        Publisher pub(o, [](const std::string&) {});
        EXPECT_TRUE(wait_for([&] { return count_files(queue, ".req") == 0; }, 30000));
    }
    ASSERT_EQ(count_files(received, ".req"), 1u);
    const std::string got = slurp(received + "/1.req");
    EXPECT_EQ(got, "/certs/p%40partner.example\napplication/pem-certificate-chain\nBearer secret\n\n" + kPem);
    std::error_code ec;
    fs::remove_all(dir, ec);
}

TEST(Publisher, FlushOnceSendsNowAndKeepsFailuresQueued) {
    const std::string dir = http::make_temp_dir("publish");
    ReservedPort reserved;
    const int port = reserved.port();
    PublishOptions o;
    o.url_template = "http://127.0.0.1:" + std::to_string(port) + "/certs/{email}";
    o.queue_dir = dir + "/queue";
    o.http.timeout_ms = 2000;
    auto pub = Publisher::without_thread(o, [](const std::string&) {});
    pub->enqueue("a@partner.example", kPem);
    pub->enqueue("b@partner.example", kPem);
    EXPECT_EQ(pub->flush_once(), 2u);  // endpoint down: both stay
    fs::create_directories(dir + "/received");
    reserved.release();
    http::Child recorder;
    ASSERT_TRUE(recorder.spawn({"python3", http::support_dir() + "/publish_recorder.py", std::to_string(port), dir + "/received"},
                               true, dir + "/recorder.log"));
    ASSERT_EQ(recorder.read_line(15000), std::to_string(port));
    EXPECT_EQ(pub->flush_once(), 0u);
    EXPECT_EQ(count_files(dir + "/received", ".req"), 2u);
    std::error_code ec;
    fs::remove_all(dir, ec);
}

}  // namespace

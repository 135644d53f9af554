// The re-injection client against real sockets on the loopback: a refused connect must not
// leak its socket, and a connect the peer never completes must give up within the timeout.
#include "milter/reinject.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

namespace milter = sealmilter::milter;

namespace {

size_t open_fds() {
    size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return 0;
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
    return n;
}

// A loopback port with nothing listening on it (bound, then closed).
int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

void write_nothing(sealmilter::crypto::ByteSink&) {}

TEST(Reinject, RefusedConnectLeaksNoSocket) {
    const int port = closed_port();
    milter::SmtpReinjector r("127.0.0.1", port, 1000);
    const size_t before = open_fds();
    for (int i = 0; i < 20; ++i) {
        const std::string err = r.send("a@b.example", {"c@d.example"}, write_nothing);
        ASSERT_NE(err.find("connect 127.0.0.1:" + std::to_string(port)), std::string::npos) << err;
    }
    EXPECT_EQ(open_fds(), before);
}

// A listener whose accept queue is full: Linux drops further SYNs, so a connect to it stays
// in progress until the kernel gives up (minutes) unless the client bounds it.
struct FullListener {
    int fd = -1;
    int port = 0;
    std::vector<int> fillers;
    FullListener() {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(fd, 0);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
        for (int i = 0; i < 4; ++i) {  // fill the queue (never accepted)
            const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
            fillers.push_back(c);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ~FullListener() {
        for (int c : fillers) ::close(c);
        ::close(fd);
    }
};

TEST(Reinject, ConnectIsBoundedByTheTimeout) {
    auto listener = std::make_shared<FullListener>();
    auto result = std::make_shared<std::promise<std::string>>();
    std::future<std::string> done = result->get_future();
    const auto start = std::chrono::steady_clock::now();
    // Detached: before the fix this connect blocked for minutes; the test must not.
    std::thread([listener, result] {
        milter::SmtpReinjector r("127.0.0.1", listener->port, 300);
        result->set_value(r.send("a@b.example", {"c@d.example"}, write_nothing));
    }).detach();
    ASSERT_EQ(done.wait_for(std::chrono::seconds(5)), std::future_status::ready) << "connect not bounded by the timeout";
    const std::string err = done.get();
    EXPECT_NE(err.find("timeout after 300 ms"), std::string::npos) << err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace

// milter/reinject.cpp — the re-injection SMTP client (see reinject.hpp).
#include "milter/reinject.hpp"

#include "base/handle.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace sealmilter::milter {
namespace {

class SmtpError : public std::runtime_error {
public:
    explicit SmtpError(const std::string& w) : std::runtime_error(w) {}
};

// Connects to the first address of `host`:`port` within `timeout_ms` (a non-blocking connect
// bounded by poll(2): a peer whose listen queue is full drops our SYNs, and a blocking
// connect would wait for the kernel's SYN retries, minutes). The socket is owned by a
// UniqueFd from the start, so a failed connect never leaks it.
base::UniqueFd connect_within(const std::string& host, int port, long timeout_ms) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr)
        throw SmtpError("cannot resolve " + host);
    const std::unique_ptr<addrinfo, base::Deleter<freeaddrinfo>> owner(res);
    base::UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw SmtpError(std::string("socket: ") + std::strerror(errno));
    const std::string where = "connect " + host + ":" + std::to_string(port);
    if (::connect(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) throw SmtpError(where + ": " + std::strerror(errno));
        pollfd p{fd.get(), POLLOUT, 0};
        int r = 0;
        do {
            r = ::poll(&p, 1, static_cast<int>(timeout_ms));
        } while (r < 0 && errno == EINTR);
        if (r == 0) throw SmtpError(where + ": timeout after " + std::to_string(timeout_ms) + " ms");
        if (r < 0) throw SmtpError(where + ": poll: " + std::strerror(errno));
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) throw SmtpError(where + ": " + std::strerror(err));
    }
    return fd;
}

// One SMTP connection; every read and write waits at most timeout_ms (poll before each).
class Connection {
public:
    Connection(const std::string& host, int port, long timeout_ms)
        : fd_(connect_within(host, port, timeout_ms)), timeout_ms_(timeout_ms) {}

    void write_all(const char* data, size_t len) {
        while (len > 0) {
            wait(POLLOUT);
            const ssize_t n = ::send(fd_.get(), data, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;  // the socket is non-blocking
                throw SmtpError(std::string("send: ") + std::strerror(errno));
            }
            data += n;
            len -= static_cast<size_t>(n);
        }
    }
    void command(const std::string& line) { write_all((line + "\r\n").data(), line.size() + 2); }

    // Reads one (possibly multi-line) reply; returns "CODE text".
    std::string reply() {
        std::string last;
        for (int lines = 0; lines < 100; ++lines) {  // bounded
            const std::string line = read_line();
            if (line.size() < 3) throw SmtpError("malformed reply '" + line + "'");
            last = line;
            if (line.size() == 3 || line[3] != '-') return last;
        }
        throw SmtpError("reply too long");
    }

private:
    void wait(short events) {
        pollfd p{fd_.get(), events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(timeout_ms_));
        if (r == 0) throw SmtpError("timeout after " + std::to_string(timeout_ms_) + " ms");
        if (r < 0 && errno != EINTR) throw SmtpError(std::string("poll: ") + std::strerror(errno));
    }
    std::string read_line() {
        for (;;) {
            const size_t nl = buf_.find("\r\n");
            if (nl != std::string::npos) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 2);
                return line;
            }
            if (buf_.size() > size_t{64} * 1024) throw SmtpError("reply line too long");
            wait(POLLIN);
            char tmp[4096];
            const ssize_t n = ::recv(fd_.get(), tmp, sizeof tmp, 0);
            if (n == 0) throw SmtpError("connection closed by the server");
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                throw SmtpError(std::string("recv: ") + std::strerror(errno));
            }
            buf_.append(tmp, static_cast<size_t>(n));
        }
    }

    base::UniqueFd fd_;
    long timeout_ms_;
    std::string buf_;
};

void expect(Connection& c, char first, const std::string& step) {
    const std::string r = c.reply();
    if (r[0] != first) throw SmtpError(step + ": " + r);
}

// RFC 5321 §4.5.2 dot-stuffing of a CRLF message, across chunk boundaries; ends with CRLF.CRLF.
class DataSink final : public crypto::ByteSink {
public:
    explicit DataSink(Connection& c) : conn_(c) {}
    void write(const char* data, size_t len) override {
        std::string out;
        out.reserve(len + 16);
        for (size_t i = 0; i < len; ++i) {
            const char ch = data[i];
            if (at_line_start_ && ch == '.') out += '.';
            if (ch == '\n' && prev_ != '\r') out += '\r';  // bare LF on the wire is not allowed
            out += ch;
            at_line_start_ = ch == '\n';
            prev_ = ch;
        }
        conn_.write_all(out.data(), out.size());
    }
    void finish() {
        const std::string end = at_line_start_ ? ".\r\n" : "\r\n.\r\n";
        conn_.write_all(end.data(), end.size());
    }

private:
    Connection& conn_;
    bool at_line_start_ = true;
    char prev_ = '\n';
};

}  // namespace

std::string SmtpReinjector::send(const std::string& sender, const std::vector<std::string>& recipients,
                                 const std::function<void(crypto::ByteSink&)>& write_message) {
    std::string reply;
    return hand_over(sender, recipients, write_message, reply);
}

std::string SmtpReinjector::target() const {
    return host_.find(':') != std::string::npos ? "[" + host_ + "]:" + std::to_string(port_)
                                                : host_ + ":" + std::to_string(port_);
}

std::string SmtpReinjector::hand_over(const std::string& sender, const std::vector<std::string>& recipients,
                                      const std::function<void(crypto::ByteSink&)>& write_message, std::string& reply) {
    reply.clear();
    try {
        Connection c(host_, port_, timeout_ms_);
        expect(c, '2', "greeting");
        c.command("EHLO " + helo_);
        expect(c, '2', "EHLO");
        c.command("MAIL FROM:<" + sender + ">");
        expect(c, '2', "MAIL FROM");
        for (const std::string& r : recipients) {
            c.command("RCPT TO:<" + r + ">");
            expect(c, '2', "RCPT TO <" + r + ">");
        }
        c.command("DATA");
        expect(c, '3', "DATA");
        DataSink data(c);
        write_message(data);
        data.finish();
        reply = c.reply();
        if (reply[0] != '2') throw SmtpError("end of data: " + reply);
        try {  // the copy is accepted; a failing QUIT must not turn that into a retry (duplicate)
            c.command("QUIT");
        } catch (const SmtpError&) {
        }
        return {};
    } catch (const SmtpError& e) {
        return "re-injection to " + target() + " failed: " + e.what();
    }
}

}  // namespace sealmilter::milter

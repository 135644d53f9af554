// tests/support/http/servers.hpp — test HTTP servers on 127.0.0.1, started and stopped by PID.
//
// Purpose:   NginxServer runs a real nginx (TLS + HTTP/2, start_nginx.sh) from a private
//            prefix the test fills; FaultServer runs fault_server.py (scripted misbehaviour).
//            Both listen on loopback only.
// Ownership: each object owns its child process and its temp directory; the destructor sends
//            SIGTERM, waits (bounded), then SIGKILLs, and removes the directory.
// Threads:   use from one thread (a test fixture).
// Errors:    start() returns false with a reason (e.g. nginx not installed) so a test can skip.
// Header-only so any test target can include it without a CMake change.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sealmilter::testing::http {

inline std::string support_dir() {
#ifdef SEALMILTER_SOURCE_DIR
    return std::string(SEALMILTER_SOURCE_DIR) + "/tests/support/http";
#else
    return "tests/support/http";
#endif
}

inline std::string make_temp_dir(const std::string& tag) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/sealmilter-" + tag + "-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) return {};
    return buf.data();
}

// A port the kernel just handed out on 127.0.0.1 (another process may take it before us:
// callers retry).
inline int free_loopback_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

inline bool port_accepts(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
}

// One child process (posix_spawn: safe even when the test has threads), stdout optionally
// piped to us, stdin from /dev/null.
class Child {
public:
    Child() = default;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() { stop(); }

    bool spawn(const std::vector<std::string>& argv, bool capture_stdout, const std::string& stderr_file) {
        int pipefd[2] = {-1, -1};
        if (capture_stdout && pipe(pipefd) != 0) return false;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (capture_stdout) {
            posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
            posix_spawn_file_actions_addclose(&fa, pipefd[0]);
            posix_spawn_file_actions_addclose(&fa, pipefd[1]);
        } else {
            posix_spawn_file_actions_addopen(&fa, 1, stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        }
        posix_spawn_file_actions_addopen(&fa, 2, stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int rc = posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (capture_stdout) {
            close(pipefd[1]);
            out_fd_ = pipefd[0];
        }
        if (rc != 0) pid_ = -1;
        return rc == 0;
    }

    // First line of the child's stdout, waiting at most timeout_ms (bounded).
    std::string read_line(int timeout_ms) {
        std::string line;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (std::chrono::steady_clock::now() < deadline && line.find('\n') == std::string::npos) {
            pollfd p{out_fd_, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            char buf[256];
            const ssize_t n = read(out_fd_, buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, static_cast<size_t>(n));
        }
        return line.substr(0, line.find('\n'));
    }

    bool exited() {
        if (pid_ <= 0) return true;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
        }
        return false;
    }

    // SIGTERM, up to 5 s for the child to go, then SIGKILL. Only ever our own child's PID.
    void stop() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            for (int i = 0; i < 250 && !exited(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
            if (pid_ > 0) {
                kill(pid_, SIGKILL);
                waitpid(pid_, nullptr, 0);
                pid_ = -1;
            }
        }
        if (out_fd_ >= 0) close(out_fd_);
        out_fd_ = -1;
    }

    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    int out_fd_ = -1;
};

inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
}

// nginx with TLS (a throw-away CA) and HTTP/2 on 127.0.0.1:port(). Fill www() before or
// after start(); nginx reads files per request.
class NginxServer {
public:
    NginxServer() : prefix_(make_temp_dir("nginx")) {}
    NginxServer(const NginxServer&) = delete;
    NginxServer& operator=(const NginxServer&) = delete;
    ~NginxServer() {
        child_.stop();
        if (!prefix_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(prefix_, ec);
        }
    }

    const std::string& prefix() const { return prefix_; }
    std::string www() const { return prefix_ + "/www"; }
    std::string ca_file() const { return prefix_ + "/tls/ca.crt"; }
    std::string other_ca_file() const { return prefix_ + "/tls/other-ca.crt"; }
    std::string client_cert_file() const { return prefix_ + "/tls/client.crt"; }
    std::string client_key_file() const { return prefix_ + "/tls/client.key"; }
    std::string access_log() const { return read_text(prefix_ + "/logs/access.log"); }
    int port() const { return port_; }
    std::string base_url() const { return "https://127.0.0.1:" + std::to_string(port_); }

    // Up to 3 attempts (a port can be taken between our probe and nginx's bind); each waits
    // at most 15 s for the port to accept.
    bool start(std::string& why) {
        if (prefix_.empty()) {
            why = "mkdtemp failed";
            return false;
        }
        std::filesystem::create_directories(www());
        for (int attempt = 0; attempt < 3; ++attempt) {
            port_ = free_loopback_port();
            if (!child_.spawn({"bash", support_dir() + "/start_nginx.sh", prefix_, std::to_string(port_)}, false,
                              prefix_ + "/start.log")) {
                why = "cannot spawn start_nginx.sh";
                return false;
            }
            // The port must be *ours*: nginx writes its pid file only after it has bound the
            // listening socket, and with `daemon off` after an exec its pid is our child's. A
            // port that accepts without that is another test's nginx that won the race for it
            // (seen in CI: the publisher then met the other server's CA).
            for (int i = 0; i < 300; ++i) {
                if (child_.exited()) break;
                if (owns_port() && port_accepts(port_)) return true;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            child_.stop();
        }
        why = "nginx did not start: " + read_text(prefix_ + "/start.log") + read_text(prefix_ + "/logs/error.log");
        return false;
    }

private:
    bool owns_port() const {
        const std::string pid = read_text(prefix_ + "/nginx.pid");
        return child_.pid() > 0 && std::atoi(pid.c_str()) == child_.pid();
    }

    std::string prefix_;
    Child child_;
    int port_ = 0;
};

// fault_server.py on 127.0.0.1:port(); see the route list atop that script.
class FaultServer {
public:
    FaultServer() : dir_(make_temp_dir("fault")) {}
    FaultServer(const FaultServer&) = delete;
    FaultServer& operator=(const FaultServer&) = delete;
    ~FaultServer() {
        child_.stop();
        std::error_code ec;
        if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
    }

    bool start(std::string& why) {
        if (!child_.spawn({"python3", support_dir() + "/fault_server.py", "--lifetime", "300"}, true,
                          dir_ + "/stderr.log")) {
            why = "cannot spawn python3";
            return false;
        }
        const std::string line = child_.read_line(15000);
        port_ = std::atoi(line.c_str());
        if (port_ <= 0) {
            why = "fault server did not report a port: " + read_text(dir_ + "/stderr.log");
            return false;
        }
        return true;
    }
    int port() const { return port_; }
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    std::string dir_;
    Child child_;
    int port_ = 0;
};

}  // namespace sealmilter::testing::http

// tests/support/dns/nsd_server.hpp — a real authoritative DNS server (NSD) on 127.0.0.1
// serving a DNSSEC-signed test zone, started and stopped by PID (start_nsd.sh).
//
// Purpose:   the SMIMEA tests (unit, e2e helpers in C++) publish records in dane.example.
//            (signed with ldns-signzone; its DS is trust_anchor()) and in the unsigned child
//            insecure.dane.example., optionally with corrupted signatures for chosen owners,
//            then point libunbound at port() as a forwarder.
// Ownership: owns its child process and temp directory; the destructor stops the child by PID
//            (SIGTERM, bounded wait, SIGKILL) and removes the directory.
// Threads:   use from one thread (a test fixture).
// Errors:    start() returns false with reason() (e.g. nsd not installed) so a test can skip.
// Header-only so any test target can include it without a CMake change.
#pragma once

#include "tests/support/http/servers.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace sealmilter::testing::dns {

inline std::string support_dir() {
#ifdef SEALMILTER_SOURCE_DIR
    return std::string(SEALMILTER_SOURCE_DIR) + "/tests/support/dns";
#else
    return "tests/support/dns";
#endif
}

class NsdServer {
public:
    NsdServer() : prefix_(http::make_temp_dir("nsd")) {}
    NsdServer(const NsdServer&) = delete;
    NsdServer& operator=(const NsdServer&) = delete;
    ~NsdServer() {
        child_.stop();
        if (!prefix_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(prefix_, ec);
        }
    }

    // Zone-file lines, appended before start(): the signed zone and the unsigned child.
    void add_signed(const std::string& line) { signed_ += line + "\n"; }
    void add_unsigned(const std::string& line) { unsigned_ += line + "\n"; }
    // An owner (fully qualified, trailing dot) whose RRSIG over its SMIMEA set is corrupted.
    void tamper(const std::string& owner) { tamper_ += owner + "\n"; }

    // Signs the zone and starts nsd on a free port; retries (bounded) when another process
    // took the port first. Confirms that the nsd listening is ours: its pid file names our
    // child and its log says it started.
    bool start() {
        if (prefix_.empty()) return fail("no temp dir");
        http::write_file(prefix_ + "/records/dane.example", signed_);
        http::write_file(prefix_ + "/records/insecure.dane.example", unsigned_);
        http::write_file(prefix_ + "/tamper", tamper_);
        for (int attempt = 0; attempt < 5; ++attempt) {
            port_ = http::free_loopback_port();
            std::filesystem::remove(prefix_ + "/nsd.log");
            if (!child_.spawn({support_dir() + "/start_nsd.sh", prefix_, std::to_string(port_)}, false,
                              prefix_ + "/start.log"))
                return fail("cannot spawn start_nsd.sh");
            for (int i = 0; i < 300 && !child_.exited(); ++i) {  // signing + start: at most 30 s
                const std::string pid = http::read_text(prefix_ + "/nsd.pid");
                if (!pid.empty() && std::stol(pid) == child_.pid() &&
                    http::read_text(prefix_ + "/nsd.log").find("nsd started") != std::string::npos)
                    return true;
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            const std::string log = http::read_text(prefix_ + "/start.log") + http::read_text(prefix_ + "/nsd.log");
            child_.stop();
            if (log.find("not installed") != std::string::npos) return fail(log);
            reason_ = log;  // most likely the port was taken: try another
        }
        return false;
    }

    // Stops nsd (by PID), e.g. to see the source fail; start() is not called again.
    void stop() { child_.stop(); }

    const std::string& prefix() const { return prefix_; }
    std::string trust_anchor() const { return prefix_ + "/trust_anchor.ds"; }
    std::string forwarder() const { return "127.0.0.1@" + std::to_string(port_); }
    int port() const { return port_; }
    const std::string& reason() const { return reason_; }

private:
    bool fail(const std::string& why) {
        reason_ = why;
        return false;
    }

    std::string prefix_;
    std::string signed_;
    std::string unsigned_;
    std::string tamper_;
    std::string reason_;
    int port_ = 0;
    http::Child child_;
};

}  // namespace sealmilter::testing::dns

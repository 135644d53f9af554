// tests/support/ldap/slapd.hpp — a real OpenLDAP slapd on 127.0.0.1, started and stopped by PID.
//
// Purpose:   SlapdServer runs start_slapd.sh from a private directory: the caller's LDIF
//            (entries under ou=people,dc=example,dc=test), ldap:// with StartTLS and ldaps://
//            with a throw-away CA. stop()/start() again keeps the data (the "server down
//            mid-run" tests).
// Ownership: the object owns its child process and its temp directory; the destructor sends
//            SIGTERM (bounded wait, then SIGKILL) and removes the directory.
// Threads:   use from one thread (a test fixture).
// Errors:    start() returns false with a reason (e.g. slapd not installed) so a suite can skip.
// Header-only, beside tests/support/http/servers.hpp whose Child and port helpers it uses.
#pragma once

#include "tests/support/http/servers.hpp"

#include <string>

namespace sealmilter::testing::ldap {

inline std::string support_dir() {
#ifdef SEALMILTER_SOURCE_DIR
    return std::string(SEALMILTER_SOURCE_DIR) + "/tests/support/ldap";
#else
    return "tests/support/ldap";
#endif
}

class SlapdServer {
public:
    static constexpr const char* kBase = "ou=people,dc=example,dc=test";
    static constexpr const char* kAdminDn = "cn=admin,dc=example,dc=test";
    static constexpr const char* kAdminPassword = "secret";

    SlapdServer() : dir_(http::make_temp_dir("slapd")) {}
    SlapdServer(const SlapdServer&) = delete;
    SlapdServer& operator=(const SlapdServer&) = delete;
    ~SlapdServer() {
        child_.stop();
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
    }

    const std::string& dir() const { return dir_; }
    std::string ca_file() const { return dir_ + "/tls/ca.crt"; }
    std::string other_ca_file() const { return dir_ + "/tls/other-ca.crt"; }
    std::string ldap_uri() const { return "ldap://127.0.0.1:" + std::to_string(port_); }
    std::string ldaps_uri() const { return "ldaps://127.0.0.1:" + std::to_string(tls_port_); }
    int port() const { return port_; }
    int tls_port() const { return tls_port_; }
    bool running() { return !child_.exited(); }

    // The first start writes `ldif` (entries, blank-line separated) as the data; later starts
    // reuse the database on the same ports when they can. Up to 3 attempts on fresh ports.
    bool start(const std::string& ldif, std::string& why) {
        if (dir_.empty()) {
            why = "mkdtemp failed";
            return false;
        }
        if (!std::filesystem::exists(dir_ + "/data.ldif")) http::write_file(dir_ + "/data.ldif", ldif);
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (attempt > 0 || port_ == 0) {
                port_ = http::free_loopback_port();
                tls_port_ = http::free_loopback_port();
            }
            if (!child_.spawn({"bash", support_dir() + "/start_slapd.sh", dir_, std::to_string(port_),
                               std::to_string(tls_port_)},
                              false, dir_ + "/start.log")) {
                why = "cannot spawn start_slapd.sh";
                return false;
            }
            // Ours when slapd's pid file names our child (written once it has bound both
            // listeners; a port another process holds makes slapd exit instead).
            for (int i = 0; i < 300; ++i) {
                if (child_.exited()) break;
                if (owns_ports()) return true;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            child_.stop();
        }
        why = "slapd did not start: " + http::read_text(dir_ + "/start.log");
        return false;
    }

    void stop() { child_.stop(); }

private:
    bool owns_ports() const {
        const std::string pid = http::read_text(dir_ + "/slapd.pid");
        return child_.pid() > 0 && std::atoi(pid.c_str()) == child_.pid() && http::port_accepts(port_) &&
               http::port_accepts(tls_port_);
    }

    std::string dir_;
    http::Child child_;
    int port_ = 0;
    int tls_port_ = 0;
};

}  // namespace sealmilter::testing::ldap

// pickup/audit.cpp — the pickup audit lines (see audit.hpp).
#include "pickup/audit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace sealmilter::pickup {

std::string audit_value(std::string_view v) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (const char c : v) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == '"' || c == '\\' || c == '%') {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        } else {
            out.push_back(c);
        }
    }
    return out.empty() ? "-" : out;
}

std::unique_ptr<AuditLog> AuditLog::open(const std::string& path, base::Logger log, std::string* error) {
    if (path.empty()) return std::make_unique<AuditLog>(base::UniqueFd(), std::move(log));
    base::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640));
    if (fd.get() < 0) {
        *error = "pickup.audit_log " + path + ": cannot open for appending: " + std::strerror(errno);
        return nullptr;
    }
    return std::make_unique<AuditLog>(std::move(fd), std::move(log));
}

void AuditLog::event(std::string_view event, std::string_view address, std::string_view client,
                     std::initializer_list<std::pair<std::string_view, std::string_view>> extra) const {
    std::string line = "pickup: event=" + audit_value(event) + " address=" + audit_value(address) +
                       " client=" + audit_value(client);
    for (const auto& [k, v] : extra) line.append(" ").append(k).append("=").append(audit_value(v));
    if (fd_.get() < 0) {
        log_.info(line);
        return;
    }
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    line.insert(0, stamp);
    line.push_back('\n');
    if (::write(fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        log_.warning(std::string("pickup audit log: write failed: ") + std::strerror(errno) + "; line: " + line);
}

}  // namespace sealmilter::pickup

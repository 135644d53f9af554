// base/socket_address.hpp — an IP literal and a port as the sockaddr bind() takes.
//
// Purpose:   the listeners the daemon binds itself or checks (the pickup service, the reason a
//            metrics listener could not start) turn "HOST" + port into a sockaddr the same way:
//            an IPv4 or IPv6 literal only, never a name lookup.
// Ownership: a value.
// Threads:   pure function.
// Errors:    std::nullopt when `host` is not an IP literal.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>

namespace sealmilter::base {

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;

    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    int family() const { return storage.ss_family; }
};

// "127.0.0.1" / "::1" (no brackets) and a port in 0..65535.
std::optional<SocketAddress> ip_socket_address(const std::string& host, int port);

}  // namespace sealmilter::base

// base/socket_address.cpp — see socket_address.hpp.
#include "base/socket_address.hpp"

#include <arpa/inet.h>

#include <cstdint>

namespace sealmilter::base {

std::optional<SocketAddress> ip_socket_address(const std::string& host, int port) {
    SocketAddress a;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        a.length = sizeof *v4;
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        a.length = sizeof *v6;
    } else {
        return std::nullopt;
    }
    return a;
}

}  // namespace sealmilter::base

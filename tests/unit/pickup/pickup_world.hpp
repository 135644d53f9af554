// tests/unit/pickup/pickup_world.hpp — the issued-certificate state the pickup tests run against:
// records as the notice worker leaves them (a live token), their certificates, the CA.
#pragma once

#include "crypto/certificate.hpp"
#include "keys/issued.hpp"
#include "pickup/backend.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace sealmilter::pickup {

class PickupWorld {
public:
    virtual ~PickupWorld() = default;
    virtual std::shared_ptr<PickupBackend> backend() = 0;
    // A backend over a freshly opened store, registry and Issuer of the same keys.dir: what a
    // restarted daemon has.
    virtual std::shared_ptr<PickupBackend> reopened_backend(std::string* error) = 0;
    // The same store and registry under issue.keep_escrow = false.
    virtual std::shared_ptr<PickupBackend> backend_without_escrow() = 0;
    // Issues a certificate for `address` and sends the notice: returns the link's token.
    virtual std::string issue(const std::string& address) = 0;
    virtual std::optional<keys::IssuedRecord> record(const std::string& address) = 0;
    // `sealmilter issued revoke ADDRESS`.
    virtual void revoke(const std::string& address) = 0;
    virtual void change(const std::string& address, const std::function<void(keys::IssuedRecord&)>& fn) = 0;
    virtual crypto::Certificate certificate(const std::string& address) = 0;
    virtual crypto::Certificate ca() = 0;
};

std::unique_ptr<PickupWorld> make_world(const std::string& dir, std::string* error);

}  // namespace sealmilter::pickup

// pickup/backend.hpp — what the pickup service needs of the issued-certificate state.
//
// Purpose:   PickupBackend is the service's narrow view of keys/: find a record by the hash of
//            its link token, change one record atomically (IssuedRegistry::update), the escrowed
//            key with its certificate and the CA chain for a download, the CA certificate as
//            PEM, and "picked up". IssuerBackend implements it over the daemon's keys::Issuer
//            (its registry, Issuer::escrowed_key, Issuer::picked_up with the keep_escrow rule).
// Ownership: the service holds a shared_ptr<PickupBackend>; nullptr = no issuing configured
//            (every link is "not valid").
// Threads:   every method is safe concurrently (the registry and the Issuer lock).
// Errors:    values: nullopt / false with one sentence in *error.
#pragma once

#include "crypto/private_key.hpp"
#include "keys/issued.hpp"
#include "keys/issuer.hpp"

#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::pickup {

using RecordChange = std::function<std::optional<keys::IssuedRecord>(const std::optional<keys::IssuedRecord>&)>;

class PickupBackend {
public:
    virtual ~PickupBackend() = default;
    virtual std::time_t now() const = 0;
    virtual std::optional<keys::IssuedRecord> by_token_hash(std::string_view token_hash) const = 0;
    virtual bool update(std::string_view address, const RecordChange& change, std::string* error) = 0;
    // The escrowed private key of `record` with its certificate and the CA chain (nearest first).
    virtual std::optional<crypto::KeyMaterial> key_material(const keys::IssuedRecord& record,
                                                            std::string* error) const = 0;
    // The issuing CA's certificate (then its chain) as PEM; "" when there is none.
    virtual std::string ca_pem() const = 0;
    // After a completed download of the file made from `record`: the record becomes picked_up
    // (pickups, last_pickup_at); with issue.keep_escrow = false the escrowed key leaves the
    // store. Only when the address's record still holds record.key_id (else false + *error).
    virtual bool picked_up(const keys::IssuedRecord& record, std::string* error) = 0;
    // issue.keep_escrow: false = a picked_up record has no key left (its link is not valid).
    virtual bool keeps_escrow() const = 0;
};

// Over the daemon's keys::Issuer (the one that issues, so its key store has every escrowed key):
// `issuer()` is asked on every call, so a SIGHUP that builds a new Issuer is followed; nullptr =
// issuing is off (no link is valid, /ca.pem is absent).
class IssuerBackend final : public PickupBackend {
public:
    using Provider = std::function<std::shared_ptr<keys::Issuer>()>;
    explicit IssuerBackend(Provider issuer) : issuer_(std::move(issuer)) {}

    std::time_t now() const override;
    std::optional<keys::IssuedRecord> by_token_hash(std::string_view token_hash) const override;
    bool update(std::string_view address, const RecordChange& change, std::string* error) override;
    std::optional<crypto::KeyMaterial> key_material(const keys::IssuedRecord& record, std::string* error) const override;
    std::string ca_pem() const override;
    bool picked_up(const keys::IssuedRecord& record, std::string* error) override;
    bool keeps_escrow() const override;

private:
    Provider issuer_;
};

// Certificates as concatenated PEM blocks.
std::string certificates_pem(const std::vector<crypto::Certificate>& certs);

}  // namespace sealmilter::pickup

// pickup/backend.hpp — what the pickup service needs of the issued-certificate state.
//
// Purpose:   PickupBackend is the service's narrow view of keys/: find a record by the hash of
//            its link token, change one record atomically (IssuedRegistry::update), the escrowed
//            key with its certificate and the CA chain for a download, the CA certificate as
//            PEM, and "picked up". RegistryBackend implements it over keys.dir: the registry
//            files, and a key store opened afresh for each download (the daemon's issuer or
//            the CLI may have imported the key after this process opened anything), so the
//            service never depends on which process issued the certificate.
// Ownership: the service holds a shared_ptr<PickupBackend>; nullptr = no issuing configured
//            (every link is "not valid").
// Threads:   every method is safe concurrently (the registry locks; each download opens its
//            own store).
// Errors:    values: nullopt / false with one sentence in *error.
#pragma once

#include "base/logger.hpp"
#include "crypto/private_key.hpp"
#include "keys/issued.hpp"
#include "keys/store.hpp"

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
    // After a download: the record becomes picked_up (pickups, last_pickup_at); with
    // issue.keep_escrow = false the escrowed key leaves the store.
    virtual bool picked_up(const keys::IssuedRecord& record, std::string* error) = 0;
};

class RegistryBackend final : public PickupBackend {
public:
    RegistryBackend(std::shared_ptr<keys::IssuedRegistry> registry, keys::StoreOptions store, bool keep_escrow,
                    base::Logger log)
        : registry_(std::move(registry)), store_(std::move(store)), keep_escrow_(keep_escrow), log_(std::move(log)) {}

    std::time_t now() const override { return registry_->now(); }
    std::optional<keys::IssuedRecord> by_token_hash(std::string_view token_hash) const override;
    bool update(std::string_view address, const RecordChange& change, std::string* error) override;
    std::optional<crypto::KeyMaterial> key_material(const keys::IssuedRecord& record, std::string* error) const override;
    std::string ca_pem() const override;
    bool picked_up(const keys::IssuedRecord& record, std::string* error) override;

private:
    bool remove_escrowed(const keys::IssuedRecord& record, std::string* error);

    std::shared_ptr<keys::IssuedRegistry> registry_;
    keys::StoreOptions store_;
    bool keep_escrow_;
    base::Logger log_;
};

// Certificates as concatenated PEM blocks.
std::string certificates_pem(const std::vector<crypto::Certificate>& certs);

}  // namespace sealmilter::pickup

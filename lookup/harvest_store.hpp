// lookup/harvest_store.hpp — harvested certificates on disk, and the "harvest" source.
//
// Purpose:   HarvestStore keeps what core::harvest() found in inbound signed mail:
//            DIR/<address>/<SHA-256>.pem plus <SHA-256>.json (address, first and last seen,
//            SMIMECapabilities, signer, whether SMIMEEncryptionKeyPreference chose it). The
//            address directory name is percent-encoded so that no address can leave DIR.
//            HarvestSource answers lookups from it; the Chain asks it last (lookup.order
//            "...,harvest") and never caches its answers, so a harvested certificate never
//            overrides an admin-pinned or a directory certificate (SPEC §6). Its candidates
//            pass the Validator like every other source's.
//            HarvestStorage is what the source and core::harvest_inbound use: HarvestStore is
//            the file implementation (the default, one node); pg/harvest.hpp keeps the same
//            records in PostgreSQL for several nodes (database.shared = harvest).
// Ownership: plain values; reads the directory on every lookup (harvests arrive at run time).
// Threads:   save() writes a temp file and renames it: safe against concurrent readers and
//            writers in other threads and processes (the last writer wins).
// Errors:    save() throws std::runtime_error naming the file; lookups turn an unreadable
//            directory into a TempError answer and skip unparsable files.
#pragma once

#include "lookup/source.hpp"

#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct HarvestRecord {
    std::string email;  // normalised
    crypto::Certificate certificate;
    std::time_t first_seen = 0;
    std::time_t last_seen = 0;
    std::vector<std::string> capabilities;  // SMIMECapabilities names, as the sender listed them
    std::string signer_fingerprint;
    bool from_key_preference = false;
};

class HarvestStorage {
public:
    virtual ~HarvestStorage() = default;
    // Stores the record, keeping first_seen of an earlier copy of the same certificate.
    // Throws std::runtime_error naming what could not be written.
    virtual void save(HarvestRecord record) const = 0;
    // Every readable record for the address, newest last_seen first; *error is set when the
    // store could not be read at all (the source then answers TempError).
    std::vector<HarvestRecord> records(const std::string& email, std::string* error = nullptr) const {
        return read_records(email, error);
    }

protected:
    virtual std::vector<HarvestRecord> read_records(const std::string& email, std::string* error) const = 0;
};

class HarvestStore final : public HarvestStorage {
public:
    explicit HarvestStore(std::string dir);
    const std::string& dir() const { return dir_; }
    void save(HarvestRecord record) const override;
    // The directory name an address is kept under (percent-encoded, never "." or "..").
    static std::string encode(const std::string& email);
    static std::string pem(const crypto::Certificate& c);  // the certificate as PEM text

protected:
    std::vector<HarvestRecord> read_records(const std::string& email, std::string* error) const override;

private:
    std::string dir_;
};

class HarvestSource final : public CertificateSource {
public:
    explicit HarvestSource(std::string dir) : store_(std::make_shared<HarvestStore>(std::move(dir))) {}
    explicit HarvestSource(std::shared_ptr<const HarvestStorage> store) : store_(std::move(store)) {}
    std::string name() const override { return "harvest"; }
    SourceAnswer lookup(const Query& query) override;

private:
    std::shared_ptr<const HarvestStorage> store_;
};

}  // namespace sealmilter::lookup

// cli/pickup.hpp — the pickup service of `sealmilter run` (issue 13, docs/issuing.md): its
// settings from pickup.* and issue.*, checked the same way by `check-config`, and its start.
//
// Ownership: start_pickup's service borrows `holder` (the daemon's snapshots): the caller
//            destroys the service first.
// Threads:   the CLI's thread; the service runs its own (libmicrohttpd's pool).
// Errors:    CliError(kConfig) with one sentence naming the key (a bad value, an unreadable
//            file, the port in use: the daemon does not start).
#pragma once

#include "base/logger.hpp"
#include "conf/config.hpp"
#include "keys/issuer.hpp"
#include "milter/services.hpp"
#include "pickup/service.hpp"

#include <functional>
#include <memory>
#include <optional>

namespace sealmilter::cli {

// The service's settings; nullopt when pickup.listen is empty (the service is off). Reads the
// certificate, key and logo files and checks them (the key belongs to the certificate).
std::optional<pickup::PickupSettings> pickup_settings(const conf::Config& config);

// check-config: pickup_settings() and, as notes, what would make every link "not valid" (no
// key store, no CA in keys.dir).
void check_pickup(const conf::Config& config);

// Starts the service when pickup.listen is set (nullptr otherwise). `issuer` gives the daemon's
// Issuer (nullptr: every link answers "not valid"); the code mails go to the current snapshot's
// milter.reinject, signed by its key store when it has a key for issue.notice_from.
std::unique_ptr<pickup::PickupService> start_pickup(const conf::Config& config, const milter::ServicesHolder& holder,
                                                    std::function<std::shared_ptr<keys::Issuer>()> issuer,
                                                    const base::Logger& log);

// Until `run` shares the daemon's Issuer with the pickup (issue 13 part B's cli::Issuing owns
// it): an Issuer of its own over keys.dir (no pool threads: it never issues); nullptr (with a
// warning) when there is no key store or no CA. Its key store index is read at start, so keys
// escrowed later by another Issuer are only found through the shared one: replace this with
// the daemon's Issuer when both parts are merged.
std::shared_ptr<keys::Issuer> open_pickup_issuer(const conf::Config& config, const base::Logger& log);

}  // namespace sealmilter::cli

// core/inbound.hpp — what the gateway learns from inbound mail: harvesting certificates.
//
// Purpose:   mail to one of the organisation's own domains is inspected for S/MIME
//            signatures (core/harvest.hpp); certificates that validate are kept in the harvest
//            store (and queued for publishing) so later outbound mail can be encrypted to the
//            signer. The message itself never changes here.
// Ownership: InboundSettings shares the store and publisher; the validator is borrowed (the
//            lookup stack, kept alive by the caller's snapshot).
// Threads:   harvest_inbound() is re-entrant; the store and the publisher are thread-safe.
// Errors:    never throws: every failure is logged and the message passes unchanged.
#pragma once

#include "base/logger.hpp"
#include "core/message.hpp"
#include "crypto/private_key.hpp"
#include "keys/key_ring.hpp"
#include "lookup/harvest_store.hpp"
#include "lookup/publisher.hpp"
#include "lookup/validate.hpp"

#include <memory>
#include <string>
#include <vector>

namespace sealmilter::core {

struct InboundSettings {
    bool enabled = false;  // harvest.enabled
    const lookup::Validator* validator = nullptr;
    std::shared_ptr<const lookup::HarvestStorage> store;
    std::vector<std::string> domains;  // mail to these is inbound
    unsigned long long max_size = 26214400;
    // To open encrypted signed mail: the key store when one is configured, else the one-off
    // ring of harvest.keys; null = none.
    std::shared_ptr<const keys::KeyRing> keys;
    std::shared_ptr<lookup::Publisher> publisher;  // directory.publish_url; null = off
};

// Harvests the message's signer certificates when any recipient is inbound; returns how many
// were kept (metrics).
size_t harvest_inbound(const Message& m, const std::string& sender, const std::vector<std::string>& recipients,
                       const InboundSettings& s, const base::Logger& log) noexcept;

}  // namespace sealmilter::core

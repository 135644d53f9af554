// lookup/stack.hpp — the whole lookup side of the gateway, built from settings.
//
// Purpose:   LookupStack holds the validator, the cache, the sources of lookup.order (built
//            through the SourceRegistry), the Chain over them, and makes the RCPT-time
//            Resolver. The daemon, every CLI command and the benchmarks build the same stack.
// Ownership: LookupStack owns every part; the Chain borrows the others, a Resolver borrows
//            the Chain (it must not outlive the stack).
// Threads:   a built stack is as thread-safe as its parts (all are).
// Errors:    SettingsError naming the key for a bad trust anchor / CRL / token file or an
//            order naming an unknown source; a configured source that cannot work is listed
//            in `errors` (its lookups answer TempError).
#pragma once

#include "lookup/certificate_cache.hpp"
#include "lookup/chain.hpp"
#include "lookup/registry.hpp"
#include "lookup/resolver.hpp"
#include "lookup/settings.hpp"
#include "lookup/validate.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct LookupStack {
    std::unique_ptr<Validator> validator;
    std::unique_ptr<CertificateCache> cache;  // null when cache.path is empty
    std::vector<std::unique_ptr<CertificateSource>> sources;
    std::unique_ptr<Chain> chain;
    std::vector<std::string> notes;   // e.g. "directory: off (directory.url is empty)"
    std::vector<std::string> errors;  // a configured source that cannot work

    std::unique_ptr<Resolver> make_resolver(ResolverOptions options = {}, LookupObserver observe = {}) const;
};

using ErrorHook = std::function<void(const std::string&)>;
// Opens the cache for the "cache" step; empty = the SQLite cache of open_cache() below. The
// top (cli/wiring) passes another backend here (PostgreSQL, database.shared = cache).
using CacheOpener = std::function<std::unique_ptr<CertificateCache>(const Settings&, const ErrorHook&)>;

std::unique_ptr<LookupStack> build_lookup_stack(const Settings& settings, const SourceRegistry& registry,
                                                const ErrorHook& on_error, const CacheOpener& open = {});

// Only the cache (cache.*), for `cache list|purge`; null when cache.path is empty.
std::unique_ptr<CertificateCache> open_cache(const Settings& settings, const ErrorHook& on_error);

}  // namespace sealmilter::lookup

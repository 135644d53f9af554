// lookup/registry.hpp — certificate sources built by their lookup.order name.
//
// Purpose:   each source registers a factory under the name lookup.order uses ("store",
//            "directory", "harvest"; "ldap", "dns", "issued" later register the same way);
//            the stack builder (stack.hpp) asks the registry for every name in the order.
//            A factory reads only the plain Settings (settings.hpp), never conf/. A source
//            that is configured off (e.g. directory.url empty) comes back as null with a note.
//            The options builders of the HTTP-based parts live here too, so the directory
//            source and the publisher read one TLS policy from the same keys.
// Ownership: factories return owned sources; the registry owns only its factories.
// Threads:   build the registry once, then find() from any thread.
// Errors:    a factory throws SettingsError naming the key for a value it cannot use; a
//            source that is configured but cannot work is built with an entry in `errors`
//            (its lookups answer TempError).
#pragma once

#include "lookup/directory.hpp"
#include "lookup/http.hpp"
#include "lookup/publisher.hpp"
#include "lookup/settings.hpp"
#include "lookup/source.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sealmilter::lookup {

struct BuiltSource {
    std::unique_ptr<CertificateSource> source;  // null = configured off
    std::vector<std::string> notes;             // e.g. "directory: off (directory.url is empty)"
    std::vector<std::string> errors;            // configured but unusable
};

using SourceFactory = std::function<BuiltSource(const Settings&)>;

class SourceRegistry {
public:
    void add(std::string name, SourceFactory factory);
    const SourceFactory* find(const std::string& name) const;  // null = no such source
    std::vector<std::string> names() const;

private:
    std::map<std::string, SourceFactory> factories_;
};

// store, directory, harvest, ldap, dns; "issued" as configured off (add_issued_source).
SourceRegistry builtin_sources();

// directory.* -> the directory source's options (reads directory.token_file).
DirectoryOptions directory_options(const Settings& settings);
// The TLS/authentication policy of directory.* for any request to the directory.
HttpOptions directory_http_options(const Settings& settings);
// directory.publish_url and harvest.dir -> the publisher's options, with the same TLS policy
// (CA file, client certificate, token) as lookups.
PublishOptions publish_options(const Settings& settings);

}  // namespace sealmilter::lookup

// fuzz/fuzz_policy.cpp — the recipient policy table (core/policy.hpp) from arbitrary text.
//
// A table either parses or throws PolicyError (anything else escaping is a bug). When it
// parses, every key in the text is looked up in the shape it matches: an exact address must
// find itself; "@domain" must answer for local@domain unless that address is itself a key;
// "*" must answer for an address no other key covers. in_domains gets the keys as domains.
#include "core/policy.hpp"
#include "fuzz/fuzz_support.hpp"

#include "base/ascii.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace sealmilter;

namespace {

using base::to_lower;

// The first token of every non-comment line, split as the parser splits it.
std::vector<std::string> keys_of(std::string_view text) {
    std::vector<std::string> keys;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        if (const size_t hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        std::istringstream fields(line);
        std::string key;
        if (fields >> key) keys.push_back(to_lower(key));
    }
    return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text = fuzz::as_view(data, size);
    std::optional<core::PolicyTable> table;
    try {
        table = core::PolicyTable::parse(text, "fuzz.policy");
    } catch (const core::PolicyError& e) {
        FUZZ_CHECK(std::string(e.what()).rfind("fuzz.policy:", 0) == 0,
                   std::string("error without file:line: ") + e.what());
        return 0;
    }
    const std::vector<std::string> keys = keys_of(text);
    FUZZ_CHECK(table->size() == keys.size(),
               "table size " + std::to_string(table->size()) + " for " + std::to_string(keys.size()) + " keys");
    const auto has_key = [&](const std::string& k) { return std::find(keys.begin(), keys.end(), k) != keys.end(); };
    for (const std::string& k : keys) {
        if (k == "*") {
            const core::PolicyMatch m = table->lookup("nobody@nowhere.invalid.", core::Mode::Never);
            FUZZ_CHECK(!m.key.empty(), "'*' does not answer");
        } else if (k.front() == '@') {
            const std::string probe = "fuzz-probe" + k;
            if (has_key(probe)) continue;
            FUZZ_CHECK(table->lookup(probe, core::Mode::Never).key == k, "'" + k + "' does not answer for " + probe);
        } else if (k.front() == '.') {
            (void)table->lookup("fuzz-probe@x" + k, core::Mode::Never);
        } else {
            const core::PolicyMatch m = table->lookup(k, core::Mode::Never);
            FUZZ_CHECK(m.key == k && m.line > 0, "exact key '" + k + "' does not find itself");
        }
    }
    (void)core::in_domains("fuzz-probe@" + (keys.empty() ? std::string() : keys.front()), keys);
    return 0;
}

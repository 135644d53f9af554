// lookup/settings.cpp — see settings.hpp.
#include "lookup/settings.hpp"

#include "base/ascii.hpp"
#include "base/file.hpp"

#include <system_error>

namespace sealmilter::lookup {

long long Settings::get_int(std::string_view key) const {
    const std::string v = get(key);
    try {
        size_t used = 0;
        const long long n = std::stoll(v, &used);
        if (used == v.size()) return n;
    } catch (const std::logic_error&) {  // invalid_argument, out_of_range
    }
    throw SettingsError(std::string(key) + ": not a number: " + v);
}

std::vector<std::string> Settings::get_list(std::string_view key) const {
    std::vector<std::string> out;
    const std::string v = get(key);
    std::string_view rest = v;
    while (!rest.empty()) {
        const size_t comma = rest.find(',');
        const std::string_view item = base::trim(rest.substr(0, comma));
        if (!item.empty()) out.emplace_back(item);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    return out;
}

std::string MapSettings::get(std::string_view key) const {
    const auto it = values_.find(key);
    if (it == values_.end()) throw std::out_of_range("no setting " + std::string(key));
    return it->second;
}

std::string read_secret(const std::string& key, const std::string& path) {
    std::string text;
    try {
        text = base::read_file(path, size_t{64} * 1024);
    } catch (const std::system_error& e) {
        throw SettingsError(key + ": " + e.what());
    }
    std::string line = text.substr(0, text.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

}  // namespace sealmilter::lookup

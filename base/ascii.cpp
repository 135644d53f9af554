// base/ascii.cpp — see ascii.hpp.
#include "base/ascii.hpp"

#include <algorithm>

namespace sealmilter::base {

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
    return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

size_t ifind(std::string_view haystack, std::string_view needle) noexcept {
    if (needle.empty()) return 0;
    const auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                                [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
    return it == haystack.end() ? std::string_view::npos : static_cast<size_t>(it - haystack.begin());
}

std::string_view trim(std::string_view s) noexcept {
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace sealmilter::base

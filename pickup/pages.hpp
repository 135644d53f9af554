// pickup/pages.hpp — the HTML of the pickup service: server-rendered, no JavaScript.
//
// Purpose:   every page shares one layout (lang, a header with the logo and the organisation's
//            name, one <main> with one <h1>, the stylesheet /style.css so the CSP needs no
//            'unsafe-inline'); forms carry their CSRF token in a hidden field and label every
//            input. Everything that comes from outside (address, organisation name, messages)
//            goes through html_escape(). The help page's illustrations are SVG files compiled
//            into the binary (svg_image()).
// Ownership: values.
// Threads:   pure functions.
// Errors:    none.
#pragma once

#include "base/encoding.hpp"  // base::html_escape

#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::pickup {

using base::html_escape;  // the one HTML escaping (base/encoding.hpp)


struct Look {
    std::string org_name;   // issue.org_name
    bool has_logo = false;  // /logo.png is served
};

std::string page_waiting(const Look& look, std::string_view address, std::string_view token, std::string_view csrf);
// The code entry form. `note`: e.g. "a code was sent recently; check your mailbox"; `error`:
// what was wrong with the last attempt. `resend_csrf` is the token of the "send a new code" form.
std::string page_code_entry(const Look& look, std::string_view address, std::string_view token,
                            std::string_view csrf, std::string_view resend_csrf, std::string_view note,
                            std::string_view error);
std::string page_ready(const Look& look, std::string_view address, std::string_view download_id, bool legacy);
std::string page_not_valid(const Look& look);
std::string page_forbidden(const Look& look);
std::string page_too_many(const Look& look);
std::string page_unavailable(const Look& look);
std::string page_not_found(const Look& look);
std::string page_help(const Look& look);
std::string page_home(const Look& look);

const std::string& stylesheet();
// The illustration `name` ("outlook", "thunderbird", "apple-mail", "ios") as SVG; nullopt when
// there is none of that name.
std::optional<std::string> svg_image(std::string_view name);

}  // namespace sealmilter::pickup

// pickup/pages.cpp — the pickup service's pages (see pages.hpp).
#include "pickup/pages.hpp"

#include <array>
#include <utility>

namespace sealmilter::pickup {

namespace {

std::string layout(const Look& look, std::string_view title, const std::string& body) {
    const std::string org = html_escape(look.org_name);
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"robots\" content=\"noindex, nofollow\">\n<title>";
    h += html_escape(title) + " - " + org + "</title>\n<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n<body>\n";
    h += "<a class=\"skip\" href=\"#main\">Skip to content</a>\n<header class=\"top\"><div class=\"bar\">";
    if (look.has_logo) h += "<img class=\"logo\" src=\"/logo.png\" alt=\"\" height=\"40\">";
    h += "<span class=\"org\">" + org + "</span><span class=\"secure\">Secure mail</span></div></header>\n";
    h += "<main id=\"main\" class=\"card\">\n" + body + "</main>\n";
    h += "<footer><p>" + org + " &middot; <a href=\"/help\">How to install your key</a></p></footer>\n</body>\n</html>\n";
    return h;
}

std::string hidden_csrf(std::string_view csrf) {
    return "<input type=\"hidden\" name=\"csrf\" value=\"" + html_escape(csrf) + "\">";
}

std::string code_form_action(std::string_view token, std::string_view what) {
    return "/p/" + html_escape(token) + "/" + std::string(what);
}

}  // namespace

std::string page_waiting(const Look& look, std::string_view address, std::string_view token, std::string_view csrf) {
    std::string b = "<h1>A secure message is waiting</h1>\n";
    b += "<p>" + html_escape(look.org_name) + " sent an encrypted message to <strong>" + html_escape(address) +
         "</strong>. To read it in your own mail program, you install a personal key once.</p>\n";
    b += "<ol class=\"steps\"><li>We send a one-time code to your address.</li>"
         "<li>You enter the code and choose a password.</li>"
         "<li>You download your key and open it in your mail program.</li></ol>\n";
    b += "<form method=\"post\" action=\"" + code_form_action(token, "code") + "\">" + hidden_csrf(csrf) +
         "<button type=\"submit\">Send me a code</button></form>\n";
    b += "<p><a href=\"" + code_form_action(token, "enter") + "\">I already have a code</a></p>\n";
    b += "<p class=\"small\">Opening this page does not send anything. If you did not expect this message, you "
         "can close this page.</p>\n";
    return layout(look, "A secure message is waiting", b);
}

std::string page_code_entry(const Look& look, std::string_view address, std::string_view token,
                            std::string_view csrf, std::string_view resend_csrf, std::string_view note,
                            std::string_view error) {
    std::string b = "<h1>Enter your code</h1>\n";
    if (!error.empty()) b += "<p class=\"error\" role=\"alert\">" + html_escape(error) + "</p>\n";
    if (!note.empty()) b += "<p class=\"note\" role=\"status\">" + html_escape(note) + "</p>\n";
    b += "<p>We sent a code to <strong>" + html_escape(address) +
         "</strong>. It is valid for 15 minutes. Then choose a password: it protects the key file you "
         "download, and your mail program asks for it once when you install the key.</p>\n";
    b += "<form method=\"post\" action=\"" + code_form_action(token, "download") + "\">" + hidden_csrf(csrf);
    b += "<div class=\"field\"><label for=\"code\">Code from the mail</label>"
         "<input id=\"code\" name=\"code\" type=\"text\" autocomplete=\"one-time-code\" autocapitalize=\"characters\" "
         "spellcheck=\"false\" maxlength=\"32\" required></div>\n";
    b += "<div class=\"field\"><label for=\"password\">New password for the key file (at least 8 characters)</label>"
         "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" "
         "maxlength=\"256\" required></div>\n";
    b += "<div class=\"field\"><label for=\"password2\">The same password again</label>"
         "<input id=\"password2\" name=\"password2\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" "
         "maxlength=\"256\" required></div>\n";
    b += "<div class=\"check\"><input id=\"legacy\" name=\"legacy\" type=\"checkbox\" value=\"1\">"
         "<label for=\"legacy\">legacy format (3DES) for old mail programs</label></div>\n";
    b += "<button type=\"submit\">Download my key</button></form>\n";
    b += "<form class=\"again\" method=\"post\" action=\"" + code_form_action(token, "code") + "\">" +
         hidden_csrf(resend_csrf) + "<button type=\"submit\" class=\"secondary\">Send me a new code</button></form>\n";
    b += "<p class=\"small\"><a href=\"/help\">How to install the key</a> &middot; "
         "<a href=\"/ca.pem\">Our certificate authority (PEM)</a></p>\n";
    return layout(look, "Enter your code", b);
}

std::string page_ready(const Look& look, std::string_view address, std::string_view download_id, bool legacy) {
    std::string b = "<h1>Your key is ready</h1>\n";
    b += "<p>Your key and certificate for <strong>" + html_escape(address) + "</strong> are ready" +
         (legacy ? " in the legacy format (3DES)" : "") + ". The file is protected by the password you chose.</p>\n";
    b += "<p><a class=\"button\" href=\"/d/" + html_escape(download_id) + "\" download>Download " +
         html_escape(address) + ".p12</a></p>\n";
    b += "<p class=\"small\">This download link works once and for 5 minutes. To download again later, open the "
         "link from your mail and ask for a new code.</p>\n";
    b += "<h2>Next steps</h2>\n<ul><li><a href=\"/help\">Install the key in Outlook, Thunderbird, Apple Mail or "
         "on iPhone and iPad</a></li>\n<li><a href=\"/ca.pem\">Download our certificate authority (PEM)</a>, which "
         "some mail programs ask for to trust your certificate</li></ul>\n";
    return layout(look, "Your key is ready", b);
}

std::string page_not_valid(const Look& look) {
    return layout(look, "This link is not valid any more",
                  "<h1>This link is not valid any more</h1>\n<p>This link is not valid any more; ask for a new one. "
                  "Please contact " + html_escape(look.org_name) +
                      " and ask them to send you a new link for your secure messages.</p>\n");
}

std::string page_forbidden(const Look& look) {
    return layout(look, "The form has expired",
                  "<h1>The form has expired</h1>\n<p>Nothing was done. Please open the link from your mail again "
                  "and start over.</p>\n");
}

std::string page_too_many(const Look& look) {
    return layout(look, "Too many requests",
                  "<h1>Too many requests</h1>\n<p>Please wait a minute and try again.</p>\n");
}

std::string page_unavailable(const Look& look) {
    return layout(look, "Please try again later",
                  "<h1>Please try again later</h1>\n<p>The service cannot complete this step right now. Nothing "
                  "was lost; please try again in a few minutes.</p>\n");
}

std::string page_not_found(const Look& look) {
    return layout(look, "Page not found", "<h1>Page not found</h1>\n<p>There is no page at this address.</p>\n");
}

std::string page_home(const Look& look) {
    return layout(look, "Secure mail",
                  "<h1>Secure mail</h1>\n<p>This service hands out the keys for encrypted messages from " +
                      html_escape(look.org_name) +
                      ". Please use the link in the mail you received.</p>\n<p><a href=\"/help\">How to install "
                      "your key</a></p>\n");
}

namespace {

struct HelpClient {
    const char* id;
    const char* name;
    const char* alt;
    std::array<const char*, 4> steps;
};

constexpr std::array<HelpClient, 4> kClients{{
    {"outlook", "Outlook (Windows)", "Outlook's Trust Center with the email security settings",
     {"Double-click the downloaded .p12 file; the certificate import wizard opens. Choose Current User, enter "
      "your password, and let Windows choose the store.",
      "In Outlook, open File, Options, Trust Center, Trust Center Settings, Email Security.",
      "Under Encrypted email, choose Settings and select your new certificate for signing and encryption.",
      "Restart Outlook: the secure message now opens."}},
    {"thunderbird", "Thunderbird", "Thunderbird's certificate manager with the Import button",
     {"Open Settings, Privacy & Security, scroll to Certificates, and choose Manage Certificates.",
      "On the Your Certificates tab choose Import, pick the downloaded .p12 file and enter your password.",
      "Open Account Settings, End-To-End Encryption, and under S/MIME select the new certificate.",
      "The secure message now opens."}},
    {"apple-mail", "Apple Mail (Mac)", "Keychain Access with the imported certificate",
     {"Double-click the downloaded .p12 file; Keychain Access opens.",
      "Choose the login keychain and enter your password.",
      "Restart Mail: it finds the key by your address.", "The secure message now opens."}},
    {"ios", "iPhone and iPad", "The iOS settings with the installed profile and S/MIME switch",
     {"Open the .p12 file (for example from the Files app) and allow the profile download.",
      "Open Settings, Profile Downloaded, tap Install and enter your password.",
      "In Settings, Mail, Accounts, your account, Advanced: turn on S/MIME.",
      "The secure message now opens in Mail."}},
}};

}  // namespace

std::string page_help(const Look& look) {
    std::string b = "<h1>How to install your key</h1>\n<p>You need the .p12 file you downloaded and the password "
                    "you chose. Pick your mail program:</p>\n<ul>";
    for (const HelpClient& c : kClients)
        b += std::string("<li><a href=\"#") + c.id + "\">" + c.name + "</a></li>";
    b += "</ul>\n";
    for (const HelpClient& c : kClients) {
        b += std::string("<section id=\"") + c.id + "\"><h2>" + c.name + "</h2>\n<img class=\"shot\" src=\"/img/" +
             c.id + ".svg\" alt=\"" + c.alt + "\" width=\"320\" height=\"180\">\n<ol>";
        for (const char* s : c.steps) b += std::string("<li>") + html_escape(s) + "</li>";
        b += "</ol></section>\n";
    }
    b += "<p>Some programs also ask to trust our certificate authority: <a href=\"/ca.pem\">download it here "
         "(PEM)</a>.</p>\n";
    return layout(look, "How to install your key", b);
}

const std::string& stylesheet() {
    static const std::string css = R"CSS(:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; font-size: 17px;
  line-height: 1.5; color: #1a1a1a; background: #eef1f5; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; }
.top { background: #0b3d6e; color: #fff; }
.bar { max-width: 44rem; margin: 0 auto; padding: .9rem 1.2rem; display: flex; align-items: center; gap: .8rem; }
.logo { height: 40px; width: auto; background: #fff; border-radius: 4px; padding: 2px; }
.org { font-weight: 600; font-size: 1.2rem; flex: 1; }
.secure { font-size: .9rem; border: 1px solid #fff; border-radius: 3px; padding: .1rem .5rem; }
.card { max-width: 44rem; margin: 2rem auto; background: #fff; padding: 1.5rem 2rem 2rem; border-radius: 6px;
  box-shadow: 0 1px 3px rgba(0, 0, 0, .15); }
h1 { font-size: 1.6rem; color: #0b3d6e; margin-top: .3rem; }
h2 { font-size: 1.2rem; color: #0b3d6e; }
a { color: #0b4f94; }
.field { margin: 1rem 0; }
label { display: block; font-weight: 600; margin-bottom: .3rem; }
.check label { display: inline; font-weight: normal; margin-left: .4rem; }
input[type=text], input[type=password] { width: 100%; max-width: 24rem; padding: .55rem; font-size: 1rem;
  border: 1px solid #5a6472; border-radius: 4px; }
button, .button { display: inline-block; margin-top: 1rem; padding: .65rem 1.3rem; font-size: 1rem; font-weight: 600;
  color: #fff; background: #0b3d6e; border: 2px solid #0b3d6e; border-radius: 4px; cursor: pointer; text-decoration: none; }
button.secondary { color: #0b3d6e; background: #fff; }
a:focus, button:focus, input:focus, .button:focus { outline: 3px solid #c77700; outline-offset: 2px; }
.error { color: #8a1010; background: #fdecec; border-left: 4px solid #8a1010; padding: .6rem .9rem; }
.note { background: #eef5fc; border-left: 4px solid #0b4f94; padding: .6rem .9rem; }
.small { font-size: .9rem; color: #3d4650; }
.shot { display: block; max-width: 100%; height: auto; border: 1px solid #c9d0d8; border-radius: 4px; }
footer { max-width: 44rem; margin: 0 auto 2rem; padding: 0 1.2rem; font-size: .9rem; color: #3d4650; }
)CSS";
    return css;
}

namespace {

// A stylised window: title bar, a side list, and a highlighted row with a key symbol.
std::string window_svg(std::string_view title, std::string_view row, std::string_view accent) {
    std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"180\" viewBox=\"0 0 320 180\">";
    s += "<rect x=\"1\" y=\"1\" width=\"318\" height=\"178\" rx=\"8\" fill=\"#ffffff\" stroke=\"#5a6472\"/>";
    s += "<rect x=\"1\" y=\"1\" width=\"318\" height=\"26\" rx=\"8\" fill=\"" + std::string(accent) + "\"/>";
    s += "<text x=\"14\" y=\"19\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#ffffff\">" +
         html_escape(title) + "</text>";
    s += "<rect x=\"12\" y=\"38\" width=\"80\" height=\"128\" fill=\"#eef1f5\"/>";
    for (int i = 0; i < 4; ++i)
        s += "<rect x=\"20\" y=\"" + std::to_string(50 + 26 * i) + "\" width=\"60\" height=\"8\" fill=\"#c9d0d8\"/>";
    s += "<rect x=\"104\" y=\"60\" width=\"200\" height=\"34\" rx=\"4\" fill=\"#eef5fc\" stroke=\"" +
         std::string(accent) + "\"/>";
    s += "<circle cx=\"122\" cy=\"77\" r=\"7\" fill=\"none\" stroke=\"#c77700\" stroke-width=\"3\"/>"
         "<path d=\"M129 77h16v6M139 77v5\" stroke=\"#c77700\" stroke-width=\"3\" fill=\"none\"/>";
    s += "<text x=\"152\" y=\"82\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#1a1a1a\">" + html_escape(row) +
         "</text>";
    s += "<rect x=\"224\" y=\"136\" width=\"80\" height=\"26\" rx=\"4\" fill=\"" + std::string(accent) +
         "\"/><text x=\"252\" y=\"153\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#ffffff\">OK</text>";
    return s + "</svg>\n";
}

}  // namespace

std::optional<std::string> svg_image(std::string_view name) {
    if (name == "outlook") return window_svg("Outlook - Trust Center", "Email Security: your key", "#0f5cab");
    if (name == "thunderbird") return window_svg("Thunderbird - Certificate Manager", "Import: name.p12", "#7a3a9a");
    if (name == "apple-mail") return window_svg("Keychain Access", "login: your certificate", "#3d4650");
    if (name == "ios") return window_svg("Settings - Profile", "Install: your key", "#1f7a3a");
    return std::nullopt;
}

}  // namespace sealmilter::pickup

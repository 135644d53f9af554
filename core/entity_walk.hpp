// core/entity_walk.hpp — one MIME entity walker for the code that looks inside messages
// (harvest, decrypt).
//
// Purpose:   MimeEntity is a view of one entity in CRLF text: its header fields (names lower
//            case, values unfolded and trimmed), its parsed Content-Type, its exact raw bytes
//            (what a multipart/signed signs) and its body, decoded per
//            Content-Transfer-Encoding on request. walk_entities() visits entities depth-first;
//            the visitor says where to go next: into the parts of a multipart, into bytes it
//            produced itself (a decoded, decrypted or unwrapped layer), nowhere, or stop.
//            Bounds: `max_depth` nesting levels below the top entity, `max_entities` visits in
//            all; what lies beyond is not visited and the result says so.
// Ownership: a MimeEntity borrows the text it was parsed from. Bytes a visitor hands back in
//            Next::into() are owned by the walk until the walk returns.
// Threads:   re-entrant.
// Errors:    none for content: malformed input parses as far as it goes (a line that is not a
//            field is skipped, as MUAs do; a multipart without its closing delimiter yields
//            the parts seen).
#pragma once

#include "core/mime.hpp"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::core {

class MimeEntity {
public:
    // A CRLF entity: header fields up to the first empty line, then the body.
    static MimeEntity parse(std::string_view raw);

    std::string_view raw() const noexcept { return raw_; }
    std::string_view body() const noexcept { return body_; }
    const std::string* field(std::string_view lower_name) const;  // the first one, or nullptr
    size_t count(std::string_view lower_name) const;
    const std::optional<ContentType>& content_type() const noexcept { return content_type_; }
    // "type/subtype" (lower case), "" when there is no parsable Content-Type.
    std::string media_type() const;
    // The body decoded per Content-Transfer-Encoding: base64 via crypto::Base64Decoder (`clean`
    // receives its verdict), anything else as it stands.
    std::string decoded_body(bool* clean = nullptr) const;

private:
    struct Field {
        std::string name;   // lower case
        std::string value;  // unfolded, trimmed
    };
    std::vector<Field> fields_;
    std::optional<ContentType> content_type_;
    std::string_view raw_;
    std::string_view body_;
};

// The body parts of a multipart body, each exactly as it stands between its delimiter line and
// the CRLF that precedes the next delimiter (RFC 2046 §5.1.1).
std::vector<std::string_view> split_multipart(std::string_view body, std::string_view boundary);

// Bare LF becomes CRLF; everything else stays (RFC 8551 §3.1.1 canonical form).
std::string to_crlf(std::string_view in);

// What the walk does after a visit.
struct Next {
    enum class Kind { Nothing, Parts, Into, Stop } kind = Kind::Nothing;
    std::vector<std::string_view> parts;  // Parts: views into the visited entity's text
    std::string bytes;                    // Into: a new layer, CRLF text

    static Next nothing() { return {}; }
    static Next stop() { return {Kind::Stop, {}, {}}; }
    static Next into_parts(std::vector<std::string_view> p) { return {Kind::Parts, std::move(p), {}}; }
    // The parts of a multipart entity (nothing for any other).
    static Next children(const MimeEntity& e);
    static Next into(std::string crlf_bytes) { return {Kind::Into, {}, std::move(crlf_bytes)}; }
};

struct WalkLimits {
    int max_depth = 40;          // entities deeper than this are not visited
    size_t max_entities = 10000; // visits in all
};

struct WalkResult {
    size_t visited = 0;
    bool depth_cut = false;   // something lay deeper than max_depth
    bool count_cut = false;   // max_entities reached
    bool stopped = false;     // a visitor returned Next::stop()
};

using EntityVisitor = std::function<Next(const MimeEntity& entity, int depth)>;

// Visits `crlf_text` (depth 0) and whatever the visitor leads to, depth-first.
WalkResult walk_entities(std::string_view crlf_text, const WalkLimits& limits, const EntityVisitor& visit);

}  // namespace sealmilter::core

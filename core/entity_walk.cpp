// core/entity_walk.cpp — see entity_walk.hpp.
#include "core/entity_walk.hpp"

#include "base/ascii.hpp"
#include "crypto/base64.hpp"

#include <algorithm>

namespace sealmilter::core {
namespace {

class Walk {
public:
    Walk(const WalkLimits& limits, const EntityVisitor& visit) : limits_(limits), visit_(visit) {}

    void entity(std::string_view raw, int depth) {
        if (result.stopped) return;
        if (depth > limits_.max_depth) {
            result.depth_cut = true;
            return;
        }
        if (result.visited >= limits_.max_entities) {
            result.count_cut = true;
            return;
        }
        ++result.visited;
        const MimeEntity e = MimeEntity::parse(raw);
        Next next = visit_(e, depth);
        switch (next.kind) {
        case Next::Kind::Nothing: break;
        case Next::Kind::Stop: result.stopped = true; break;
        case Next::Kind::Parts:
            for (std::string_view part : next.parts) entity(part, depth + 1);
            break;
        case Next::Kind::Into: {
            const std::string bytes = std::move(next.bytes);  // lives until the layer is walked
            entity(bytes, depth + 1);
            break;
        }
        }
    }

    WalkResult result;

private:
    const WalkLimits& limits_;
    const EntityVisitor& visit_;
};

}  // namespace

MimeEntity MimeEntity::parse(std::string_view raw) {
    MimeEntity e;
    e.raw_ = raw;
    size_t pos = 0;
    if (raw.substr(0, 2) == "\r\n") {  // no header fields at all
        e.body_ = raw.substr(2);
        return e;
    }
    while (pos < raw.size()) {
        const size_t eol = std::min(raw.find("\r\n", pos), raw.size());
        const std::string_view line = raw.substr(pos, eol - pos);
        pos = eol + 2;
        if (line.empty()) break;
        if ((line[0] == ' ' || line[0] == '\t') && !e.fields_.empty()) {
            e.fields_.back().value += " " + std::string(base::trim(line));
            continue;
        }
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;  // not a field: ignored, as MUAs do
        e.fields_.push_back({base::to_lower(base::trim(line.substr(0, colon))), std::string(base::trim(line.substr(colon + 1)))});
    }
    e.body_ = pos < raw.size() ? raw.substr(pos) : std::string_view();
    if (const std::string* ct = e.field("content-type")) e.content_type_ = parse_content_type(*ct);
    return e;
}

const std::string* MimeEntity::field(std::string_view lower_name) const {
    for (const Field& f : fields_)
        if (f.name == lower_name) return &f.value;
    return nullptr;
}

size_t MimeEntity::count(std::string_view lower_name) const {
    return static_cast<size_t>(std::count_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.name == lower_name; }));
}

std::string MimeEntity::media_type() const {
    return content_type_ ? content_type_->type + "/" + content_type_->subtype : std::string();
}

std::string MimeEntity::decoded_body(bool* clean) const {
    const std::string* cte = field("content-transfer-encoding");
    if (cte == nullptr || !base::iequals(*cte, "base64")) {
        if (clean != nullptr) *clean = true;
        return std::string(body_);
    }
    return crypto::decode_base64(body_, clean);
}

std::vector<std::string_view> split_multipart(std::string_view body, std::string_view boundary) {
    std::vector<std::string_view> parts;
    if (boundary.empty()) return parts;
    const std::string delim = "--" + std::string(boundary);
    const std::string crlf_delim = "\r\n" + delim;
    size_t search = 0;
    std::optional<size_t> part_start;
    for (;;) {
        size_t at;
        if (search == 0 && body.substr(0, delim.size()) == delim) {
            at = 0;
        } else {
            const size_t hit = body.find(crlf_delim, search);
            if (hit == std::string_view::npos) break;
            at = hit + 2;
        }
        const size_t after = at + delim.size();
        const bool closing = body.substr(after, 2) == "--";
        const size_t line_end = body.find("\r\n", after);
        // A delimiter line may carry transport padding only; anything else is body text.
        const std::string_view rest = body.substr(after, std::min(line_end, body.size()) - after);
        if (!closing && rest.find_first_not_of(" \t") != std::string_view::npos) {
            search = after;
            continue;
        }
        if (part_start) parts.push_back(body.substr(*part_start, (at >= 2 ? at - 2 : 0) - *part_start));
        if (closing || line_end == std::string_view::npos) return parts;
        part_start = line_end + 2;
        search = line_end;
    }
    return parts;  // no closing delimiter: the parts seen so far
}

std::string to_crlf(std::string_view in) {
    std::string out;
    out.reserve(in.size() + in.size() / 32);
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out += '\r';
        out += in[i];
    }
    return out;
}

Next Next::children(const MimeEntity& e) {
    const std::optional<ContentType>& ct = e.content_type();
    if (!ct || ct->type != "multipart") return nothing();
    return into_parts(split_multipart(e.body(), ct->param("boundary")));
}

WalkResult walk_entities(std::string_view crlf_text, const WalkLimits& limits, const EntityVisitor& visit) {
    Walk w(limits, visit);
    w.entity(crlf_text, 0);
    return w.result;
}

}  // namespace sealmilter::core

// core/message.cpp — header splitting and body spooling (see message.hpp).
#include "core/message.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <unistd.h>

namespace sealmilter::core {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }

// RFC 5322 §3.6.8 field name (printable ASCII except ':'), allowing the obsolete
// whitespace before the colon (§4.5.3).
bool looks_like_field(std::string_view line) noexcept {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    size_t end = colon;
    while (end > 0 && is_wsp(line[end - 1])) --end;
    if (end == 0) return false;
    return std::all_of(line.begin(), line.begin() + static_cast<long>(end),
                       [](char c) { return c > 32 && c < 127; });
}

std::string_view strip_break(std::string_view line, std::string_view* brk) noexcept {
    size_t n = line.size();
    if (n > 0 && line[n - 1] == '\n') {
        --n;
        if (n > 0 && line[n - 1] == '\r') --n;
    }
    if (brk != nullptr) *brk = line.substr(n);
    return line.substr(0, n);
}

}  // namespace

bool is_header_named(const HeaderField& f, std::string_view name) noexcept {
    return iequals(trim(f.name), name);
}

bool is_content_header(std::string_view name) noexcept {
    static constexpr std::array<std::string_view, 6> kNames = {
        "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
        "Content-ID", "Content-Description", "Content-Language"};
    const std::string_view n = trim(name);
    return std::any_of(kNames.begin(), kNames.end(), [&](std::string_view k) { return iequals(k, n); });
}

// ---- BodySpool --------------------------------------------------------------------------

BodySpool::BodySpool(size_t memory_limit, std::string spool_dir)
    : memory_limit_(memory_limit), spool_dir_(std::move(spool_dir)) {}

BodySpool::~BodySpool() = default;

void BodySpool::spill() {
    std::string tmpl = spool_dir_ + "/sealmilter-body-XXXXXX";
    const int fd = mkstemp(tmpl.data());
    if (fd < 0) throw_errno("cannot create spool file in " + spool_dir_);
    // Unlinked at once: the body never outlives the process, even after a crash.
    unlink(tmpl.c_str());
    file_.reset(fdopen(fd, "w+b"));
    if (file_ == nullptr) {
        close(fd);
        throw_errno("fdopen spool file");
    }
    if (!memory_.empty() && std::fwrite(memory_.data(), 1, memory_.size(), file_.get()) != memory_.size())
        throw_errno("write spool file");
    std::string().swap(memory_);
}

void BodySpool::append(const char* data, size_t len) {
    if (len == 0) return;
    if (file_ == nullptr && memory_.size() + len > memory_limit_) spill();
    if (file_ != nullptr) {
        if (std::fwrite(data, 1, len, file_.get()) != len) throw_errno("write spool file");
    } else {
        memory_.append(data, len);
    }
    size_ += len;
}

void BodySpool::for_each_chunk(const std::function<void(std::string_view)>& chunk) const {
    if (file_ == nullptr) {
        constexpr size_t kSlice = size_t{64} * 1024;
        for (size_t off = 0; off < memory_.size(); off += kSlice)
            chunk(std::string_view(memory_).substr(off, kSlice));
        return;
    }
    if (std::fflush(file_.get()) != 0 || std::fseek(file_.get(), 0, SEEK_SET) != 0) throw_errno("rewind spool file");
    std::string buf(size_t{64} * 1024, '\0');
    // Bounded by the file size.
    for (;;) {
        const size_t n = std::fread(buf.data(), 1, buf.size(), file_.get());
        if (n > 0) chunk(std::string_view(buf.data(), n));
        if (n < buf.size()) {
            if (std::ferror(file_.get()) != 0) throw_errno("read spool file");
            break;
        }
    }
    if (std::fseek(file_.get(), 0, SEEK_END) != 0) throw_errno("seek spool file");
}

std::string BodySpool::head(size_t n) const {
    if (file_ == nullptr) return memory_.substr(0, n);
    std::string out(std::min<unsigned long long>(n, size_), '\0');
    if (std::fflush(file_.get()) != 0 || std::fseek(file_.get(), 0, SEEK_SET) != 0) throw_errno("rewind spool file");
    const size_t got = std::fread(out.data(), 1, out.size(), file_.get());
    out.resize(got);
    if (std::fseek(file_.get(), 0, SEEK_END) != 0) throw_errno("seek spool file");
    return out;
}

// ---- MessageSplitter --------------------------------------------------------------------

void MessageSplitter::feed(const char* data, size_t len) {
    size_t i = 0;
    while (i < len && !in_body_) {
        const char* nl = static_cast<const char*>(std::memchr(data + i, '\n', len - i));
        const size_t end = nl == nullptr ? len : static_cast<size_t>(nl - data) + 1;
        line_.append(data + i, end - i);
        i = end;
        if (nl != nullptr) {
            std::string line;
            line.swap(line_);
            header_line(std::move(line));
        }
    }
    if (in_body_ && i < len) msg_.body.append(data + i, len - i);
}

void MessageSplitter::header_line(std::string line) {
    std::string_view brk;
    const std::string_view content = strip_break(line, &brk);
    if (first_line_) {
        first_line_ = false;
        if (!brk.empty()) msg_.eol = std::string(brk);
    }
    if (content.empty()) {  // the empty line that ends the header section
        flush_field();
        in_body_ = true;
        return;
    }
    if (is_wsp(content.front()) && !field_.empty()) {  // folded continuation (RFC 5322 §2.2.3)
        field_ += field_break_;
        field_.append(content);
        field_break_ = std::string(brk);
        return;
    }
    flush_field();
    if (!looks_like_field(content)) {  // not a header: the body starts here, line included
        in_body_ = true;
        msg_.body.append(line.data(), line.size());
        return;
    }
    field_.assign(content);
    field_break_ = std::string(brk);
}

void MessageSplitter::flush_field() {
    if (field_.empty()) return;
    const size_t colon = field_.find(':');
    msg_.headers.push_back(HeaderField{field_.substr(0, colon), field_.substr(colon + 1)});
    field_.clear();
}

void MessageSplitter::finish() {
    if (in_body_) return;
    if (!line_.empty()) {  // last line without a line break
        std::string line;
        line.swap(line_);
        header_line(std::move(line));
    }
    if (!in_body_) flush_field();
    in_body_ = true;
}

std::string serialize_field(const HeaderField& f, std::string_view eol) {
    std::string out = f.name;
    out += ':';
    // Rewrite every internal line break (LF or CRLF) of a folded value to `eol`.
    const std::string& v = f.value;
    for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '\r' && i + 1 < v.size() && v[i + 1] == '\n') continue;
        if (v[i] == '\n') {
            out.append(eol);
        } else {
            out += v[i];
        }
    }
    out.append(eol);
    return out;
}

}  // namespace sealmilter::core

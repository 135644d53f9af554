// core/message.hpp — the message model shared by the CLI and the milter: header fields as
// the MTA gave them, plus a body spooled in memory or in a temp file.
//
// Ownership: a Message owns its fields and its BodySpool (and the spool's temp file, which is
//            unlinked when the spool is destroyed).
// Threads:   a Message belongs to one transaction; not shared.
// Errors:    I/O failures throw std::system_error (the transaction is then tempfailed).
#pragma once

#include "base/handle.hpp"

#include "base/ascii.hpp"

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sealmilter::core {

// One header field, byte-exact: `name` is everything before the first ':'; `value` is
// everything after it up to, not including, the field's final line break. Folded
// continuation lines stay inside `value` with their original line breaks.
struct HeaderField {
    std::string name;
    std::string value;
};

// ASCII-only (base/ascii.hpp); here so that core's callers keep writing core::iequals / trim.
using base::iequals;
using base::trim;
bool is_header_named(const HeaderField& f, std::string_view name) noexcept;  // trims, ignores case

// The six MIME content header fields that describe the body and move inside the envelope
// (SPEC §5; RFC 2045 §3, RFC 2183, RFC 3282).
bool is_content_header(std::string_view name) noexcept;

// Body storage: memory up to `memory_limit` bytes, then a temp file in `spool_dir`.
class BodySpool {
public:
    explicit BodySpool(size_t memory_limit = 1 << 20, std::string spool_dir = "/tmp");
    ~BodySpool();
    BodySpool(const BodySpool&) = delete;
    BodySpool& operator=(const BodySpool&) = delete;

    void append(const char* data, size_t len);
    unsigned long long size() const noexcept { return size_; }
    // Calls `chunk` with successive pieces of the body (each at most 64 KiB).
    void for_each_chunk(const std::function<void(std::string_view)>& chunk) const;
    // The first `n` bytes (or fewer), without reading the rest.
    std::string head(size_t n) const;
    bool on_disk() const noexcept { return file_ != nullptr; }

private:
    void spill();

    size_t memory_limit_;
    std::string spool_dir_;
    std::string memory_;
    // The spool file once the body outgrew memory (fclose through base::Deleter).
    std::unique_ptr<std::FILE, base::Deleter<std::fclose>> file_;
    unsigned long long size_ = 0;
};

struct Message {
    std::vector<HeaderField> headers;
    std::string eol = "\n";  // the line ending of the first header line, for CLI output
    BodySpool body;

    explicit Message(size_t memory_limit = 1 << 20, std::string spool_dir = "/tmp")
        : body(memory_limit, std::move(spool_dir)) {}
};

// Splits a raw RFC 5322 message pushed in arbitrary chunks (one byte at a time works) into
// header fields and body. The header section ends at the first empty line, which is consumed;
// a line that is neither a field ("name:") nor a continuation ends it too and starts the body.
class MessageSplitter {
public:
    explicit MessageSplitter(Message& target) : msg_(target) {}
    void feed(const char* data, size_t len);
    void finish();  // end of input: flushes a header section that had no empty line

private:
    void header_line(std::string line);  // one physical line, with its line break
    void flush_field();

    Message& msg_;
    bool in_body_ = false;
    bool first_line_ = true;
    std::string line_;
    std::string field_;  // the field being assembled (folding kept), without final break
    std::string field_break_;
};

// Serialises one header field with the given line ending; continuation lines inside the
// value have their line breaks rewritten to `eol` as well.
std::string serialize_field(const HeaderField& f, std::string_view eol);

}  // namespace sealmilter::core

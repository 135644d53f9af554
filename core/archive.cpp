// core/archive.cpp — opening a maildir or an mbox with a key ring (see archive.hpp).
#include "core/archive.hpp"

#include "base/file.hpp"
#include "core/decrypt.hpp"
#include "core/message.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace fs = std::filesystem;

namespace sealmilter::core {
namespace {

// One message through the ring: the decrypted text, or nullopt when it is written unchanged.
std::optional<std::string> open_one(const std::string& raw, const keys::KeyRing& ring, ArchiveSummary& s) {
    ++s.total;
    Message m;
    MessageSplitter splitter(m);
    splitter.feed(raw.data(), raw.size());
    splitter.finish();
    crypto::StringSink out;
    const RingDecryptOutcome r = decrypt_message(m, ring, m.eol, out);
    switch (r.outcome.status) {
    case crypto::DecryptStatus::Ok:
        ++s.opened;
        ++s.by_key[r.key ? r.key->id : "?"];
        return std::move(out.out);
    case crypto::DecryptStatus::NotEncrypted: ++s.plain; break;
    case crypto::DecryptStatus::NoMatchingRecipient:
        ++s.no_key;
        for (const crypto::RecipientId& id : r.unmatched) ++s.unmatched[id.describe()];
        break;
    case crypto::DecryptStatus::NotCms:
    case crypto::DecryptStatus::Failed: ++s.damaged; break;
    }
    return std::nullopt;
}

void check_output(const fs::path& in, const fs::path& out, bool directory) {
    std::error_code ec;
    if (fs::exists(out, ec)) {
        if (!directory || !fs::is_directory(out) || !fs::is_empty(out))
            throw std::runtime_error(out.string() + " exists; the output must be new" + (directory ? " or an empty directory" : ""));
    }
    const fs::path a = fs::weakly_canonical(in, ec);
    const fs::path b = fs::weakly_canonical(out, ec);
    if (a == b || (directory && b.string().rfind(a.string() + "/", 0) == 0))
        throw std::runtime_error("the output " + out.string() + " must lie outside the archive " + in.string());
}

// Written with a temp name and renamed, so an interrupted run leaves no half message.
void write_message(const fs::path& path, const std::string& text) {
    const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
    {
        std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
        o.write(text.data(), static_cast<std::streamsize>(text.size()));
        if (!o.flush()) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    }
    fs::rename(tmp, path);
}

}  // namespace

ArchiveSummary open_maildir(const std::string& dir, const std::string& out_dir, const keys::KeyRing& ring,
                            const ArchiveProgress& progress) {
    const fs::path in(dir);
    if (!fs::is_directory(in)) throw std::runtime_error(dir + " is not a directory");
    check_output(in, out_dir, true);
    const bool maildir = fs::is_directory(in / "cur") || fs::is_directory(in / "new");
    std::vector<fs::path> subdirs = maildir ? std::vector<fs::path>{"cur", "new"} : std::vector<fs::path>{""};
    std::vector<fs::path> files;  // relative to `in`
    for (const fs::path& sub : subdirs) {
        if (!fs::is_directory(in / sub)) continue;
        for (const fs::directory_entry& e : fs::directory_iterator(in / sub))
            if (e.is_regular_file() && e.path().filename().string().front() != '.') files.push_back(sub / e.path().filename());
    }
    std::sort(files.begin(), files.end());
    fs::create_directories(out_dir);
    if (maildir)
        for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(fs::path(out_dir) / sub);
    ArchiveSummary s;
    for (const fs::path& rel : files) {
        const std::string raw = base::read_file((in / rel).string());
        const std::optional<std::string> opened = open_one(raw, ring, s);
        write_message(fs::path(out_dir) / rel, opened ? *opened : raw);
        if (progress) progress(s.total, files.size());
    }
    return s;
}

namespace {

bool is_from_line(std::string_view text, size_t at) { return text.compare(at, 5, "From ") == 0; }

// mboxrd quoting of a decrypted message: ">*From " at a line start gains one ">".
std::string quote_from(const std::string& m) {
    std::string out;
    out.reserve(m.size() + 16);
    size_t line = 0;
    while (line < m.size()) {
        size_t q = line;
        while (q < m.size() && m[q] == '>') ++q;
        if (is_from_line(m, q)) out += '>';
        const size_t nl = m.find('\n', line);
        const size_t end = nl == std::string::npos ? m.size() : nl + 1;
        out.append(m, line, end - line);
        line = end;
    }
    return out;
}

}  // namespace

ArchiveSummary open_mbox(const std::string& file, const std::string& out_file, const keys::KeyRing& ring,
                         const ArchiveProgress& progress) {
    check_output(file, out_file, false);
    const std::string text = base::read_file(file, size_t{1} << 34);
    // Message starts: "From " at the start of the file or after a line break.
    std::vector<size_t> starts;
    for (size_t at = 0; at < text.size();) {
        if (is_from_line(text, at)) starts.push_back(at);
        const size_t nl = text.find('\n', at);
        if (nl == std::string::npos) break;
        at = nl + 1;
    }
    if (starts.empty() || starts.front() != 0) throw std::runtime_error(file + " is not an mbox (no \"From \" line first)");
    const fs::path out(out_file);
    const fs::path tmp = out.parent_path() / ("." + out.filename().string() + ".tmp");
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    ArchiveSummary s;
    for (size_t i = 0; i < starts.size(); ++i) {
        const size_t end = i + 1 < starts.size() ? starts[i + 1] : text.size();
        const size_t body = text.find('\n', starts[i]) + 1;
        const std::string_view separator(text.data() + starts[i], body - starts[i]);
        std::string message = text.substr(body, end - body);
        // The blank line before the next "From " belongs to the mbox, not to the message.
        const bool blank = message.size() >= 2 && message.compare(message.size() - 2, 2, "\n\n") == 0;
        if (blank) message.pop_back();
        const std::optional<std::string> opened = open_one(message, ring, s);
        o << separator;
        if (opened) {
            o << quote_from(*opened);
            if (!opened->empty() && opened->back() != '\n') o << '\n';
            o << '\n';
        } else {
            o.write(text.data() + body, static_cast<std::streamsize>(end - body));
        }
        if (progress) progress(s.total, starts.size());
    }
    if (!o.flush()) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
    o.close();
    fs::rename(tmp, out);
    return s;
}

}  // namespace sealmilter::core

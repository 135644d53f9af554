// base/file.hpp — whole-file reads and atomic replacement.
//
// Purpose:   read_file for configuration, certificates and spool entries; write_atomically for
//            anything a crash must leave either old or new (store entries, journals, keys):
//            write a temporary file beside the target, fsync it, rename it over the target,
//            fsync the directory.
// Ownership: plain values.
// Threads:   re-entrant; two writers of one path race only on which version wins.
// Errors:    std::system_error naming the path and errno; write_atomically removes its
//            temporary file on failure.
#pragma once

#include <string>
#include <string_view>
#include <sys/types.h>

namespace sealmilter::base {

// The file's bytes; at most `limit` bytes are accepted (larger = error EFBIG).
std::string read_file(const std::string& path, size_t limit = static_cast<size_t>(1) << 30);

// Replaces `path` with `data` (created with `mode`, subject to the umask).
void write_atomically(const std::string& path, std::string_view data, mode_t mode = 0644);

}  // namespace sealmilter::base

// core/archive.hpp — opening a whole mail archive (a maildir or an mbox) with a key ring.
//
// Purpose:   `sealmilter decrypt --maildir DIR --out DIR2` / `--mbox FILE --out FILE2`: every
//            message is read, opened through the ring (core::decrypt_message: the key is found
//            by the envelope's RecipientIdentifiers, whatever its state) and written to the
//            output; messages that are not encrypted, that no key opens or that are damaged
//            are written unchanged, so the output is the whole archive. The summary counts
//            each kind and lists, per RecipientIdentifier that no key of the ring matches,
//            how many messages named it. The originals are only ever opened for reading.
//            Maildir: cur/ and new/ are mirrored (tmp/ is created empty); a directory without
//            them is read as a flat folder. Mbox: "From " lines separate messages (mboxo/
//            mboxrd); a decrypted message is written with its original separator line and its
//            body lines that begin with "From " (or ">From ") quoted once more (mboxrd).
// Ownership: borrows the ring; the progress callback is called on the calling thread.
// Threads:   one archive per call; re-entrant.
// Errors:    an unreadable input or an unwritable output throws std::runtime_error with the
//            path (nothing of the input changes either way); a bad message is counted, never
//            fatal. The output must not exist yet or be an empty directory (maildir).
#pragma once

#include "keys/key_ring.hpp"

#include <cstddef>
#include <functional>
#include <map>
#include <string>

namespace sealmilter::core {

struct ArchiveSummary {
    size_t total = 0;
    size_t opened = 0;
    size_t plain = 0;    // not encrypted (or signed only): copied as it is
    size_t no_key = 0;   // encrypted to keys the ring does not hold
    size_t damaged = 0;  // encrypted but not decryptable (damaged, unsupported)
    std::map<std::string, size_t> unmatched;  // RecipientId::describe() -> messages naming it
    std::map<std::string, size_t> by_key;     // key id -> messages it opened
};

using ArchiveProgress = std::function<void(size_t done, size_t total)>;

ArchiveSummary open_maildir(const std::string& dir, const std::string& out_dir, const keys::KeyRing& ring,
                            const ArchiveProgress& progress = {});
ArchiveSummary open_mbox(const std::string& file, const std::string& out_file, const keys::KeyRing& ring,
                         const ArchiveProgress& progress = {});

}  // namespace sealmilter::core

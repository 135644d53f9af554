// cli/state_paths.hpp — can the user that will run the daemon write where it keeps state?
//
// Purpose:   `check-config` used to say OK after `./setup.sh` had run the daemon as root,
//            while the unit's user could write neither the cache nor the re-injection journal;
//            the daemon then degraded at run time. This checks every state path of a Config
//            (milter.spool_dir and its journal, cache.path and its directory, harvest.dir and
//            its publish queue, store.dir for reading) for one user, and says which path and
//            why ("owner root:root, mode 0750", "read-only file system", "does not exist").
// Ownership: plain values.
// Threads:   reads the file system and the user database (getpwnam_r); no shared state.
// Errors:    a user that does not exist is a problem in the returned list, not an exception.
#pragma once

#include "conf/config.hpp"

#include <string>
#include <vector>

namespace sealmilter::cli {

// user: a name or a numeric uid; empty = the user running this process. Returns one sentence
// per problem, each naming the key, the path and the reason.
std::vector<std::string> state_path_problems(const conf::Config& config, const std::string& user);

}  // namespace sealmilter::cli

// milter/adapter.hpp — the libmilter daemon: thin xxfi_* trampolines into Transaction.
//
// Purpose:   the only code that includes <libmilter/mfapi.h>. Each callback is a trampoline
//            into the libmilter-free Session (milter/session.hpp); each goes through one
//            guarded dispatcher that catches everything, logs with the message tag and
//            returns the failure verdict (tempfail): exceptions never cross into libmilter.
//            Every smfi_* result is checked; a failure tempfails the message.
// Ownership: per-connection state is owned through smfi_setpriv (created at connect, freed at
//            close); the ServicesHolder outlives serve().
// Threads:   libmilter runs one thread per MTA connection.
// Errors:    serve() returns non-zero when the socket cannot be opened or smfi_main fails.
#pragma once

#include "milter/services.hpp"

#include <functional>
#include <string>

namespace sealmilter::milter {

// Blocks SIGHUP, SIGTERM and SIGINT in the calling thread (and so in every thread it starts
// afterwards). Call it first in the daemon, before any thread exists; serve() relies on it.
void block_daemon_signals();

// Runs the milter on `socket` ("inet:PORT@HOST" or "unix:PATH") until smfi_stop() (SIGTERM /
// SIGINT via libmilter). `reload` is called on SIGHUP from a dedicated thread.
int serve(const std::string& socket, ServicesHolder& services, const std::function<void()>& reload,
          const base::Logger& log);

}  // namespace sealmilter::milter

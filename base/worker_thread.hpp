// base/worker_thread.hpp — threads that never take the process's asynchronous signals.
//
// Purpose:   the daemon routes SIGTERM/SIGINT to libmilter's signal thread and SIGHUP to its
//            reload thread by blocking them everywhere else (milter/adapter.cpp). A thread a
//            library starts before that (the lookup resolver's workers, the HTTP client's I/O
//            thread, the publisher) inherits an open mask; the kernel may then deliver SIGTERM
//            to it, whose default action kills the daemon instead of stopping it cleanly.
//            start_worker_thread() starts a std::thread with every blockable signal blocked
//            (synchronous faults such as SIGSEGV are still delivered to the faulting thread).
// Ownership: returns the std::thread; the caller joins it.
// Threads:   callable from any thread; the caller's own signal mask is restored before return.
// Errors:    as std::thread's constructor (std::system_error).
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace sealmilter::base {

template <typename Fn>
std::thread start_worker_thread(Fn&& fn) {
    sigset_t all;
    sigset_t previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);  // the new thread inherits this mask
    struct Restore {
        sigset_t* mask;
        ~Restore() { pthread_sigmask(SIG_SETMASK, mask, nullptr); }
    } restore{&previous};
    return std::thread(std::forward<Fn>(fn));
}

}  // namespace sealmilter::base

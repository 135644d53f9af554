// base/mutex.hpp — a mutex Clang's thread-safety analysis understands, and its annotations.
//
// Purpose:   libstdc++'s std::mutex carries no capability attributes, so `-Wthread-safety`
//            cannot check that guarded state is only touched under its lock. base::Mutex wraps
//            std::mutex as a capability; SEALMILTER_GUARDED_BY(mu) on a member and
//            SEALMILTER_REQUIRES(mu) on a function let the clang build (run-tests.sh) prove
//            the locking. Under GCC the macros expand to nothing.
// Ownership: MutexLock holds the lock for its scope; UniqueMutexLock can be handed to a
//            std::condition_variable_any wait.
// Threads:   that is the point.
// Errors:    as std::mutex.
#pragma once

#include <mutex>

#if defined(__clang__)
#define SEALMILTER_TSA(x) __attribute__((x))
#else
#define SEALMILTER_TSA(x)
#endif

#define SEALMILTER_CAPABILITY(x) SEALMILTER_TSA(capability(x))
#define SEALMILTER_SCOPED_CAPABILITY SEALMILTER_TSA(scoped_lockable)
#define SEALMILTER_GUARDED_BY(x) SEALMILTER_TSA(guarded_by(x))
#define SEALMILTER_PT_GUARDED_BY(x) SEALMILTER_TSA(pt_guarded_by(x))
#define SEALMILTER_REQUIRES(...) SEALMILTER_TSA(requires_capability(__VA_ARGS__))
#define SEALMILTER_EXCLUDES(...) SEALMILTER_TSA(locks_excluded(__VA_ARGS__))
#define SEALMILTER_ACQUIRE(...) SEALMILTER_TSA(acquire_capability(__VA_ARGS__))
#define SEALMILTER_RELEASE(...) SEALMILTER_TSA(release_capability(__VA_ARGS__))
#define SEALMILTER_NO_THREAD_SAFETY_ANALYSIS SEALMILTER_TSA(no_thread_safety_analysis)

namespace sealmilter::base {

class SEALMILTER_CAPABILITY("mutex") Mutex {
public:
    void lock() SEALMILTER_ACQUIRE() { m_.lock(); }
    void unlock() SEALMILTER_RELEASE() { m_.unlock(); }
    bool try_lock() SEALMILTER_TSA(try_acquire_capability(true)) { return m_.try_lock(); }

private:
    std::mutex m_;
};

// std::lock_guard for base::Mutex, visible to the analysis.
class SEALMILTER_SCOPED_CAPABILITY MutexLock {
public:
    explicit MutexLock(Mutex& m) SEALMILTER_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~MutexLock() SEALMILTER_RELEASE() { m_.unlock(); }
    MutexLock(const MutexLock&) = delete;
    MutexLock& operator=(const MutexLock&) = delete;

private:
    Mutex& m_;
};

// A std::unique_lock-like lock for condition waits (std::condition_variable_any takes any
// BasicLockable): the analysis sees the capability held for the whole scope.
class SEALMILTER_SCOPED_CAPABILITY UniqueMutexLock {
public:
    explicit UniqueMutexLock(Mutex& m) SEALMILTER_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~UniqueMutexLock() SEALMILTER_RELEASE() { m_.unlock(); }
    UniqueMutexLock(const UniqueMutexLock&) = delete;
    UniqueMutexLock& operator=(const UniqueMutexLock&) = delete;
    // BasicLockable, for condition_variable_any::wait (unlocks and relocks inside the wait).
    void lock() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS { m_.lock(); }
    void unlock() SEALMILTER_NO_THREAD_SAFETY_ANALYSIS { m_.unlock(); }

private:
    Mutex& m_;
};

}  // namespace sealmilter::base

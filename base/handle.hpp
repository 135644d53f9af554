// base/handle.hpp — ownership of C handles: one stateless deleter, one file-descriptor owner.
//
// Purpose:   every C library handle (OpenSSL, GMime, curl, sqlite, libldap, libunbound, libpq,
//            PKCS#11) lives in a std::unique_ptr<T, Deleter<free_fn>>; each library's header
//            declares its aliases once (crypto/ossl.hpp is the model). UniqueFd closes a file
//            descriptor exactly once.
// Ownership: a handle owns one reference; release() hands it on.
// Threads:   no shared state.
// Errors:    none; close() errors are ignored (nothing useful can be done in a destructor).
#pragma once

#include <unistd.h>

#include <utility>

namespace sealmilter::base {

template <auto Fn>
struct Deleter {
    template <typename T>
    void operator()(T* p) const noexcept {
        Fn(p);  // NOLINT(cppcoreguidelines-owning-memory): the one place a C handle is freed
    }
};

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

}  // namespace sealmilter::base

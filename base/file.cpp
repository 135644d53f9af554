// base/file.cpp — see file.hpp.
#include "base/file.hpp"

#include "base/handle.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <random>
#include <system_error>

namespace sealmilter::base {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
    throw std::system_error(err, std::generic_category(), what + " " + path);
}

void write_all(int fd, std::string_view data, const std::string& path) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot write", path, errno);
        data.remove_prefix(static_cast<size_t>(n));
    }
}

std::string directory_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string read_file(const std::string& path, size_t limit) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail("cannot open", path, errno);
    std::string out;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot read", path, errno);
        if (n == 0) break;
        if (out.size() + static_cast<size_t>(n) > limit) fail("too large:", path, EFBIG);
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

void write_atomically(const std::string& path, std::string_view data, mode_t mode) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const std::string tmp = path + ".tmp." + std::to_string(rng());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd) fail("cannot create", tmp, errno);
    try {
        write_all(fd.get(), data, tmp);
        if (::fsync(fd.get()) != 0) fail("cannot sync", tmp, errno);
        if (::close(fd.release()) != 0) fail("cannot close", tmp, errno);
        if (::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename into", path, errno);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    // The rename is durable once the directory is synced; failing that is not an error of the
    // write itself (some file systems refuse fsync on directories).
    UniqueFd dir(::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) (void)::fsync(dir.get());
}

}  // namespace sealmilter::base

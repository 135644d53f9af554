// keys/storage.cpp — the files of keys.dir as a KeyStorage (see storage.hpp).
#include "keys/storage.hpp"

#include "base/file.hpp"
#include "base/handle.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/file.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace sealmilter::keys {
namespace {

class FileGuard final : public KeyStorage::Guard {
public:
    explicit FileGuard(const std::string& dir) {
        if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            throw std::runtime_error("cannot create keys.dir " + dir + ": " + std::strerror(errno));
        fd_ = base::UniqueFd(open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (fd_.get() < 0 || flock(fd_.get(), LOCK_EX) != 0)
            throw std::runtime_error("cannot lock " + dir + "/lock: " + std::strerror(errno));
    }

private:
    base::UniqueFd fd_;
};

class FileStorage final : public KeyStorage {
public:
    explicit FileStorage(std::string dir) : dir_(std::move(dir)) {}

    std::string describe() const override { return "keys.dir " + dir_; }
    std::string location(const std::string& name) const override { return dir_ + "/" + name; }
    std::string name_at(const std::string& location) const override {
        const size_t slash = location.rfind('/');
        return slash == std::string::npos ? location : location.substr(slash + 1);
    }

    std::optional<std::string> read_index(std::string* error) const override {
        try {
            return base::read_file(dir_ + "/index");
        } catch (const std::system_error& e) {
            if (error != nullptr) *error = e.code().value() == ENOENT ? "" : "key store " + dir_ + "/index: " + e.what();
            return std::nullopt;
        }
    }

    std::optional<std::string> read_key(const std::string& name, std::string* error) const override {
        try {
            return base::read_file(dir_ + "/" + name, size_t{1} << 20);
        } catch (const std::exception& e) {
            if (error != nullptr) *error = e.what();
            return std::nullopt;
        }
    }

    std::unique_ptr<Guard> lock() override { return std::make_unique<FileGuard>(dir_); }

    void put_keys(const std::vector<std::pair<std::string, std::string>>& named_texts) override {
        for (const auto& [name, text] : named_texts) {
            const std::string tmp = dir_ + "/." + name + ".tmp";
            const base::UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
            if (fd.get() < 0 || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
                rename(tmp.c_str(), (dir_ + "/" + name).c_str()) != 0) {
                const std::string why = std::strerror(errno);
                unlink(tmp.c_str());
                throw std::runtime_error("cannot write " + dir_ + "/" + name + ": " + why);
            }
        }
        // One syncfs for the batch: every key file reaches the disk before the index names it.
        const base::UniqueFd fd(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd.get() < 0 || syncfs(fd.get()) != 0) throw std::runtime_error("cannot sync " + dir_ + ": " + std::strerror(errno));
    }

    void replace_index(const std::string& text, const std::optional<std::string>& /*previous: the flock serialises*/) override {
        base::write_atomically(dir_ + "/index", text, 0600);
    }

    void remove_keys(const std::vector<std::string>& names) noexcept override {
        for (const std::string& n : names) unlink((dir_ + "/" + n).c_str());
    }

private:
    std::string dir_;
};

}  // namespace

std::shared_ptr<KeyStorage> file_storage(const std::string& dir) { return std::make_shared<FileStorage>(dir); }

}  // namespace sealmilter::keys

// cli/state_paths.cpp — state paths writable by the daemon's user (see state_paths.hpp).
//
// Permissions are judged from the mode bits, the owner and the user's groups (getgrouplist),
// the way the kernel judges them for a process of that user without capabilities, plus
// read-only mounts; when the user is the one running check-config, access(2) answers instead
// (it also sees ACLs). Root (uid 0) may write anything not on a read-only mount.
#include "cli/state_paths.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

namespace fs = std::filesystem;

namespace sealmilter::cli {
namespace {

struct Who {
    std::string name;
    uid_t uid = 0;
    std::vector<gid_t> groups;
    bool is_me = false;
};

std::optional<Who> resolve(const std::string& user, std::string& why) {
    Who w;
    if (user.empty() || user == std::to_string(::geteuid())) {
        w.uid = ::geteuid();
        w.is_me = true;
    }
    std::array<char, 16384> buf{};
    passwd pw{};
    passwd* found = nullptr;
    const std::string key = user.empty() ? std::string() : user;
    if (w.is_me) {
        ::getpwuid_r(w.uid, &pw, buf.data(), buf.size(), &found);
    } else if (!key.empty() && key.find_first_not_of("0123456789") == std::string::npos) {
        ::getpwuid_r(static_cast<uid_t>(std::stoul(key)), &pw, buf.data(), buf.size(), &found);
    } else {
        ::getpwnam_r(key.c_str(), &pw, buf.data(), buf.size(), &found);
    }
    if (found == nullptr) {
        if (w.is_me) {  // a uid without a passwd entry (containers): judge by access(2) alone
            w.name = "uid " + std::to_string(w.uid);
            return w;
        }
        why = "user '" + user + "' does not exist (create it first: systemd-sysusers, see docs/install.md)";
        return std::nullopt;
    }
    w.name = pw.pw_name;
    w.uid = pw.pw_uid;
    int n = 64;
    std::vector<gid_t> groups(static_cast<size_t>(n));
    if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
        groups.resize(static_cast<size_t>(n));
        ::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n);
    }
    groups.resize(static_cast<size_t>(n));
    w.groups = groups;
    return w;
}

std::string owner_of(const struct stat& st) {
    std::array<char, 16384> buf{};
    passwd pw{};
    passwd* p = nullptr;
    group gr{};
    group* g = nullptr;
    ::getpwuid_r(st.st_uid, &pw, buf.data(), buf.size() / 2, &p);
    ::getgrgid_r(st.st_gid, &gr, buf.data() + buf.size() / 2, buf.size() / 2, &g);
    std::array<char, 8> mode{};
    std::snprintf(mode.data(), mode.size(), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return std::string("owner ") + (p != nullptr ? p->pw_name : std::to_string(st.st_uid)) + ":" +
           (g != nullptr ? g->gr_name : std::to_string(st.st_gid)) + ", mode " + mode.data();
}

// want: bits of R_OK / W_OK / X_OK. "" when `who` may, else why not.
std::string may(const Who& who, const std::string& path, int want) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::string(std::strerror(errno));
    if ((want & W_OK) != 0) {
        struct statvfs vfs {};
        if (::statvfs(path.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY) != 0) return "read-only file system";
    }
    if (who.is_me) return ::access(path.c_str(), want) == 0 ? "" : std::string(std::strerror(errno)) + " (" + owner_of(st) + ")";
    if (who.uid == 0) return {};
    unsigned shift = 0;  // other
    if (st.st_uid == who.uid) {
        shift = 6;
    } else if (std::find(who.groups.begin(), who.groups.end(), st.st_gid) != who.groups.end()) {
        shift = 3;
    }
    const auto bits = static_cast<int>((st.st_mode >> shift) & 7U);
    return (bits & want) == want ? "" : owner_of(st);
}

std::string verb(int want) {
    if ((want & W_OK) != 0) return "write";
    return (want & R_OK) != 0 ? "read" : "enter";
}

class Checker {
public:
    explicit Checker(Who who) : who_(std::move(who)) {}

    // Every directory on the way must be searchable; the path itself needs `want`. When it does
    // not exist and `create` is true, its nearest existing ancestor must be writable instead.
    void check(const std::string& key, const std::string& path, int want, bool create) {
        if (path.empty()) return;
        std::error_code ec;
        fs::path p = fs::absolute(path, ec);
        if (!fs::exists(p, ec)) {
            if (!create) {
                add(key, path, "does not exist");
                return;
            }
            fs::path up = p.parent_path();
            while (!up.empty() && up != up.root_path() && !fs::exists(up, ec)) up = up.parent_path();
            check(key + " (to create " + path + ")", up.string(), W_OK | X_OK, false);
            return;
        }
        for (fs::path a = p.parent_path(); !a.empty(); a = a.parent_path()) {
            if (const std::string why = may(who_, a.string(), X_OK); !why.empty()) {
                add(key, path, "cannot enter " + a.string() + " (" + why + ")");
                return;
            }
            if (a == a.root_path()) break;
        }
        if (const std::string why = may(who_, p.string(), want); !why.empty())
            add(key, path, "cannot " + verb(want) + " it (" + why + ")");
    }

    std::vector<std::string> problems;

private:
    void add(const std::string& key, const std::string& path, const std::string& why) {
        problems.push_back(key + " " + path + ": user " + who_.name + " " + why);
    }
    Who who_;
};

}  // namespace

std::vector<std::string> state_path_problems(const conf::Config& c, const std::string& user) {
    std::string why;
    std::optional<Who> who = resolve(user, why);
    if (!who) return {why};
    Checker k(*who);
    constexpr int kDir = R_OK | W_OK | X_OK;
    const std::string& spool = c.get("milter.spool_dir");
    k.check("milter.spool_dir", spool, kDir, false);
    // The re-injection journal (milter/journal.hpp) lives in the spool directory.
    k.check("milter.spool_dir (re-injection journal)", spool.empty() ? "" : spool + "/reinjected", kDir, true);
    if (const std::string& cache = c.get("cache.path"); !cache.empty()) {
        // SQLite in WAL mode creates cache.db-wal and cache.db-shm beside the file.
        k.check("cache.path (its directory)", fs::path(cache).parent_path().string(), kDir, true);
        std::error_code ec;
        if (fs::exists(cache, ec)) k.check("cache.path", cache, R_OK | W_OK, false);
        for (const char* side : {"-wal", "-shm"})
            if (fs::exists(cache + side, ec)) k.check("cache.path", cache + side, R_OK | W_OK, false);
    }
    if (c.get_bool("harvest.enabled")) {
        const std::string& dir = c.get("harvest.dir");
        k.check("harvest.dir", dir, kDir, true);
        if (!c.get("directory.publish_url").empty()) k.check("harvest.dir (publish queue)", dir + "/.publish", kDir, true);
    }
    std::error_code ec;
    if (const std::string& store = c.get("store.dir"); !store.empty() && fs::exists(store, ec))
        k.check("store.dir", store, R_OK | X_OK, false);
    return k.problems;
}

}  // namespace sealmilter::cli

// base/logger.cpp — see logger.hpp.
#include "base/logger.hpp"

#include "base/mutex.hpp"

#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>  // std::once_flag

namespace sealmilter::base {
namespace {

class StderrSink final : public LogSink {
public:
    void write(LogLevel, std::string_view line) noexcept override {
        // One write(2) per line: lines of concurrent threads never interleave.
        std::string buf;
        try {
            buf.reserve(line.size() + 1);
            buf.append(line).push_back('\n');
        } catch (...) {
            return;
        }
        std::string_view rest = buf;
        while (!rest.empty()) {
            const ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
            rest.remove_prefix(static_cast<size_t>(n));
        }
    }
};

class SyslogSink final : public LogSink {
public:
    explicit SyslogSink(const std::string& ident) : ident_(ident) {
        static std::once_flag once;
        // openlog keeps the pointer: ident_ lives in a process-lifetime copy.
        std::call_once(once, [this] {
            static const std::string kept = ident_;
            openlog(kept.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
        });
    }
    void write(LogLevel level, std::string_view line) noexcept override {
        static constexpr int kPriority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(LOG_MAIL | kPriority[static_cast<int>(level)], "%.*s", static_cast<int>(line.size()), line.data());
    }

private:
    std::string ident_;
};

class FunctionSink final : public LogSink {
public:
    explicit FunctionSink(std::function<void(LogLevel, const std::string&)> fn) : fn_(std::move(fn)) {}
    void write(LogLevel level, std::string_view line) noexcept override {
        try {
            const MutexLock lock(mutex_);
            fn_(level, std::string(line));
        } catch (...) {  // a failing capture drops the line (logger.hpp)
        }
    }

private:
    Mutex mutex_;
    std::function<void(LogLevel, const std::string&)> fn_ SEALMILTER_GUARDED_BY(mutex_);
};

}  // namespace

const char* to_string(LogLevel l) noexcept {
    switch (l) {
    case LogLevel::Error: return "error";
    case LogLevel::Warning: return "warning";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    }
    return "?";
}

std::optional<LogLevel> parse_log_level(std::string_view s) noexcept {
    for (const LogLevel l : {LogLevel::Error, LogLevel::Warning, LogLevel::Info, LogLevel::Debug})
        if (s == to_string(l)) return l;
    return std::nullopt;
}

Logger Logger::to_stderr(LogLevel level) { return Logger(std::make_shared<StderrSink>(), level); }

Logger Logger::to_syslog(LogLevel level, const std::string& ident) {
    return Logger(std::make_shared<SyslogSink>(ident), level);
}

std::optional<Logger> Logger::for_target(std::string_view target, LogLevel level) {
    if (target == "stderr") return to_stderr(level);
    if (target == "syslog") return to_syslog(level);
    return std::nullopt;
}

Logger Logger::to_function(std::function<void(LogLevel, const std::string&)> fn, LogLevel level) {
    return Logger(std::make_shared<FunctionSink>(std::move(fn)), level);
}

Logger Logger::child(std::string tag) const {
    Logger c = *this;
    c.tag_ = std::move(tag);
    return c;
}

void Logger::log(LogLevel l, std::string_view message) const noexcept {
    if (!enabled(l)) return;
    try {
        if (tag_.empty()) {
            sink_->write(l, message);
            return;
        }
        std::string line;
        line.reserve(tag_.size() + 2 + message.size());
        line.append(tag_).append(": ").append(message);
        sink_->write(l, line);
    } catch (...) {  // allocation failure: the line is dropped
    }
}

std::function<void(const std::string&)> Logger::as_function(LogLevel l) const {
    return [self = *this, l](const std::string& line) { self.log(l, line); };
}

}  // namespace sealmilter::base

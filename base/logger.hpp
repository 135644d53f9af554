// base/logger.hpp — the one logger: severities, targets, lines bound to a tag.
//
// Purpose:   every module logs through a Logger value. Levels error < warning < info < debug
//            (log.level; lines above the level are dropped before they are formatted by the
//            sink). Targets (log.target): stderr — one line per write(2), what journald and
//            the MTA's collector take — or syslog with facility mail, as Postfix and OpenDKIM
//            log, so one grep of the mail log follows a message through both. A child
//            logger is bound to a tag (a session id, then the MTA queue id): every line it
//            writes starts with "TAG: " (STYLE.md, Postfix style).
// Ownership: a Logger is a cheap value (a shared sink, a level and a tag); copies share the
//            sink. The default-constructed Logger discards everything.
// Threads:   every method is thread-safe; sinks serialise their writes.
// Errors:    never throws out of a log call; a failing sink drops the line.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sealmilter::base {

enum class LogLevel { Error = 0, Warning = 1, Info = 2, Debug = 3 };
const char* to_string(LogLevel l) noexcept;
std::optional<LogLevel> parse_log_level(std::string_view s) noexcept;  // "error".."debug"

class LogSink {
public:
    virtual ~LogSink() = default;
    virtual void write(LogLevel level, std::string_view line) noexcept = 0;
};

class Logger {
public:
    Logger() = default;  // discards every line
    Logger(std::shared_ptr<LogSink> sink, LogLevel level) : sink_(std::move(sink)), level_(level) {}

    static Logger to_stderr(LogLevel level);
    // openlog(ident, LOG_PID, LOG_MAIL) once per process; lines go out with their severity.
    static Logger to_syslog(LogLevel level, const std::string& ident = "sealmilter");
    // "stderr" or "syslog"; nullopt for anything else.
    static std::optional<Logger> for_target(std::string_view target, LogLevel level);
    // Every line (with its level, after level filtering) to `fn`; for tests and captures.
    static Logger to_function(std::function<void(LogLevel, const std::string&)> fn, LogLevel level = LogLevel::Debug);

    // A logger whose lines start with "tag: " (replacing this logger's own tag).
    Logger child(std::string tag) const;
    const std::string& tag() const noexcept { return tag_; }
    LogLevel level() const noexcept { return level_; }
    bool enabled(LogLevel l) const noexcept { return sink_ != nullptr && l <= level_; }

    void log(LogLevel l, std::string_view message) const noexcept;
    void error(std::string_view m) const noexcept { log(LogLevel::Error, m); }
    void warning(std::string_view m) const noexcept { log(LogLevel::Warning, m); }
    void info(std::string_view m) const noexcept { log(LogLevel::Info, m); }
    void debug(std::string_view m) const noexcept { log(LogLevel::Debug, m); }

    // An adapter for interfaces that take a plain line callback (at `l`).
    std::function<void(const std::string&)> as_function(LogLevel l = LogLevel::Info) const;

private:
    std::shared_ptr<LogSink> sink_;
    LogLevel level_ = LogLevel::Info;
    std::string tag_;
};

}  // namespace sealmilter::base

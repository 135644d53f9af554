// cli/common.hpp — what every subcommand shares: exit codes (sysexits.h), option parsing
// with the config overrides, stdin/stdout plumbing.
//
// Ownership: StdoutSink borrows stdout; read_message() fills a caller-owned Message.
// Threads:   the CLI is single-threaded.
// Errors:    CliError carries the exit code and the sentence printed to stderr.
#pragma once

#include "conf/config.hpp"
#include "core/message.hpp"
#include "core/sign.hpp"
#include "crypto/base64.hpp"

#include <boost/program_options.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sealmilter::cli {

enum Exit : int {
    kOk = 0,
    kUsage = 64,     // EX_USAGE: bad command line
    kDataErr = 65,   // EX_DATAERR: unusable certificate, not S/MIME, wrong key, ...
    kNoInput = 66,   // EX_NOINPUT: a named file cannot be read
    kSoftware = 70,  // EX_SOFTWARE: internal error
    kIoErr = 74,     // EX_IOERR: writing the output failed
    kTempFail = 75,  // EX_TEMPFAIL: a certificate source failed; try again later
    kConfig = 78,    // EX_CONFIG: bad configuration
};

class CliError : public std::runtime_error {
public:
    CliError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

struct Parsed {
    boost::program_options::variables_map vm;
    std::shared_ptr<const conf::Config> config;
    bool help = false;
};

// Adds -c/--config, --help and every --section.key override to `desc`, parses argv, loads
// the config. Throws CliError(kUsage / kConfig).
Parsed parse_command(int argc, char** argv, boost::program_options::options_description& desc,
                     const boost::program_options::positional_options_description* positional = nullptr);

class StdoutSink final : public crypto::ByteSink {
public:
    void write(const char* data, size_t len) override;
    void flush();  // throws CliError(kIoErr)
};

// Standard input as read: the exact bytes (for pass-through) and the parsed message. Both
// spool to $TMPDIR (default /tmp) beyond milter.memory_threshold.
struct Input {
    explicit Input(size_t threshold, const std::string& dir) : raw(threshold, dir), message(threshold, dir) {}
    core::BodySpool raw;
    core::Message message;
};

// Reads all of stdin. Throws CliError(kDataErr) beyond milter.max_message_size.
std::unique_ptr<Input> read_input(const conf::Config& config);

std::string read_secret_file(const std::string& path);  // first line, no line break

void note(const std::string& text);  // "sealmilter: text" on stderr
// A HOST:PORT or [IPv6]:PORT value the configuration already validated (conf/kinds.hpp:
// milter.reinject, metrics.listen), only taken apart.
std::pair<std::string, int> host_port(const std::string& value);

// The signer of `m` for `sign` and `encrypt --sign` (cli/sign.cpp): --key FILE or the key
// store, --from or the From address (core::choose_signer). `ring` keeps the key ring alive.
// Throws CliError(kDataErr) when nobody can sign.
std::optional<core::Signer> cli_signer(const conf::Config& config, const boost::program_options::variables_map& vm,
                                       const core::Message& m, std::shared_ptr<keys::KeyRing>& ring);

}  // namespace sealmilter::cli

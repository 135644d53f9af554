// cli/main.cpp — `sealmilter COMMAND ...`: dispatch to the subcommands (SPEC §3).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "generated/version.hpp"

#include <cstring>
#include <exception>
#include <iostream>
#include <string_view>

namespace {

constexpr const char* kUsage =
    "usage: sealmilter COMMAND [options]   (sealmilter COMMAND --help for its options)\n"
    "commands:\n"
    "  run       the milter daemon (foreground)\n"
    "  encrypt   encrypt a message (stdin -> stdout) as S/MIME, as the milter does\n"
    "  decrypt   decrypt an S/MIME message (stdin -> stdout) with a private key\n"
    "  lookup    resolve recipients' certificates through the configured sources\n"
    "  cache     list or purge the certificate cache\n"
    "  harvest   keep the sender's certificate from a signed message (stdin), as the milter does\n"
    "  check-config  validate the configuration and what it points at\n"
    "  keys      the key store: new-master-key, import, import-token, list, export, retire, rewrap\n"
    "options: --help, --version\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace sealmilter;
    if (argc < 2) {
        std::cerr << kUsage;
        return cli::kUsage;
    }
    const std::string_view cmd = argv[1];
    if (cmd == "--version" || cmd == "-V") {
        std::cout << "sealmilter " << kVersion << "\n";
        return cli::kOk;
    }
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        std::cout << kUsage;
        return cli::kOk;
    }
    try {
        // Subcommands parse argv[1..] so that argv[0] of their parser is the command name.
        if (cmd == "run") return cli::cmd_run(argc - 1, argv + 1);
        if (cmd == "encrypt") return cli::cmd_encrypt(argc - 1, argv + 1);
        if (cmd == "decrypt") return cli::cmd_decrypt(argc - 1, argv + 1);
        if (cmd == "lookup") return cli::cmd_lookup(argc - 1, argv + 1);
        if (cmd == "cache") return cli::cmd_cache(argc - 1, argv + 1);
        if (cmd == "harvest") return cli::cmd_harvest(argc - 1, argv + 1);
        if (cmd == "check-config") return cli::cmd_check_config(argc - 1, argv + 1);
        if (cmd == "keys") return cli::cmd_keys(argc - 1, argv + 1);
        std::cerr << "sealmilter: unknown command '" << cmd << "'\n" << kUsage;
        return cli::kUsage;
    } catch (const cli::CliError& e) {
        cli::note(e.what());
        return e.code();
    } catch (const std::exception& e) {
        cli::note(std::string("internal error: ") + e.what());
        return cli::kSoftware;
    }
}

// cli/main.cpp — `sealmilter COMMAND ...`: dispatch to the subcommands (SPEC §3).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "generated/version.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <exception>
#include <iostream>
#include <string_view>

namespace {

std::string usage() {
    std::string u = "usage: sealmilter COMMAND [options]   (sealmilter COMMAND --help for its options)\ncommands:\n";
    for (const sealmilter::cli::Command& c : sealmilter::cli::commands()) {
        if (c.hidden) continue;
        std::string name = c.name;
        name.resize(std::max<size_t>(name.size() + 2, 14), ' ');
        u += "  " + name + c.summary + "\n";
    }
    return u + "options: --help, --version\n";
}

}  // namespace

int main(int argc, char** argv) {
    using namespace sealmilter;
    if (argc < 2) {
        std::cerr << usage();
        return cli::kUsage;
    }
    const std::string_view cmd = argv[1];
    if (cmd == "--version" || cmd == "-V") {
        std::cout << "sealmilter " << kVersion << "\n";
        return cli::kOk;
    }
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        std::cout << usage();
        return cli::kOk;
    }
    try {
        // Subcommands parse argv[1..] so that argv[0] of their parser is the command name.
        for (const cli::Command& c : cli::commands())
            if (cmd == c.name) return c.run(argc - 1, argv + 1);
        std::cerr << "sealmilter: unknown command '" << cmd << "'\n" << usage();
        return cli::kUsage;
    } catch (const cli::CliError& e) {
        cli::note(e.what());
        return e.code();
    } catch (const std::exception& e) {
        cli::note(std::string("internal error: ") + e.what());
        return cli::kSoftware;
    }
}

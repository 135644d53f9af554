// cli/commands.hpp — the subcommands; each a thin shell over core/crypto.
// Each returns the process exit code (cli::Exit) and throws CliError for usage/data errors.
#pragma once

#include <vector>

namespace sealmilter::cli {

int cmd_encrypt(int argc, char** argv);
int cmd_decrypt(int argc, char** argv);
int cmd_lookup(int argc, char** argv);
int cmd_cache(int argc, char** argv);
int cmd_check_config(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_harvest(int argc, char** argv);
int cmd_db(int argc, char** argv);
int cmd_report(int argc, char** argv);
int cmd_man_page(int argc, char** argv);  // hidden: writes sealmilter(8) / sealmilter.conf(5) (cli/manpage.cpp)

// The subcommands as the usage text, the dispatcher and the man page list them: one table.
struct Command {
    const char* name;
    const char* summary;  // one line for the usage text and the man page
    int (*run)(int argc, char** argv);
    bool hidden = false;  // build-time tools, not listed
};
const std::vector<Command>& commands();
int cmd_keys(int argc, char** argv);
int cmd_sign(int argc, char** argv);    // cli/sign.cpp
int cmd_verify(int argc, char** argv);  // cli/sign.cpp
int cmd_ca(int argc, char** argv);      // cli/ca.cpp (issue 13)
int cmd_issued(int argc, char** argv);  // cli/issued.cpp (issue 13)

}  // namespace sealmilter::cli

// cli/commands.hpp — the subcommands; each a thin shell over core/crypto.
// Each returns the process exit code (cli::Exit) and throws CliError for usage/data errors.
#pragma once

namespace sealmilter::cli {

int cmd_encrypt(int argc, char** argv);
int cmd_decrypt(int argc, char** argv);
int cmd_lookup(int argc, char** argv);
int cmd_cache(int argc, char** argv);
int cmd_check_config(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_harvest(int argc, char** argv);
int cmd_keys(int argc, char** argv);

}  // namespace sealmilter::cli

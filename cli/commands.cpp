// cli/commands.cpp — the table of subcommands (see commands.hpp).
#include "cli/commands.hpp"

namespace sealmilter::cli {

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"run", "the milter daemon (foreground)", cmd_run},
        {"encrypt", "encrypt a message (stdin -> stdout) as S/MIME, as the milter does", cmd_encrypt},
        {"sign", "sign a message (stdin -> stdout) as S/MIME with the sender's or the domain's key, as the milter does",
         cmd_sign},
        {"verify", "check an S/MIME signed message (stdin): signer, chain verdict, signed attributes", cmd_verify},
        {"decrypt", "decrypt an S/MIME message (stdin -> stdout) with a private key", cmd_decrypt},
        {"lookup", "resolve recipients' certificates through the configured sources", cmd_lookup},
        {"cache", "list or purge the certificate cache", cmd_cache},
        {"harvest", "keep the sender's certificate from a signed message (stdin), as the milter does", cmd_harvest},
        {"check-config", "validate the configuration, what it points at and who can write the state paths",
         cmd_check_config},
        {"keys", "the key store: new-master-key, import, import-token, list, export, retire, compromised, rewrap",
         cmd_keys},
        {"ca", "the CA that issues certificates for recipients who have none: init, import, show", cmd_ca},
        {"issued", "certificates issued for recipients who had none: list, revoke, resend (a new pickup notice), new",
         cmd_issued},
        {"db", "create or migrate the shared state's schema on PostgreSQL", cmd_db},
        {"report", "summarise the decision journal (log.decisions) per domain and mode", cmd_report},
        {"man-page", "write a man page from the option table and the commands' help", cmd_man_page, true},
    };
    return table;
}

}  // namespace sealmilter::cli

"""The configuration the key-store CLI tests run with (test_keys_cli.py, test_keys_token_cli.py):
everything but the key store off or in the test's temp directory. Standard library only."""
import os


def write_key_store_config(tmp, name, master, keys_dir, keys_extra=""):
    """TMP/NAME with keys.dir = KEYS_DIR and keys.master_key_file = MASTER; KEYS_EXTRA: more
    lines of the [keys] section. Returns the path."""
    path = os.path.join(tmp, name)
    os.makedirs(os.path.join(tmp, "spool"), exist_ok=True)
    os.makedirs(os.path.join(tmp, "certs"), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"""[milter]
spool_dir = {tmp}/spool
[policy]
file =
[cache]
path =
[store]
dir = {tmp}/certs
[harvest]
enabled = false
dir = {tmp}/harvested
[keys]
dir = {keys_dir}
master_key_file = {master}
{keys_extra}""")
    return path

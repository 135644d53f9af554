# bench/common.sh — sourced by the benchmark scripts that need recipients and a directory.
# Expects: ROOT (the repository), TMP (the script's private temp dir), a `pids` array that the
# script's EXIT trap kills, and a `die MESSAGE` function.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_pid_file PID_FILE PID WHAT — a server counts as started once its pid file names our child
# (another test's server may have won the race for the port we probed).
wait_pid_file() {
  for _ in $(seq 1 200); do
    [[ -s $1 && $(cat "$1") == "$2" ]] && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited: $(tail -3 "$TMP/$3.err" 2>/dev/null)"
    sleep 0.05
  done
  die "$3 did not start"
}

# make_recipients COUNT KIND WWW_DIR — a test CA ($TMP/pki/ca.pem) and COUNT recipient
# certificates rcpt1..COUNT@partner.example ($TMP/pki/c$i.pem, keys k$i.pem), KIND rsa
# (RSA-2048, keyEncipherment) or ec (P-256, keyAgreement); one directory JSON answer per
# address in WWW_DIR; the addresses in $TMP/addresses.
make_recipients() {
  local count=$1 kind=$2 www=$3 key usage i a
  case $kind in
    rsa) key=(-newkey rsa:2048) usage=keyEncipherment ;;
    ec) key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) usage=keyAgreement ;;
    *) die "make_recipients: kind rsa or ec" ;;
  esac
  mkdir -p "$TMP/pki" "$www"
  openssl req -x509 "${key[@]}" -nodes -keyout "$TMP/pki/ca.key" -out "$TMP/pki/ca.pem" -days 2 \
    -subj "/CN=bench recipient CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || die "CA"
  : >"$TMP/addresses"
  for i in $(seq 1 "$count"); do
    a="rcpt$i@partner.example"
    openssl req -new "${key[@]}" -nodes -keyout "$TMP/pki/k$i.pem" -out "$TMP/pki/r$i.csr" -subj "/CN=rcpt$i" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,%s\nextendedKeyUsage=emailProtection\nsubjectAltName=email:%s\n' \
      "$usage" "$a" >"$TMP/pki/e$i"
    openssl x509 -req -in "$TMP/pki/r$i.csr" -CA "$TMP/pki/ca.pem" -CAkey "$TMP/pki/ca.key" -set_serial "$((1000 + i))" \
      -days 2 -extfile "$TMP/pki/e$i" -out "$TMP/pki/c$i.pem" 2>/dev/null || die "certificate $i"
    python3 -c 'import json,sys; print(json.dumps({"certificates":[{"pem":open(sys.argv[1]).read()}]}))' \
      "$TMP/pki/c$i.pem" >"$www/$a"
    echo "$a" >>"$TMP/addresses"
  done
}

# start_nginx PORT [UPSTREAM_PORT] — the directory's nginx (tests/support/http/start_nginx.sh)
# in $TMP/nginx, its stderr in $TMP/nginx.err; returns once it is ours and listening.
start_nginx() {
  mkdir -p "$TMP/nginx"
  bash "$ROOT/tests/support/http/start_nginx.sh" "$TMP/nginx" "$@" >/dev/null 2>"$TMP/nginx.err" &
  pids+=("$!")
  wait_pid_file "$TMP/nginx/nginx.pid" "$!" nginx
}

# start_slow_directory DELAY_MS — bench/slow_directory.py over $TMP/www answering after
# DELAY_MS; sets SLOW_DIRECTORY_PORT and SLOW_DIRECTORY_PID.
start_slow_directory() {
  coproc SLOW { exec python3 "$ROOT/bench/slow_directory.py" "$TMP/www" "$1"; }
  SLOW_DIRECTORY_PID=$SLOW_PID
  pids+=("$SLOW_PID")
  read -r SLOW_DIRECTORY_PORT <&"${SLOW[0]}" || die "slow directory did not start"
}

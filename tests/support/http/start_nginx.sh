#!/usr/bin/env bash
# tests/support/http/start_nginx.sh — runs a real nginx (TLS, HTTP/2) for the directory tests.
#
# Usage: start_nginx.sh PREFIX PORT [UPSTREAM_PORT]
#   PREFIX  a private directory the test owns; the test writes the answers under PREFIX/www
#           (json/, pem/, der/, auth/, mtls/ + one file per address, named by the decoded address).
#   PORT    a free loopback port (the caller picks it; it retries on a collision).
#   UPSTREAM_PORT  optional: /slow/ is proxied to http://127.0.0.1:UPSTREAM_PORT (the lookup
#           benchmark's directory with added latency, bench/slow_directory.py).
# Creates (once) in PREFIX/tls: ca.crt, server.crt/.key (a throw-away CA and a server
# certificate for 127.0.0.1 / localhost), client.crt/.key (a client certificate from the same
# CA; /mtls/ requires one) and other-ca.crt (an unrelated CA, for the wrong-anchor test).
# Writes PREFIX/nginx.conf, then execs nginx in the foreground, so the caller's child PID is
# nginx's master: SIGTERM stops it.
# Everything nginx writes (pid, logs, temp files) stays inside PREFIX. Listens on 127.0.0.1 only.
set -euo pipefail
prefix=${1:?usage: start_nginx.sh PREFIX PORT}
port=${2:?usage: start_nginx.sh PREFIX PORT}
upstream=${3:-}
slow_upstream=""
slow_location=""
if [[ -n $upstream ]]; then
  # Kept-alive upstream connections: the benchmark should time the directory, not connects.
  slow_upstream="upstream slow_directory { server 127.0.0.1:$upstream; keepalive 64; }"
  slow_location="location /slow/ { proxy_pass http://slow_directory; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
fi
prefix=$(cd "$prefix" && pwd)
nginx_bin=$(command -v nginx || true)
[[ -z $nginx_bin && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
if [[ -z $nginx_bin ]]; then
  echo "start_nginx.sh: nginx not installed (scripts/deps.sh installs nginx-light)" >&2
  exit 127
fi
mkdir -p "$prefix/tls" "$prefix/logs" "$prefix/tmp" "$prefix/www"

"$(dirname "$0")/../tls_ca.sh" "$prefix/tls" "sealmilter test CA" client

user_line=""
if [[ $(id -u) -eq 0 ]]; then user_line="user root;"; fi  # workers must read the 0700 prefix

cat >"$prefix/nginx.conf" <<CONF
$user_line
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 512; }
http {
  # The connection serial shows reuse / HTTP/2 multiplexing; never log the Authorization header.
  log_format sealmilter '\$connection "\$request" \$status "\$http_user_agent" "\$http_accept"';
  access_log $prefix/logs/access.log sealmilter;
  client_body_temp_path $prefix/tmp/body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;
  $slow_upstream
  server {
    listen 127.0.0.1:$port ssl http2;
    server_name localhost;
    ssl_certificate $prefix/tls/server.crt;
    ssl_certificate_key $prefix/tls/server.key;
    # Client certificates are asked for, checked against the test CA, and required in /mtls/.
    ssl_verify_client optional;
    ssl_client_certificate $prefix/tls/ca.crt;
    root $prefix/www;
    etag on;
    add_header Cache-Control "max-age=600, stale-if-error=3600" always;
    # An address that opted out of the directory (SPEC §6.3: 410).
    location ~ ^/(json|pem|der)/optout@ { return 410; }
    location /json/ { types { } default_type application/json; }
    location /pem/ { types { } default_type application/pem-certificate-chain; }
    location /der/ { types { } default_type application/pkix-cert; }
    location /mtls/ {
      types { } default_type application/json;
      if (\$ssl_client_verify != SUCCESS) { return 403; }
    }
    # A publish endpoint (POST) for harvested certificates; the access log counts them.
    location /publish/ { return 204; }
    # A publish endpoint (POST) that demands a client certificate from the test CA.
    location /publish-mtls/ {
      if (\$ssl_client_verify != SUCCESS) { return 403; }
      return 204;
    }
    $slow_location
    location /auth/ {
      types { } default_type application/json;
      if (\$http_authorization != "Bearer secret") { return 401; }
    }
  }
}
CONF

# Should the test die without stopping us, do not outlive it: a watchdog stops nginx (which
# will have this shell's PID after the exec) once the test process is gone. It ends with nginx.
test_pid=$PPID
self=$$
( while kill -0 "$test_pid" 2>/dev/null && kill -0 "$self" 2>/dev/null; do sleep 1; done
  if kill -0 "$self" 2>/dev/null && [[ $(cat /proc/$self/comm 2>/dev/null) == nginx ]]; then kill -TERM "$self"; fi
) </dev/null >/dev/null 2>&1 &

exec "$nginx_bin" -p "$prefix/" -e "$prefix/logs/error.log" -c "$prefix/nginx.conf" -g "daemon off;"

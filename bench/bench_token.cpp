// bench/bench_token.cpp — decryptions per second with a key on a SoftHSM2 token (keys/token,
// PKCS#11 through libp11) against the same key loaded from a file, in one process, same run.
//
//   bench_token --out FRAGMENT.md [--rounds N] [--per-round N] [--size BYTES] [--command TEXT]
//
// Sets up its own SoftHSM2 configuration and token in a temp dir (SOFTHSM2_CONF, before the
// module is loaded), generates an RSA-2048 and an EC P-256 key in software, writes each to a
// PKCS#8 file in that temp dir and imports the same key into the token (sensitive), stores the
// certificates beside them; then opens one envelope per key through core::decrypt_message
// with a MemoryKeyRing holding either the file key or the token key, interleaving the two in
// every round. Writes the markdown fragment bench/token.sh puts into BENCHMARKS.md.
#include "core/decrypt.hpp"
#include "crypto/certificate_builder.hpp"
#include "crypto/envelope.hpp"
#include "keys/key_ring.hpp"
#include "keys/token.hpp"

#include "base/file.hpp"

#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
namespace keys = sealmilter::keys;
using Clock = std::chrono::steady_clock;

namespace {

const char* const kSoftHsm = "/usr/lib/softhsm/libsofthsm2.so";
const char* const kPin = "bench-pin";

struct Args {
    std::string out;
    std::string command = "bench/token.sh";
    int rounds = 5;
    int per_round = 100;
    size_t size = 10240;
};

void run(const std::string& dir, const std::string& cmd) {
    const std::string line = cmd + " >>'" + dir + "/tools.log' 2>&1";
    if (std::system(line.c_str()) != 0) {  // NOLINT(cert-env33-c): the bench's own tools
        throw std::runtime_error("failed: " + cmd + " (see " + dir + "/tools.log)");
    }
}

struct Pair {
    std::string name;  // "RSA-2048 (PKCS#1 v1.5)"
    std::string raw;   // the message
    keys::MemoryKeyRing file_ring;
    keys::MemoryKeyRing token_ring;
    std::vector<double> file_rates, token_rates;
};

std::string message(const crypto::Certificate& to, size_t size) {
    std::string content = "Content-Type: text/plain\r\n\r\n";
    while (content.size() < size) content += "The quarterly figures are attached as agreed.\r\n";
    crypto::StringSink der;
    crypto::EnvelopeWriter w({to}, {}, der);
    w.write(content.data(), content.size());
    w.finish();
    crypto::StringSink b64;
    crypto::Base64LineWriter bw(b64, "\r\n");
    bw.write(der.out.data(), der.out.size());
    bw.finish();
    return "From: p@partner.example\r\nTo: staff@bank.example\r\nContent-Type: application/pkcs7-mime;"
           " smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
           b64.out;
}

// One key, in a file and on the token, with its certificate.
void make_pair(const std::string& dir, const std::string& id, const std::string& label, crypto::EVP_PKEY_ptr key,
               uint32_t usage, size_t size, Pair& p) {
    const crypto::Certificate cert = crypto::CertificateBuilder()
                                         .common_name(label + "@bank.example")
                                         .add_email_san(label + "@bank.example")
                                         .public_key(key.get())
                                         .key_usage(usage)
                                         .subject_key_identifier()
                                         .build();
    const std::string key_pem = dir + "/" + label + ".key.pem";
    const std::string key_der = dir + "/" + label + ".key.der";
    const std::string cert_der = dir + "/" + label + ".crt.der";
    {
        crypto::BIO_ptr pem(BIO_new_file(key_pem.c_str(), "w"));
        crypto::BIO_ptr der(BIO_new_file(key_der.c_str(), "w"));
        if (!pem || !der || PEM_write_bio_PrivateKey(pem.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
            i2d_PKCS8PrivateKey_bio(der.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
            throw std::runtime_error("cannot write " + key_pem);
        }
    }
    const std::vector<unsigned char> c = cert.der();
    sealmilter::base::write_atomically(cert_der, std::string(c.begin(), c.end()));
    const std::string tool = std::string("pkcs11-tool --module ") + kSoftHsm + " --token-label bench --login --pin " + kPin;
    run(dir, tool + " --write-object '" + key_der + "' --type privkey --sensitive --id " + id + " --label " + label +
                 (usage & crypto::kKeyAgreement ? " --usage-derive" : " --usage-decrypt"));
    run(dir, tool + " --write-object '" + cert_der + "' --type cert --id " + id + " --label " + label);
    std::filesystem::remove(key_der);

    crypto::KeyLoad file = crypto::load_key_material(key_pem, "");
    if (!file.material) throw std::runtime_error(key_pem + ": " + file.error);
    file.material->certificate = cert;
    p.file_ring.add(std::move(*file.material), key_pem);
    std::string error;
    const std::string uri = "pkcs11:token=bench;id=%" + id;
    std::optional<crypto::KeyMaterial> token = keys::load_token_key(uri, {.module = kSoftHsm, .pin_file = dir + "/pin"}, &error);
    if (!token) throw std::runtime_error(uri + ": " + error);
    p.token_ring.add(std::move(*token), uri);
    p.raw = message(cert, size);
}

double rate(const Pair& p, const keys::KeyRing& ring, int n) {
    core::Message m;
    core::MessageSplitter splitter(m);
    splitter.feed(p.raw.data(), p.raw.size());
    splitter.finish();
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
        crypto::StringSink out;
        const core::RingDecryptOutcome r = core::decrypt_message(m, ring, "\n", out);
        if (r.outcome.status != crypto::DecryptStatus::Ok) throw std::runtime_error(p.name + ": " + r.outcome.detail);
    }
    return n / std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

std::string fmt(double v, int prec = 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", prec, v);
    return buf;
}

std::string load_average() {
    try {
        std::string s = sealmilter::base::read_file("/proc/loadavg", 256);
        std::istringstream in(s);
        std::string a, b, c;
        in >> a >> b >> c;
        return a + " " + b + " " + c;
    } catch (const std::exception&) {
        return "n/a";
    }
}

std::string report(const Args& a, const std::vector<Pair*>& pairs, const std::string& load_before, double seconds) {
    std::ostringstream o;
    o << "## PKCS#11\n\n"
      << "Generated by `" << a.command << "`; every figure below was measured in this run, in one process: "
      << "a " << a.size / 1024 << " KiB message opened by `core::decrypt_message` through a `MemoryKeyRing` "
      << "holding either the key loaded from a PEM file or **the same key** imported into a SoftHSM2 2.6 token "
      << "(sensitive; used in place through `keys::load_token_key`, libp11 0.4.12, one module per process, "
      << "every token call serialised on the module's mutex). Rounds interleave file and token. "
      << "Re-run the command to refresh this section.\n\n"
      << "| | |\n|---|---|\n"
      << "| Command | `" << a.command << "` (from the repository root) |\n"
      << "| Rounds | " << a.rounds << " x " << a.per_round << " decryptions per key and source, median round reported |\n"
      << "| Load average (1/5/15 min) | before " << load_before << ", after " << load_average() << " |\n"
      << "| Run time | " << fmt(seconds) << " s |\n\n"
      << "| Key | File key (decryptions/s) | Token key (decryptions/s) | Token / file |\n|---|---|---|---|\n";
    for (const Pair* p : pairs) {
        const double f = median(p->file_rates);
        const double t = median(p->token_rates);
        o << "| " << p->name << " | " << fmt(f) << " | " << fmt(t) << " | " << fmt(t / f, 2) << "x |\n";
    }
    o << "\nSoftHSM2 is a software token: the ratio is the cost of the PKCS#11 path (session, "
      << "mechanism, libp11's RSA/EC methods, our lock) over OpenSSL's own key operation, not what a "
      << "hardware HSM would give.\n";
    return o.str();
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const std::string v = argv[i + 1];
        if (k == "--out") a.out = v;
        else if (k == "--rounds") a.rounds = std::max(1, std::stoi(v));
        else if (k == "--per-round") a.per_round = std::max(1, std::stoi(v));
        else if (k == "--size") a.size = std::stoul(v);
        else if (k == "--command") a.command = v;
        else throw std::runtime_error("unknown option " + k);
    }
    if (a.out.empty()) throw std::runtime_error("usage: bench_token --out FRAGMENT.md [--rounds N] [--per-round N] [--size BYTES]");
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir;
    try {
        const Args a = parse(argc, argv);
        const std::string load_before = load_average();
        const auto start = Clock::now();
        char tmpl[] = "/tmp/sealmilter-bench-token-XXXXXX";
        if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        std::filesystem::create_directory(dir + "/tokens");
        sealmilter::base::write_atomically(dir + "/softhsm2.conf", "directories.tokendir = " + dir +
                                                                       "/tokens\nobjectstore.backend = file\nlog.level = ERROR\n");
        setenv("SOFTHSM2_CONF", (dir + "/softhsm2.conf").c_str(), 1);
        sealmilter::base::write_atomically(dir + "/pin", std::string(kPin) + "\n", 0600);
        run(dir, std::string("softhsm2-util --init-token --free --label bench --pin ") + kPin + " --so-pin bench-so");

        Pair rsa;
        rsa.name = "RSA-2048, PKCS#1 v1.5 key transport";
        make_pair(dir, "01", "rsa", crypto::generate_rsa_key(2048), crypto::kKeyEncipherment, a.size, rsa);
        Pair ec;
        ec.name = "EC P-256, ECDH key agreement";
        make_pair(dir, "02", "ec", crypto::generate_ec_key("prime256v1"), crypto::kKeyAgreement, a.size, ec);
        const std::vector<Pair*> pairs = {&rsa, &ec};
        for (Pair* p : pairs) {  // warm-up (first login, first use of each key)
            rate(*p, p->file_ring, 5);
            rate(*p, p->token_ring, 5);
        }
        for (int r = 0; r < a.rounds; ++r) {
            for (Pair* p : pairs) {
                p->file_rates.push_back(rate(*p, p->file_ring, a.per_round));
                p->token_rates.push_back(rate(*p, p->token_ring, a.per_round));
            }
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        sealmilter::base::write_atomically(a.out, report(a, pairs, load_before, seconds));
        std::cout << report(a, pairs, load_before, seconds);
    } catch (const std::exception& e) {
        std::cerr << "bench_token: " << e.what() << "\n";
        if (!dir.empty()) std::filesystem::remove_all(dir);
        return 1;
    }
    std::filesystem::remove_all(dir);
    return 0;
}

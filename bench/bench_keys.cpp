// bench/bench_keys.cpp — the key store: decryption with 100,000 keys vs 1, store open time,
// archive opening rate, in-process decryption vs one `openssl cms -decrypt` per message.
//
// usage: bench_keys WORKDIR KEYS  (bench/keys.sh runs it and writes the "keys" section)
// Prints a Markdown fragment. Every result is checked (the right plaintext came out, the
// counts are exact); anything else ends the run with exit 1.
//
// The KEYS certificates are minted cheaply: one EC P-256 key is shared by all of them (each
// certificate has its own serial, subject, address and SKI), signed by one CA. That is enough
// for what is measured — the index and the unwrap-on-demand path — but it is not 100,000
// distinct private keys; the store wraps each entry's key separately all the same.
#include "base/file.hpp"
#include "core/archive.hpp"
#include "core/decrypt.hpp"
#include "crypto/base64.hpp"
#include "crypto/certificate_builder.hpp"
#include "crypto/envelope.hpp"
#include "keys/store.hpp"

#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace crypto = sealmilter::crypto;
namespace core = sealmilter::core;
namespace keys = sealmilter::keys;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void require(bool ok, const std::string& what) {
    if (!ok) {
        std::cerr << "bench_keys: " << what << "\n";
        std::exit(1);
    }
}

crypto::EVP_PKEY_ptr keygen(const char* spec) {
    crypto::EVP_PKEY_ptr k(EVP_PKEY_Q_keygen(nullptr, nullptr, spec[0] == 'E' ? "EC" : "RSA",
                                             spec[0] == 'E' ? static_cast<const void*>("P-256") : nullptr));
    if (spec[0] == 'R') k.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    require(k != nullptr, "keygen");
    return k;
}

crypto::EVP_PKEY_ptr up(EVP_PKEY* k) {
    EVP_PKEY_up_ref(k);
    return crypto::EVP_PKEY_ptr(k);
}

std::string smime(const crypto::Certificate& to, const std::string& inner) {
    crypto::StringSink der;
    crypto::EnvelopeWriter w({to}, {}, der);
    w.write(inner.data(), inner.size());
    w.finish();
    crypto::StringSink b64;
    crypto::Base64LineWriter bw(b64, "\r\n");
    bw.write(der.out.data(), der.out.size());
    bw.finish();
    return "From: partner@partner.example\r\nTo: staff@bank.example\r\nSubject: bench\r\nContent-Type: application/pkcs7-mime;"
           " smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64.out;
}

core::RingDecryptOutcome open(const std::string& raw, const keys::KeyRing& ring, crypto::StringSink& out) {
    core::Message m;
    core::MessageSplitter s(m);
    s.feed(raw.data(), raw.size());
    s.finish();
    return core::decrypt_message(m, ring, "\r\n", out);
}

// Mean ms per decryption of `raw` through `ring`, `n` times (one untimed warm-up).
double decrypt_ms(const std::string& raw, const keys::KeyRing& ring, int n, const std::string& expect) {
    crypto::StringSink warm;
    require(open(raw, ring, warm).outcome.status == crypto::DecryptStatus::Ok && warm.out.find(expect) != std::string::npos,
            "decryption failed");
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
        crypto::StringSink out;
        require(open(raw, ring, out).outcome.status == crypto::DecryptStatus::Ok, "decryption failed");
    }
    return ms_since(t0) / n;
}

std::shared_ptr<keys::KeyStore> new_store(const std::string& dir, const std::string& master) {
    keys::StoreOptions o;
    o.dir = dir;
    o.master_key_file = master;
    std::string error;
    auto s = keys::KeyStore::open(o, &error);
    require(s != nullptr, error);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: bench_keys WORKDIR KEYS\n";
        return 2;
    }
    const std::string work = argv[1];
    const size_t n_keys = std::stoul(argv[2]);
    fs::remove_all(work);
    fs::create_directories(work);
    const std::string master = work + "/master.key";
    std::string error;
    require(keys::create_master_key_file(master, &error), error);

    // The CA, the shared EC key and the certificates (EC: cheap to sign).
    const crypto::EVP_PKEY_ptr ca_key = keygen("EC");
    crypto::CertificateBuilder cab;
    cab.public_key(ca_key.get()).common_name("Bench CA").basic_constraints(true).valid_days(3650).serial(1);
    const crypto::Certificate ca = cab.build();
    const crypto::EVP_PKEY_ptr shared = keygen("EC");
    auto t0 = Clock::now();
    std::vector<crypto::KeyMaterial> many;
    many.reserve(n_keys);
    for (size_t i = 0; i < n_keys; ++i) {
        crypto::CertificateBuilder b;
        b.public_key(shared.get()).issuer(ca, ca_key.get()).common_name("Staff " + std::to_string(i))
            .add_email_san("staff" + std::to_string(i) + "@bank.example").serial(1000 + i).valid_days(3650)
            .key_usage(crypto::key_usage_from_names("keyAgreement,digitalSignature")).subject_key_identifier();
        crypto::KeyMaterial m;
        m.key = up(shared.get());
        m.certificate = b.build();
        many.push_back(std::move(m));
    }
    const double mint_s = ms_since(t0) / 1000;
    const crypto::Certificate target = *many[n_keys / 2].certificate;
    const crypto::Certificate first = *many.front().certificate;

    // The big store (one batch import) and a store of one key (the same target certificate).
    t0 = Clock::now();
    {
        auto big = new_store(work + "/big", master);
        require(big->import_keys(std::move(many), &error).has_value(), error);
    }
    const double import_s = ms_since(t0) / 1000;
    {
        auto one = new_store(work + "/one", master);
        std::vector<crypto::KeyMaterial> v(1);
        v[0].key = up(shared.get());
        v[0].certificate = target;
        require(one->import_keys(std::move(v), &error).has_value(), error);
    }
    t0 = Clock::now();
    auto big = new_store(work + "/big", master);
    const double open_big_ms = ms_since(t0);
    require(big->size() == n_keys, "store size");
    t0 = Clock::now();
    auto one = new_store(work + "/one", master);
    const double open_one_ms = ms_since(t0);

    // Decryption through each (the same message; interleaved rounds, best of 3 means).
    const std::string msg = smime(target, "Content-Type: text/plain\r\n\r\nbench message\r\n");
    double t_big = 1e9, t_one = 1e9;
    for (int round = 0; round < 3; ++round) {
        t_one = std::min(t_one, decrypt_ms(msg, *one, 300, "bench message"));
        t_big = std::min(t_big, decrypt_ms(msg, *big, 300, "bench message"));
    }
    // The first use of a key in a freshly opened store (unwrap included), big store.
    auto fresh = new_store(work + "/big", master);
    t0 = Clock::now();
    crypto::StringSink first_out;
    require(open(msg, *fresh, first_out).outcome.status == crypto::DecryptStatus::Ok, "first decryption");
    const double first_ms = ms_since(t0);

    // Archive: 1,000 messages to 1,000 different keys of the big store, opened from a maildir.
    const std::string maildir = work + "/Maildir";
    fs::create_directories(maildir + "/cur");
    for (int i = 0; i < 1000; ++i) {
        const keys::KeyEntry e = big->for_address("staff" + std::to_string(static_cast<size_t>(i) * (n_keys / 1000)) + "@bank.example").front();
        std::ofstream(maildir + "/cur/" + std::to_string(i)) << smime(e->certificate, "Content-Type: text/plain\r\n\r\nm " + std::to_string(i) + "\r\n");
    }
    auto archive_store = new_store(work + "/big", master);
    t0 = Clock::now();
    const core::ArchiveSummary sum = core::open_maildir(maildir, work + "/opened", *archive_store);
    const double archive_s = ms_since(t0) / 1000;
    require(sum.opened == 1000 && sum.total == 1000, "archive counts");

    // In process vs `openssl cms -decrypt` per message: RSA-2048, 10 KiB and 10 MiB.
    crypto::EVP_PKEY_ptr rsa = keygen("RSA");
    crypto::CertificateBuilder rb;
    rb.public_key(rsa.get()).issuer(ca, ca_key.get()).common_name("Inbound").add_email_san("inbound@bank.example")
        .serial(7).valid_days(365).key_usage(crypto::key_usage_from_names("keyEncipherment,digitalSignature"));
    const crypto::Certificate rsa_cert = rb.build();
    keys::MemoryKeyRing rsa_ring;
    crypto::KeyMaterial rm;
    rm.key = up(rsa.get());
    rm.certificate = rsa_cert;
    rsa_ring.add(std::move(rm), "bench");
    {
        crypto::BIO_ptr kb(BIO_new_file((work + "/rsa.pem").c_str(), "w"));
        require(kb && PEM_write_bio_PrivateKey(kb.get(), rsa.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
                    PEM_write_bio_X509(kb.get(), rsa_cert.native()) == 1, "writing rsa.pem");
    }
    std::printf("## Key store\n\nCommand: `bench/keys.sh` (bench_keys %s %zu). One run, this machine, the figures below are "
                "from that run.\n\n", "WORKDIR", n_keys);
    std::printf("### Store with %zu keys\n\n", n_keys);
    std::printf("The certificates are minted cheaply: one EC P-256 key shared by all %zu certificates (each with its own "
                "serial, address and SKI, signed by one CA), so this measures the index and the unwrap-on-demand path, "
                "not 100,000 distinct keys. Minting took %.1f s, the batch import (wrap + one file per key + index) %.1f s.\n\n",
                n_keys, mint_s, import_s);
    std::printf("| | 1 key | %zu keys | ratio |\n|---|---|---|---|\n", n_keys);
    std::printf("| store open (read the index; a certificate is parsed when its entry is first used) | %.2f ms | %.0f ms | |\n", open_one_ms, open_big_ms);
    std::printf("| decrypt one message (key found by RecipientIdentifier, unwrapped key cached) | %.3f ms | %.3f ms | %.2fx (target <= 1.2x) |\n\n",
                t_one, t_big, t_big / t_one);
    std::printf("First decryption with a key after opening the %zu-key store (reads and unwraps its key file): %.3f ms.\n\n",
                n_keys, first_ms);
    std::printf("### Archive opening\n\n`core::open_maildir` over 1,000 messages to 1,000 different keys of the %zu-key store "
                "(each key unwrapped once; the cache holds 256): %.2f s, **%.0f messages/s**.\n\n",
                n_keys, archive_s, 1000 / archive_s);
    std::printf("### Inbound decryption: in process vs one `openssl cms -decrypt` per message\n\nRSA-2048 recipient, AES-256-CBC, "
                "the message as the milter sees it.\n\n| size | in process | `openssl cms -decrypt` process | ratio |\n|---|---|---|---|\n");
    for (const auto& [label, size, n] : std::vector<std::tuple<std::string, size_t, int>>{{"10 KiB", 10240, 50}, {"10 MiB", size_t{10} << 20, 3}}) {
        std::string body;
        body.reserve(size);
        while (body.size() < size) body += "Lorem ipsum dolor sit amet, consectetur adipiscing elit " + std::to_string(body.size()) + "\r\n";
        const std::string raw = smime(rsa_cert, "Content-Type: text/plain\r\n\r\n" + body);
        const std::string path = work + "/inbound.eml";
        std::ofstream(path, std::ios::binary) << raw;
        const double in_ms = decrypt_ms(raw, rsa_ring, n, "Lorem ipsum");
        const std::string cmd = "openssl cms -decrypt -in " + path + " -inkey " + work + "/rsa.pem -out " + work + "/out.txt";
        t0 = Clock::now();
        for (int i = 0; i < n; ++i) require(std::system(cmd.c_str()) == 0, "openssl cms -decrypt failed");
        const double ossl_ms = ms_since(t0) / n;
        require(sealmilter::base::read_file(work + "/out.txt").find("Lorem ipsum") != std::string::npos, "openssl output");
        std::printf("| %s | %.2f ms | %.2f ms | %.2fx faster |\n", label.c_str(), in_ms, ossl_ms, ossl_ms / in_ms);
    }
    fs::remove_all(work);
    return 0;
}

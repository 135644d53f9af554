// fuzz/fuzz_support.cpp — see fuzz_support.hpp.
#include "fuzz/fuzz_support.hpp"

#include "core/decrypt.hpp"
#include "core/mime.hpp"
#include "core/transform.hpp"
#include "crypto/base64.hpp"
#include "crypto/certificate_builder.hpp"
#include "crypto/envelope.hpp"
#include "crypto/ossl.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>

#ifndef SEALMILTER_SOURCE_DIR
#error "SEALMILTER_SOURCE_DIR must name the source tree (set by fuzz/CMakeLists.txt)"
#endif

namespace sealmilter::fuzz {
namespace {

const std::string kNss = std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/nss-smime/";

class FrozenClock final : public base::Clock {
public:
    std::time_t now() const override { return kFrozenNow; }
};

// A self-signed end-entity certificate for `email`, valid for ten years from now.
Identity make_identity(bool ec, const char* email) {
    crypto::EVP_PKEY_ptr key = ec ? crypto::generate_ec_key("prime256v1") : crypto::generate_rsa_key(2048);
    crypto::CertificateBuilder b;
    b.public_key(key.get())
        .common_name("sealmilter fuzz")
        .serial(ec ? 2 : 1)
        .valid_days(3650)
        .add_email_san(email)
        .key_usage(crypto::kDigitalSignature | (ec ? crypto::kKeyAgreement : crypto::kKeyEncipherment))
        .extended_key_usage({"emailProtection"});
    Identity id;
    id.material.certificate.emplace(b.build());
    id.material.key = std::move(key);
    return id;
}

struct State {
    Identity rsa;
    Identity ec;
    crypto::KeyMaterial bob;
    keys::MemoryKeyRing bob_ring;  // a second load of Bob.p12, as harvest takes keys: by ring
    FrozenClock clock;
    std::unique_ptr<lookup::Validator> validator;
};

State& state() {
    static State* s = [] {
        auto* st = new State;  // deliberately never freed: lives as long as the fuzzer process
        st->rsa = make_identity(false, "rsa@fuzz.example");
        st->ec = make_identity(true, "ec@fuzz.example");
        crypto::KeyLoad bob = crypto::load_key_material(kNss + "Bob.p12", "nss");
        if (!bob.material) {
            std::fprintf(stderr, "fuzz setup: %s\n", bob.error.c_str());
            std::abort();
        }
        st->bob = std::move(*bob.material);
        crypto::KeyLoad again = crypto::load_key_material(kNss + "Bob.p12", "nss");
        if (!again.material || !st->bob_ring.add(std::move(*again.material), kNss + "Bob.p12")) {
            std::fprintf(stderr, "fuzz setup: Bob.p12 does not make a key ring\n");
            std::abort();
        }
        lookup::ValidatorOptions vo;
        vo.trust_anchor_files = {kNss + "TestCA.pem"};
        vo.clock = &st->clock;
        st->validator = std::make_unique<lookup::Validator>(std::move(vo));
        return st;
    }();
    return *s;
}

size_t count_named(const std::vector<core::HeaderField>& fields, std::string_view name) {
    size_t n = 0;
    for (const core::HeaderField& f : fields) n += core::is_header_named(f, name) ? 1 : 0;
    return n;
}

// Runs of CR directly before an LF are dropped: with "\n" output a value's trailing lone CR
// merges into the line break, which changes nothing a reader sees.
std::string without_cr_before_lf(std::string s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\n')
            while (!out.empty() && out.back() == '\r') out.pop_back();
        out += c;
    }
    return out;
}

std::string decode_base64(const std::string& text) {
    bool clean = false;
    std::string out = crypto::decode_base64(text, &clean);
    FUZZ_CHECK(clean, "the encrypted body is not clean base64");
    return out;
}

void check_base64_lines(const std::string& body, const std::string& eol) {
    size_t start = 0;
    while (start < body.size()) {
        size_t end = body.find(eol, start);
        FUZZ_CHECK(end != std::string::npos, "a base64 line without its line ending");
        FUZZ_CHECK(end - start <= 76, "base64 line of " + std::to_string(end - start) + " characters");
        start = end + eol.size();
    }
}

void check_outer_headers(const std::vector<core::HeaderField>& outer) {
    FUZZ_CHECK(count_named(outer, "Content-Type") == 1,
               "outer Content-Type fields: " + std::to_string(count_named(outer, "Content-Type")));
    FUZZ_CHECK(count_named(outer, "Content-Transfer-Encoding") == 1, "outer Content-Transfer-Encoding fields");
    FUZZ_CHECK(count_named(outer, "Content-Disposition") == 1, "outer Content-Disposition fields");
    for (const char* n : {"Content-ID", "Content-Description", "Content-Language"})
        FUZZ_CHECK(count_named(outer, n) == 0, std::string("plaintext ") + n + " left in the outer header");
    FUZZ_CHECK(count_named(outer, "MIME-Version") >= 1, "no MIME-Version");
}

}  // namespace

void fail(const char* file, int line, const char* cond, const std::string& detail) {
    std::fprintf(stderr, "fuzz check failed: %s:%d: %s (%s)\n", file, line, cond, detail.c_str());
    std::fflush(stderr);
    std::abort();
}

void init() {
    core::ensure_gmime();
    (void)state();
}

uint64_t hash_of(std::string_view bytes) noexcept {
    uint64_t h = 1469598103934665603ULL;
    for (char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ULL;
    }
    return h;
}

const Identity& rsa_recipient() {
    return state().rsa;
}
const Identity& ec_recipient() {
    return state().ec;
}
const crypto::KeyMaterial& nss_bob_key() {
    return state().bob;
}
const keys::KeyRing& nss_bob_ring() {
    return state().bob_ring;
}
const lookup::Validator& nss_validator() {
    return *state().validator;
}

bool hits_open_pem_marker_bug(std::string_view der) noexcept {
    return der.find("-----BEGIN") != std::string_view::npos;
}

std::string body_bytes(const core::Message& m) {
    std::string out;
    m.body.for_each_chunk([&](std::string_view c) { out.append(c); });
    return out;
}

std::string reference_crlf(std::string_view in) {
    std::string out;
    out.reserve(in.size() + in.size() / 8);
    char prev = '\0';
    for (char c : in) {
        if (c == '\n' && prev != '\r') out += '\r';
        out += c;
        prev = c;
    }
    return out;
}

TransformVariant transform_variant(uint64_t h) {
    TransformVariant v;
    v.ec = (h & 0x7) != 0;  // RSA 1 in 8: its decryption costs ~1 ms
    v.gcm = ((h >> 3) & 1) != 0;
    v.oaep = ((h >> 4) & 1) != 0;
    v.protect_headers = ((h >> 5) & 3) == 0;
    v.lf = ((h >> 7) & 3) == 0;
    v.decrypt_message = ((h >> 9) & 3) == 0;
    v.memory_limit = ((h >> 11) & 3) == 0 ? 16 : (1 << 20);
    return v;
}

void exercise_transform(const core::Message& m, const TransformVariant& v) {
    core::TransformOptions opts;
    opts.envelope.cipher = v.gcm ? crypto::Cipher::Aes256Gcm : crypto::Cipher::Aes256Cbc;
    opts.envelope.rsa_padding = v.oaep ? crypto::RsaPadding::Oaep : crypto::RsaPadding::Pkcs1;
    opts.protect_headers = v.protect_headers;
    opts.eol = v.lf ? "\n" : "\r\n";

    for (const core::HeaderField& f : m.headers)
        if (core::is_header_named(f, "Content-Type")) (void)core::parse_content_type(f.value);
    const core::Plan plan = core::plan_encryption(m, opts);
    if (plan.kind == core::PlanKind::PassThrough) {
        FUZZ_CHECK(!plan.reason.empty(), "pass-through without a reason");
        FUZZ_CHECK(core::detect_encrypted(m) != core::EncryptedForm::None, "pass-through of unencrypted mail");
        return;
    }
    const std::vector<core::HeaderField> outer = core::apply_edits(m.headers, plan.edits);
    check_outer_headers(outer);

    const Identity& who = v.ec ? ec_recipient() : rsa_recipient();
    crypto::StringSink out;
    core::write_transformed(m, plan, {who.cert()}, opts, out);

    // What the MTA would deliver, read back.
    core::Message back;
    core::MessageSplitter splitter(back);
    splitter.feed(out.out.data(), out.out.size());
    splitter.finish();
    FUZZ_CHECK(back.headers.size() == outer.size(), "the written header re-splits into " +
                                                        std::to_string(back.headers.size()) + " fields, planned " +
                                                        std::to_string(outer.size()));
    for (size_t i = 0; i < outer.size(); ++i) {
        const std::string want = without_cr_before_lf(core::serialize_field(outer[i], opts.eol));
        const std::string got = without_cr_before_lf(core::serialize_field(back.headers[i], opts.eol));
        FUZZ_CHECK(want == got, "header field " + std::to_string(i) + " changed on the way out");
    }
    const core::EncryptedForm form = core::detect_encrypted(back);
    FUZZ_CHECK(form == (v.gcm ? core::EncryptedForm::SmimeAuthEnveloped : core::EncryptedForm::SmimeEnveloped),
               std::string("our own output is detected as ") + core::to_string(form));

    const std::string b64 = body_bytes(back);
    check_base64_lines(b64, opts.eol);
    const std::string der = decode_base64(b64);
    crypto::BIO_ptr in(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
    FUZZ_CHECK(in != nullptr, "BIO_new_mem_buf");
    crypto::StringSink plain;
    const crypto::DecryptOutcome d = crypto::decrypt_envelope(in.get(), who.material, plain);
    FUZZ_CHECK(d.status == crypto::DecryptStatus::Ok, "our own envelope does not decrypt: " + d.detail);
    const std::string expected = core::inner_header_section(m, opts) + reference_crlf(body_bytes(m));
    FUZZ_CHECK(plain.out == expected, "the decrypted entity differs from the original (" +
                                          std::to_string(plain.out.size()) + " vs " + std::to_string(expected.size()) +
                                          " bytes)");

    if (v.decrypt_message) {
        crypto::StringSink whole;
        const crypto::DecryptOutcome dm = core::decrypt_message(back, who.material, opts.eol, whole);
        FUZZ_CHECK(dm.status == crypto::DecryptStatus::Ok, "decrypt_message fails on our own output: " + dm.detail);
    }
}

}  // namespace sealmilter::fuzz

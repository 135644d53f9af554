// core::decrypt_message finds the envelope through core/entity_walk: signature layers around
// it (opaque and multipart/signed, made here with crypto::SignedDataWriter) are peeled up to
// the bound of 8 layers; what is not an envelope is reported as a value.
#include "core/decrypt.hpp"

#include "crypto/signed_data.hpp"
#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

namespace core = sealmilter::core;
namespace crypto = sealmilter::crypto;
using sealmilter::testing::make_identity;
using sealmilter::testing::TestIdentity;

namespace {

const TestIdentity& recipient() {
    static const TestIdentity id = make_identity({.email = "team@bank.example", .key = "ec-p256"});
    return id;
}

std::string base64(const std::string& der) {
    crypto::StringSink out;
    crypto::Base64LineWriter w(out, "\r\n");
    w.write(der.data(), der.size());
    w.finish();
    return out.out;
}

std::string pkcs7_entity(const char* smime_type, const std::string& der) {
    return std::string("Content-Type: application/pkcs7-mime; smime-type=") + smime_type +
           "; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64(der);
}

std::string sign(const std::string& entity, bool detached) {
    crypto::StringSink der;
    const crypto::KeyMaterial key = recipient().material();
    crypto::SignedDataWriter w(key, {.detached = detached}, der);
    w.write(entity.data(), entity.size());
    w.finish();
    return der.out;
}

std::string enveloped(const std::string& entity) {
    crypto::StringSink der;
    crypto::EnvelopeWriter w({recipient().cert}, {}, der);
    w.write(entity.data(), entity.size());
    w.finish();
    return pkcs7_entity("enveloped-data", der.out);
}

std::string opaque_signed(const std::string& entity) { return pkcs7_entity("signed-data", sign(entity, false)); }

std::string multipart_signed(const std::string& entity) {
    return "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"s\"\r\n\r\n"
           "--s\r\n" + entity + "\r\n--s\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n" + base64(sign(entity, true)) + "\r\n--s--\r\n";
}

crypto::DecryptOutcome decrypt(const std::string& entity, std::string* plain = nullptr) {
    const std::string raw = "From: p@partner.example\r\nTo: team@bank.example\r\nSubject: s\r\n" + entity;
    core::Message m;
    core::MessageSplitter splitter(m);
    splitter.feed(raw.data(), raw.size());
    splitter.finish();
    crypto::StringSink out;
    const crypto::DecryptOutcome r = core::decrypt_message(m, recipient().material(), "\n", out);
    if (plain != nullptr) *plain = out.out;
    return r;
}

const std::string kSecret = "Content-Type: text/plain; charset=us-ascii\r\n\r\nStatement: 1,234.56 EUR\r\n";

}  // namespace

TEST(DecryptMessage, SignatureLayersArePeeledUpToEight) {
    for (int layers = 0; layers <= 8; ++layers) {
        std::string entity = enveloped(kSecret);
        for (int i = 0; i < layers; ++i) entity = i % 2 == 0 ? opaque_signed(entity) : multipart_signed(entity);
        std::string plain;
        const crypto::DecryptOutcome r = decrypt(entity, &plain);
        if (layers < 8) {
            EXPECT_EQ(r.status, crypto::DecryptStatus::Ok) << layers << " layers: " << r.detail;
            EXPECT_NE(plain.find("Statement: 1,234.56 EUR\n"), std::string::npos) << layers << " layers";
            EXPECT_NE(plain.find("Subject: s\n"), std::string::npos) << layers << " layers";
        } else {
            EXPECT_EQ(r.status, crypto::DecryptStatus::NotEncrypted);
            EXPECT_EQ(r.detail, "more than 8 nested signature layers");
        }
    }
}

TEST(DecryptMessage, WhatIsNotAnEnvelopeIsAValue) {
    struct Row {
        const char* name;
        std::string entity;
        crypto::DecryptStatus status;
        const char* detail;
    };
    const std::vector<Row> rows = {
        {"plain text", kSecret, crypto::DecryptStatus::NotEncrypted, "not an S/MIME message (Content-Type is text/plain)"},
        {"no Content-Type", "\r\nhello\r\n", crypto::DecryptStatus::NotEncrypted, "Content-Type is text/plain"},
        {"garbage in base64", "Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: base64\r\n\r\nMII*\r\n",
         crypto::DecryptStatus::NotCms, "not valid base64"},
        {"signed, nothing encrypted", opaque_signed(kSecret), crypto::DecryptStatus::NotEncrypted, "text/plain"},
        {"multipart/signed without parts",
         "Content-Type: multipart/signed; boundary=s\r\n\r\nno delimiter\r\n", crypto::DecryptStatus::NotEncrypted,
         "a signed layer without content"},
        {"detached signature as the body", pkcs7_entity("signed-data", sign(kSecret, true)),
         crypto::DecryptStatus::NotEncrypted, "not enveloped data"},
    };
    for (const Row& row : rows) {
        const crypto::DecryptOutcome r = decrypt(row.entity);
        EXPECT_EQ(r.status, row.status) << row.name << ": " << r.detail;
        EXPECT_NE(r.detail.find(row.detail), std::string::npos) << row.name << ": " << r.detail;
    }
}

// fuzz/fuzz_decrypt.cpp — `sealmilter decrypt` (core/decrypt.hpp) on arbitrary input: finding
// the envelope under signature layers, base64, CMS parsing and decryption with a real key
// (Bob's, from the NSS corpus, whose *.env.eml messages are encrypted to him).
//
// Checked: a failure says why; a success writes a header section and its empty line.
#include "core/decrypt.hpp"
#include "core/message.hpp"
#include "fuzz/fuzz_support.hpp"

#include <cstddef>
#include <cstdint>

using namespace sealmilter;

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    fuzz::init();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input = fuzz::as_view(data, size);
    core::Message m((fuzz::hash_of(input) & 3) == 0 ? 16 : 1 << 20);
    core::MessageSplitter splitter(m);
    splitter.feed(input.data(), input.size());
    splitter.finish();
    crypto::StringSink out;
    const crypto::DecryptOutcome r = core::decrypt_message(m, fuzz::nss_bob_key(), "\r\n", out);
    if (r.status == crypto::DecryptStatus::Ok) {
        FUZZ_CHECK(out.out.find("\r\n\r\n") != std::string::npos || out.out.rfind("\r\n", 0) == 0,
                   "decrypted message without the empty line after its header");
    } else {
        FUZZ_CHECK(!r.detail.empty() || r.status == crypto::DecryptStatus::NoMatchingRecipient,
                   "a failure without detail");
    }
    return 0;
}

// fuzz/fuzz_transform.cpp — arbitrary bytes as a message, through the S/MIME transform.
//
// The input is split in one piece (MessageSplitter), planned, encrypted to a generated
// recipient, read back, recognised as encrypted and decrypted again; the plaintext must be
// exactly the original content headers plus the CRLF-canonical body (fuzz_support.hpp lists
// every property checked). A hash of the input picks the variant (key type, cipher, header
// protection, line ending, memory spool or temp file), so a crash always replays.
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
    const fuzz::TransformVariant v = fuzz::transform_variant(fuzz::hash_of(input));
    core::Message m(v.memory_limit);
    core::MessageSplitter splitter(m);
    splitter.feed(input.data(), input.size());
    splitter.finish();
    FUZZ_CHECK(m.body.size() <= input.size(), "the body is larger than the message");
    fuzz::exercise_transform(m, v);
    return 0;
}

// Found by fuzz_harvest (fuzz/) on the merged signing branch: LeakSanitizer reported 136 bytes
// (a BIO) lost per message in crypto::SignedData::verify_detached.
//
// Bug (fixed, crypto/signed_data.cpp detached_content): OpenSSL 3.0's CMS_verify copies
// detached content that arrives as a memory BIO into a memory BIO of its own, and leaks that
// copy when CMS_dataInit then fails — here a multipart/signed whose SignedData cannot be set
// up for digesting. Every such inbound message leaked, so a sender could grow the daemon's
// memory without bound. The content now reaches CMS_verify behind a buffer filter (not a
// memory BIO), which OpenSSL reads in place. This test runs the reproducer through harvest;
// the ASan pass's LeakSanitizer fails it if the leak comes back.
#include "core/harvest.hpp"
#include "base/file.hpp"
#include "lookup/validate.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(FuzzRegression, HarvestOfAnUnverifiableDetachedSignatureLeaksNothing) {
    const std::string raw =
        sealmilter::base::read_file(std::string(SEALMILTER_SOURCE_DIR) + "/tests/data/fuzz_regressions/harvest-cms-verify-leak.eml");
    ASSERT_FALSE(raw.empty());
    const sealmilter::lookup::Validator validator{sealmilter::lookup::ValidatorOptions{}};
    sealmilter::core::HarvestOptions options;
    options.validator = &validator;
    const std::string sender = "alice@example.com";
    for (const std::string* s : {static_cast<const std::string*>(nullptr), &sender}) {
        const sealmilter::core::HarvestReport report = sealmilter::core::harvest(raw, s, options);
        EXPECT_TRUE(report.certificates.empty());  // nothing verifies: nothing is learnt
    }
}

}  // namespace

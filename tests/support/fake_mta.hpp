// tests/support/fake_mta.hpp — the MTA side of a milter transaction, recorded instead of sent:
// FakeMta keeps every header edit, the replaced body and the removed recipients; FakeReinjector
// keeps every re-injected copy and can be scripted to fail (all copies, or after N).
#pragma once

#include "core/plan.hpp"
#include "crypto/base64.hpp"
#include "milter/transaction.hpp"

#include <functional>
#include <string>
#include <vector>

namespace sealmilter::testing {

class FakeMta final : public milter::MessageActions {
public:
    void change_header(const std::string& n, int i, const std::string& v) override { edits.push_back({core::HeaderEdit::Op::Change, n, i, v}); }
    void delete_header(const std::string& n, int i) override { edits.push_back({core::HeaderEdit::Op::Delete, n, i, {}}); }
    void add_header(const std::string& n, const std::string& v) override { edits.push_back({core::HeaderEdit::Op::Append, n, 0, v}); }
    void insert_header(int i, const std::string& n, const std::string& v) override { edits.push_back({core::HeaderEdit::Op::Insert, n, i, v}); }
    crypto::ByteSink& replace_body() override {
        body_replaced = true;
        return body;
    }
    void delete_recipient(const std::string& a) override { deleted.push_back(a); }

    std::vector<core::HeaderEdit> edits;
    crypto::StringSink body;
    bool body_replaced = false;
    std::vector<std::string> deleted;
};

class FakeReinjector final : public milter::Reinjector {
public:
    std::string send(const std::string& sender, const std::vector<std::string>& rcpts,
                     const std::function<void(crypto::ByteSink&)>& write) override {
        if (!fail.empty()) return fail;
        if (fail_after >= 0 && static_cast<long>(copies.size()) >= fail_after) return "scripted failure after " + std::to_string(fail_after);
        crypto::StringSink s;
        write(s);
        copies.push_back({sender, rcpts, s.out});
        return {};
    }
    struct Copy {
        std::string sender;
        std::vector<std::string> rcpts;
        std::string message;
    };
    std::vector<Copy> copies;
    std::string fail;
    long fail_after = -1;  // >= 0: copies after this many fail
};

}  // namespace sealmilter::testing

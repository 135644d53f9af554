// lookup/stack.cpp — settings -> lookup stack (see stack.hpp).
#include "lookup/stack.hpp"

#include "lookup/cache.hpp"

namespace sealmilter::lookup {
namespace {

std::unique_ptr<Validator> make_validator(const Settings& s) {
    ValidatorOptions vo;
    vo.trust_anchor_files = s.get_list("lookup.trust_anchors");
    vo.crl_files = s.get_list("lookup.crl_files");
    vo.allow_expired = s.get_bool("lookup.allow_expired");
    try {
        return std::make_unique<Validator>(std::move(vo));
    } catch (const ValidatorError& e) {
        throw SettingsError(std::string("lookup.trust_anchors / lookup.crl_files: ") + e.what());
    }
}

}  // namespace

std::unique_ptr<CertificateCache> open_cache(const Settings& s, const ErrorHook& on_error) {
    if (s.get("cache.path").empty()) return nullptr;
    CacheOptions o;
    o.path = s.get("cache.path");
    o.min_ttl = s.get_int("cache.min_ttl");
    o.max_ttl = s.get_int("cache.max_ttl");
    o.negative_ttl = s.get_int("cache.negative_ttl");
    o.max_stale = s.get_int("cache.max_stale");
    o.on_error = on_error;
    return std::make_unique<SqliteCache>(std::move(o));
}

std::unique_ptr<LookupStack> build_lookup_stack(const Settings& s, const SourceRegistry& registry,
                                                const ErrorHook& on_error, const CacheOpener& open) {
    auto stack = std::make_unique<LookupStack>();
    stack->validator = make_validator(s);
    std::vector<std::string> order;
    std::vector<CertificateSource*> sources;
    for (const std::string& step : s.get_list("lookup.order")) {
        if (step == "cache") {
            stack->cache = open ? open(s, on_error) : open_cache(s, on_error);
            if (!stack->cache) {
                stack->notes.emplace_back("cache: off (cache.path is empty)");
                continue;
            }
            order.push_back(step);
            continue;
        }
        const SourceFactory* factory = registry.find(step);
        if (factory == nullptr) throw SettingsError("lookup.order names '" + step + "', which is no known source");
        BuiltSource built = (*factory)(s);
        stack->notes.insert(stack->notes.end(), built.notes.begin(), built.notes.end());
        stack->errors.insert(stack->errors.end(), built.errors.begin(), built.errors.end());
        if (!built.source) continue;
        sources.push_back(built.source.get());
        stack->sources.push_back(std::move(built.source));
        order.push_back(step);
    }
    const EncryptTo to = s.get("crypto.encrypt_to") == "newest" ? EncryptTo::Newest : EncryptTo::AllValid;
    stack->chain = std::make_unique<Chain>(std::move(order), std::move(sources), *stack->validator,
                                           stack->cache.get(), to);
    return stack;
}

std::unique_ptr<Resolver> LookupStack::make_resolver(ResolverOptions options, LookupObserver observe) const {
    return std::make_unique<Resolver>(*chain, options, std::move(observe));
}

}  // namespace sealmilter::lookup

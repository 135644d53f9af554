// crypto/ossl.cpp — OpenSSL error-queue draining (see ossl.hpp).
#include "crypto/ossl.hpp"

#include <openssl/err.h>

namespace sealmilter::crypto {

std::string drain_errors() {
    std::string out;
    const char* file = nullptr;
    const char* func = nullptr;
    const char* data = nullptr;
    int line = 0;
    int flags = 0;
    // Bounded: the queue holds at most ERR_NUM_ERRORS entries.
    for (unsigned long e = ERR_get_error_all(&file, &line, &func, &data, &flags); e != 0;
         e = ERR_get_error_all(&file, &line, &func, &data, &flags)) {
        if (!out.empty()) out += "; ";
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        out += buf;
        if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
            out += " (";
            out += data;
            out += ")";
        }
    }
    return out;
}

void throw_openssl(const std::string& what) {
    const std::string detail = drain_errors();
    throw CryptoError(detail.empty() ? what : what + ": " + detail);
}

}  // namespace sealmilter::crypto

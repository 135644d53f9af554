// tests/unit/pickup/https_client.hpp — a small libcurl client for the pickup tests: one handle
// (keep-alive, TLS session reused), the test CA as the only anchor, every response header kept.
#pragma once

#include <curl/curl.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sealmilter::testing {

struct HttpReply {
    long status = 0;
    std::string body;
    std::multimap<std::string, std::string> headers;  // names lower-cased
    std::string header(const std::string& name) const {
        const auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
};

class HttpsClient {
public:
    HttpsClient(std::string base, std::string ca_file) : base_(std::move(base)), ca_(std::move(ca_file)) {
        curl_.reset(curl_easy_init());
    }

    HttpReply get(const std::string& path, const std::vector<std::string>& headers = {}) {
        return perform(path, nullptr, headers);
    }
    HttpReply head(const std::string& path, const std::vector<std::string>& headers = {}) {
        return perform(path, nullptr, headers, true);
    }
    // A POST whose body is `size` bytes of 'a' fed as curl asks for them (chunked when
    // `declare_length` is false); *sent says how many bytes curl took before it stopped.
    HttpReply post_stream(const std::string& path, size_t size, bool declare_length, size_t* sent,
                          const std::vector<std::string>& headers = {}) {
        Stream st{size, 0};
        HttpReply r;
        CURL* c = curl_.get();
        curl_easy_reset(c);
        const std::string url = base_ + path;
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_.c_str());
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, &on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &st);
        if (declare_length) curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        curl_slist* list = nullptr;
        for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
        if (!declare_length) list = curl_slist_append(list, "Transfer-Encoding: chunked");
        list = curl_slist_append(list, "Content-Type: application/x-www-form-urlencoded");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
        const CURLcode rc = curl_easy_perform(c);
        curl_slist_free_all(list);
        if (rc != CURLE_OK) r.body = std::string("curl: ") + curl_easy_strerror(rc);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        *sent = st.sent;
        return r;
    }
    HttpReply post(const std::string& path, const std::vector<std::pair<std::string, std::string>>& form,
                   const std::vector<std::string>& headers = {}) {
        std::string body;
        for (const auto& [k, v] : form) {
            if (!body.empty()) body += "&";
            char* ek = curl_easy_escape(curl_.get(), k.c_str(), static_cast<int>(k.size()));
            char* ev = curl_easy_escape(curl_.get(), v.c_str(), static_cast<int>(v.size()));
            body += std::string(ek) + "=" + ev;
            curl_free(ek);
            curl_free(ev);
        }
        return perform(path, &body, headers);
    }
    HttpReply post_raw(const std::string& path, const std::string& body, const std::vector<std::string>& headers = {}) {
        return perform(path, &body, headers);
    }

private:
    struct Stream {
        size_t left;
        size_t sent;
    };
    static size_t on_read(char* p, size_t size, size_t n, void* ud) {
        auto* st = static_cast<Stream*>(ud);
        const size_t k = std::min(size * n, st->left);
        std::fill(p, p + k, 'a');
        st->left -= k;
        st->sent += k;
        return k;
    }
    static size_t on_body(char* p, size_t size, size_t n, void* ud) {
        static_cast<HttpReply*>(ud)->body.append(p, size * n);
        return size * n;
    }
    static size_t on_header(char* p, size_t size, size_t n, void* ud) {
        std::string line(p, size * n);
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
            while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
            static_cast<HttpReply*>(ud)->headers.emplace(name, value);
        }
        return size * n;
    }

    HttpReply perform(const std::string& path, const std::string* body, const std::vector<std::string>& headers,
                      bool head = false) {
        HttpReply r;
        CURL* c = curl_.get();
        curl_easy_reset(c);
        const std::string url = base_ + path;
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_.c_str());
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        if (head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        if (body != nullptr) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->c_str());
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
        }
        curl_slist* list = nullptr;
        for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
        const CURLcode rc = curl_easy_perform(c);
        curl_slist_free_all(list);
        if (rc != CURLE_OK) r.body = std::string("curl: ") + curl_easy_strerror(rc);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        return r;
    }

    struct CurlFree {
        void operator()(CURL* c) const { curl_easy_cleanup(c); }
    };
    std::string base_;
    std::string ca_;
    std::unique_ptr<CURL, CurlFree> curl_;
};

}  // namespace sealmilter::testing

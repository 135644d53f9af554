// lookup/publisher.cpp — background publishing of harvested certificates (see publisher.hpp).
#include "lookup/publisher.hpp"

#include "lookup/directory.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace sealmilter::lookup {
namespace {

std::atomic<unsigned long> g_counter{0};

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

bool read_request(const fs::path& p, std::string& email, std::string& pem) {
    std::ifstream in(p, std::ios::binary);
    if (!std::getline(in, email) || email.empty()) return false;
    std::ostringstream rest;
    rest << in.rdbuf();
    pem = rest.str();
    return !pem.empty();
}

}  // namespace

Publisher::Publisher(PublishOptions options, std::function<void(const std::string&)> log, bool start_thread)
    : options_(std::move(options)), log_(std::move(log)) {
    std::error_code ec;
    fs::create_directories(options_.queue_dir, ec);
    if (ec) throw std::runtime_error("cannot create the publish queue " + options_.queue_dir + ": " + ec.message());
    if (start_thread) thread_ = std::thread([this] { run(); });
}

Publisher::Publisher(PublishOptions options, std::function<void(const std::string&)> log)
    : Publisher(std::move(options), std::move(log), true) {}

std::unique_ptr<Publisher> Publisher::without_thread(PublishOptions options, std::function<void(const std::string&)> log) {
    return std::unique_ptr<Publisher>(new Publisher(std::move(options), std::move(log), false));
}

Publisher::~Publisher() {
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Publisher::enqueue(const std::string& email, const std::string& pem) {
    if (email.find('\n') != std::string::npos) throw std::runtime_error("publish: address with a line break");
    const std::string name = std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "-" +
                             std::to_string(::getpid()) + "-" + std::to_string(++g_counter);
    const fs::path tmp = fs::path(options_.queue_dir) / ("." + name + ".tmp");
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << email << "\n" << pem;
        out.flush();
        if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    std::error_code ec;
    fs::rename(tmp, fs::path(options_.queue_dir) / (name + ".req"), ec);
    if (ec) throw std::runtime_error("cannot queue " + tmp.string() + ": " + ec.message());
    wake_.notify_all();
}

bool Publisher::send(const std::string& email, const std::string& pem, std::string& error) const {
    CURL* curl = curl_easy_init();
    if (curl == nullptr) {
        error = "curl_easy_init failed";
        return false;
    }
    const std::string url = expand_url(options_.url_template, email);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/pem-certificate-chain");
    if (!options_.bearer_token.empty())
        headers = curl_slist_append(headers, ("Authorization: Bearer " + options_.bearer_token).c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, pem.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(pem.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        error = curl_easy_strerror(rc);
        return false;
    }
    if (status < 200 || status > 299) {
        error = "HTTP " + std::to_string(status);
        return false;
    }
    return true;
}

size_t Publisher::pass(bool honour_backoff) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (fs::directory_iterator it(options_.queue_dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".req") files.push_back(it->path());
    std::sort(files.begin(), files.end());
    size_t remaining = 0;
    for (const fs::path& f : files) {
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            if (stop_) return files.size();
            const auto r = retry_.find(f.string());
            if (honour_backoff && r != retry_.end() && std::chrono::steady_clock::now() < r->second.next) {
                ++remaining;
                continue;
            }
        }
        std::string email;
        std::string pem;
        if (!read_request(f, email, pem)) {
            log_("publish: dropping unreadable queue file " + f.string());
            fs::remove(f, ec);
            continue;
        }
        std::string error;
        if (send(email, pem, error)) {
            fs::remove(f, ec);
            const std::lock_guard<std::mutex> lock(mutex_);
            retry_.erase(f.string());
            log_("publish: <" + email + "> published");
            continue;
        }
        ++remaining;
        const std::lock_guard<std::mutex> lock(mutex_);
        Retry& r = retry_[f.string()];
        r.backoff_ms = r.backoff_ms == 0 ? options_.initial_backoff_ms : std::min(r.backoff_ms * 2, options_.max_backoff_ms);
        r.next = std::chrono::steady_clock::now() + std::chrono::milliseconds(r.backoff_ms);
        log_("publish: <" + email + "> failed (" + error + "), next attempt in " + std::to_string(r.backoff_ms / 1000) + " s");
    }
    return remaining;
}

size_t Publisher::flush_once() { return pass(false); }

void Publisher::run() {
    for (;;) {
        pass(true);
        std::unique_lock<std::mutex> lock(mutex_);
        if (stop_) return;
        // Wake for a new request, or when the earliest retry is due (at most a minute: files
        // queued by other processes, e.g. `sealmilter harvest`, are found too).
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (const auto& [file, r] : retry_) until = std::min(until, r.next);
        wake_.wait_until(lock, until);
        if (stop_) return;
    }
}

}  // namespace sealmilter::lookup

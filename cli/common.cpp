// cli/common.cpp — shared CLI plumbing (see common.hpp).
#include "cli/common.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

namespace po = boost::program_options;

namespace sealmilter::cli {

Parsed parse_command(int argc, char** argv, po::options_description& desc,
                     const po::positional_options_description* positional) {
    desc.add_options()("config,c", po::value<std::string>(), "configuration file (default /etc/sealmilter/sealmilter.conf)")(
        "help,h", "show this help");
    po::options_description overrides("Configuration overrides (--section.key=value, win over the file)");
    conf::add_override_options(overrides);
    po::options_description all;
    all.add(desc).add(overrides);
    Parsed p;
    try {
        po::command_line_parser parser(argc, argv);
        parser.options(all);
        if (positional != nullptr) parser.positional(*positional);
        po::store(parser.run(), p.vm);
        po::notify(p.vm);
    } catch (const po::error& e) {
        throw CliError(kUsage, e.what());
    }
    if (p.vm.count("help") != 0U) {
        std::cout << all << "\n";
        p.help = true;
        return p;
    }
    const bool explicit_path = p.vm.count("config") != 0U;
    const std::string path = explicit_path ? p.vm["config"].as<std::string>() : conf::kDefaultConfigPath;
    try {
        p.config = conf::load_config(path, explicit_path, p.vm);
    } catch (const conf::ConfigError& e) {
        // A bad --section.key value is a usage error; a bad file is a configuration error.
        const bool from_command_line = std::string_view(e.what()).rfind("--", 0) == 0;
        throw CliError(from_command_line ? kUsage : kConfig, e.what());
    }
    return p;
}

void StdoutSink::write(const char* data, size_t len) {
    if (std::fwrite(data, 1, len, stdout) != len)
        throw CliError(kIoErr, std::string("cannot write output: ") + std::strerror(errno));
}

void StdoutSink::flush() {
    if (std::fflush(stdout) != 0) throw CliError(kIoErr, std::string("cannot write output: ") + std::strerror(errno));
}

std::unique_ptr<Input> read_input(const conf::Config& config) {
    const auto max_size = static_cast<unsigned long long>(config.get_int("milter.max_message_size"));
    const auto threshold = static_cast<size_t>(config.get_int("milter.memory_threshold"));
    const char* tmp = std::getenv("TMPDIR");
    auto input = std::make_unique<Input>(threshold, tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
    core::BodySpool& raw = input->raw;
    core::MessageSplitter splitter(input->message);
    std::string buf(size_t{64} * 1024, '\0');
    // Bounded by max_size.
    for (;;) {
        const size_t n = std::fread(buf.data(), 1, buf.size(), stdin);
        if (n > 0) {
            if (raw.size() + n > max_size)
                throw CliError(kDataErr, "message exceeds milter.max_message_size (" + std::to_string(max_size) +
                                             " bytes): 552 5.3.4 refused");
            raw.append(buf.data(), n);
            splitter.feed(buf.data(), n);
        }
        if (n < buf.size()) {
            if (std::ferror(stdin) != 0) throw CliError(kNoInput, std::string("cannot read stdin: ") + std::strerror(errno));
            break;
        }
    }
    splitter.finish();
    return input;
}

std::string read_secret_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw CliError(kNoInput, "cannot read " + path + ": " + std::strerror(errno));
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

void note(const std::string& text) { std::cerr << "sealmilter: " << text << "\n"; }

std::pair<std::string, int> host_port(const std::string& v) {
    const size_t colon = v.rfind(':');
    std::string host = v.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return {host, std::atoi(v.c_str() + colon + 1)};
}

}  // namespace sealmilter::cli

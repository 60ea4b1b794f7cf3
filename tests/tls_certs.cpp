#include "tests/tls_certs.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

namespace fanout::test {
namespace {

template <auto free_fn>
struct openssl_deleter {
    template <typename T>
    void operator()(T* p) const {
        free_fn(p);
    }
};
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free_all>>;
using bn_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;

[[noreturn]] void fail(std::string what) {
    // Name OpenSSL's reason too, and leave this thread's error queue clean for the TLS code under test.
    if (auto code = ERR_peek_last_error(); code != 0) {
        char reason[256];
        ERR_error_string_n(code, reason, sizeof reason);
        what += ": ";
        what += reason;
    }
    ERR_clear_error();
    throw std::runtime_error("test_pki: " + what);
}

void check(bool ok, std::string const& what) {
    if (!ok) fail(what);
}

using extension_list = std::vector<std::pair<int, char const*>>;

struct cert_spec {
    char const* cn;
    long not_before_days;  // relative to now
    long not_after_days;
    extension_list extensions;  // in order: the subject key id must precede the authority key id
};

struct key_and_cert {
    pkey_ptr key;
    x509_ptr cert;
};

extension_list ca_extensions() {
    return {
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,keyCertSign,cRLSign"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
    };
}

extension_list leaf_extensions(char const* eku, char const* sans) {
    extension_list e{
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, eku},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
    };
    if (sans != nullptr) e.emplace_back(NID_subject_alt_name, sans);
    return e;
}

// Self-signed when ca is null.
key_and_cert issue(cert_spec const& spec, key_and_cert const* ca) {
    std::string const who = std::string(" for ") + spec.cn;
    char curve[] = "P-256";  // the varargs are read back as char*, so not a string literal
    pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
    check(key != nullptr, "EC P-256 key generation" + who);
    x509_ptr cert(X509_new());
    check(cert != nullptr, "X509_new" + who);
    X509* issuer = ca != nullptr ? ca->cert.get() : cert.get();
    EVP_PKEY* signing_key = ca != nullptr ? ca->key.get() : key.get();

    // BN_RAND_TOP_ONE: a full 64 bits, so never zero; BIGNUMs are non-negative, as RFC 5280 wants.
    bn_ptr serial(BN_new());
    check(
        serial != nullptr && BN_rand(serial.get(), 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr,
        "serial number" + who
    );
    constexpr long day = 24 * 60 * 60;
    auto const* cn = reinterpret_cast<unsigned char const*>(spec.cn);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    check(
        X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
            X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, cn, -1, -1, 0) == 1 &&
            X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before_days * day) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after_days * day) != nullptr &&
            X509_set_pubkey(cert.get(), key.get()) == 1,
        "certificate fields" + who
    );

    X509V3_CTX ctx{};
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert.get(), nullptr, nullptr, 0);
    for (auto const& [nid, value] : spec.extensions) {
        ext_ptr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
        check(
            ext != nullptr && X509_add_ext(cert.get(), ext.get(), -1) == 1,
            std::string("extension ") + OBJ_nid2sn(nid) + "=" + value + who
        );
    }
    check(X509_sign(cert.get(), signing_key, EVP_sha256()) > 0, "signing" + who);
    return {std::move(key), std::move(cert)};
}

template <typename Write>
void write_pem(std::filesystem::path const& path, mode_t mode, Write write) {
    // Created with its final mode (and O_EXCL), so a key is never readable by others, even briefly.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) throw std::runtime_error("test_pki: open " + path.string() + ": " + std::strerror(errno));
    bio_ptr bio(BIO_new_fd(fd, BIO_CLOSE));
    if (bio == nullptr) ::close(fd);
    check(bio != nullptr && write(bio.get()) == 1, "writing " + path.string());
}

void write_cert(std::filesystem::path const& path, key_and_cert const& kc) {
    write_pem(path, 0644, [&](BIO* b) { return PEM_write_bio_X509(b, kc.cert.get()); });
}

void write_leaf(std::filesystem::path const& dir, std::string const& name, key_and_cert const& kc) {
    write_cert(dir / (name + ".pem"), kc);
    write_pem(dir / (name + ".key"), 0600, [&](BIO* b) {
        return PEM_write_bio_PrivateKey(b, kc.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
}

void generate(std::filesystem::path const& dir) {
    // The CA predates the expired leaf, so that leaf's only fault is its own validity period.
    auto ca = issue({"fanout-test-ca", -60, 60, ca_extensions()}, nullptr);
    write_cert(dir / "ca.pem", ca);
    auto leaf = [&](char const* cn, long from, long to, char const* eku, char const* sans) {
        return issue({cn, from, to, leaf_extensions(eku, sans)}, &ca);
    };
    char const* server_sans = "DNS:localhost,DNS:upstream.test,IP:127.0.0.1";
    write_leaf(dir, "server", leaf("fanout-test-server", -1, 30, "serverAuth", server_sans));
    write_leaf(dir, "expired", leaf("fanout-test-expired", -30, -1, "serverAuth", server_sans));
    write_leaf(dir, "wrong-name", leaf("wrong.example", -1, 30, "serverAuth", "DNS:wrong.example"));
    write_leaf(dir, "client", leaf("fanout-test-client", -1, 30, "clientAuth", nullptr));
    write_cert(dir / "other-ca.pem", issue({"fanout-test-other-ca", -60, 60, ca_extensions()}, nullptr));
}

}  // namespace

test_pki::test_pki() {
    auto pattern = (std::filesystem::temp_directory_path() / "fanout-pki-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("test_pki: mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    dir_ = pattern;
    try {
        generate(dir_);
    } catch (...) {
        std::error_code ignored;  // the destructor will not run for a constructor that throws
        std::filesystem::remove_all(dir_, ignored);
        throw;
    }
}

test_pki::~test_pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

}  // namespace fanout::test

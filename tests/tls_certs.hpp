#pragma once

#include <filesystem>
#include <string>

namespace fanout::test {

// A throwaway PKI for TLS tests, written as PEM files into a fresh temporary directory that the
// destructor removes. Keys are EC P-256, generated per instance; the CA keys never touch the disk.
class test_pki {
  public:
    test_pki();   // generates everything; throws std::runtime_error naming what failed
    ~test_pki();  // removes the directory
    test_pki(test_pki const&) = delete;
    test_pki& operator=(test_pki const&) = delete;

    std::filesystem::path const& dir() const { return dir_; }
    // The CA that signs all below (self-signed, CA:TRUE).
    std::string ca_cert() const { return file("ca.pem"); }
    // SANs DNS:localhost, DNS:upstream.test, IP:127.0.0.1; valid -1 day .. +30 days; EKU serverAuth.
    std::string server_cert() const { return file("server.pem"); }
    std::string server_key() const { return file("server.key"); }
    // Same SANs and EKU as the server, but notBefore -30 days, notAfter -1 day.
    std::string expired_cert() const { return file("expired.pem"); }
    std::string expired_key() const { return file("expired.key"); }
    // SAN DNS:wrong.example only, valid now, EKU serverAuth.
    std::string wrong_name_cert() const { return file("wrong-name.pem"); }
    std::string wrong_name_key() const { return file("wrong-name.key"); }
    // CN=fanout-test-client, EKU clientAuth, valid now.
    std::string client_cert() const { return file("client.pem"); }
    std::string client_key() const { return file("client.key"); }
    // A second self-signed CA that signed nothing above (for "unknown issuer" with a ca_file).
    std::string other_ca_cert() const { return file("other-ca.pem"); }

  private:
    std::string file(char const* name) const { return (dir_ / name).string(); }

    std::filesystem::path dir_;
};

}  // namespace fanout::test

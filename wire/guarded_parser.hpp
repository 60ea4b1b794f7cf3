#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include <cstddef>
#include <cstdint>

namespace fanout::wire {

// A Beast parser that knows where it is in a chunked body, so that read_message() never hands it
// a buffer it cannot take. Beast 1.81's basic_parser asserts (`n >= 5`, in parse_chunk_header) when
// an empty chunked body's last chunk "0\r\n" is followed by fewer than two more bytes, which a
// peer decides; the parsing after the assertion is right, so the bytes just wait for more.
// Derived parsers receive chunk data through on_chunk_data().
template <bool isRequest>
class guarded_parser : public boost::beast::http::basic_parser<isRequest> {
  public:
    using error_code = boost::beast::error_code;
    using string_view = boost::beast::string_view;

    // Each call of put() consumes all it can; read_message() relies on that.
    guarded_parser() { this->eager(true); }

    // The fewest bytes worth handing to put(). Between chunks every valid rest of the message is
    // at least five bytes ("0\r\n\r\n"), so asking for five there never stalls a valid peer.
    std::size_t min_put() const noexcept {
        bool const between_chunks =
            this->is_header_done() && this->chunked() && chunk_left_ == 0 && !this->is_done();
        return between_chunks ? 5 : 1;
    }

  protected:
    virtual std::size_t on_chunk_data(string_view data, error_code& ec) = 0;

  private:
    void on_chunk_header_impl(std::uint64_t size, string_view, error_code&) final { chunk_left_ = size; }
    std::size_t on_chunk_body_impl(std::uint64_t remain, string_view data, error_code& ec) final {
        auto const used = on_chunk_data(data, ec);
        chunk_left_ = remain - used;
        return used;
    }

    std::uint64_t chunk_left_ = 0;
};

}  // namespace fanout::wire

#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace fanout::wire {

// A Beast parser that knows where it is in a message, so that read_message() never hands it a
// buffer it cannot take, and holds each part of the framing to a limit Beast does not enforce.
// Beast 1.81's basic_parser asserts (`n >= 5`, in parse_chunk_header) when an empty chunked body's
// last chunk "0\r\n" is followed by fewer than two more bytes, which a peer decides; the parsing
// after the assertion is right, so the bytes just wait for more. Derived parsers receive chunk
// data through on_chunk_data().
template <bool isRequest>
class guarded_parser : public boost::beast::http::basic_parser<isRequest> {
  public:
    using error_code = boost::beast::error_code;
    using string_view = boost::beast::string_view;

    // Each call of put() consumes all it can; read_message() relies on that.
    guarded_parser() { this->eager(true); }

    // The fewest bytes worth handing to put_within(). Between chunks every valid rest of the
    // message is at least five bytes ("0\r\n\r\n"), so asking for five there never stalls a valid peer.
    std::size_t min_put() const noexcept { return between_chunks() ? 5 : 1; }

    // put(), but no part of the framing may be larger than `max` bytes: the head (start line,
    // fields and the empty line), a chunk-size line with its extensions, the last chunk's line
    // with the trailer section. Over it: header_limit for the head, else buffer_overflow. Beast
    // bounds the header fields alone, a line at a time, and nothing of the chunked framing, and
    // takes any of these whole when it arrives in one piece.
    std::size_t put_within(boost::asio::const_buffer data, std::size_t max, error_code& ec) {
        namespace http = boost::beast::http;
        bool const in_head = !this->is_header_done();
        bool const framing = in_head || between_chunks();
        auto left = std::numeric_limits<std::size_t>::max();  // in a body's data, which body_limit bounds
        if (in_head)
            left = max - head_taken_;
        else if (framing)
            left = max + (after_data_ ? 2 : 0);  // the CRLF that ends the previous chunk's data comes first
        else if (this->chunked() && chunk_left_ > 0)
            left = static_cast<std::size_t>(chunk_left_);  // up to the data's end: framing follows it
        auto const given = std::min(data.size(), left);
        auto const used = this->put({data.data(), given}, ec);
        if (in_head && !this->is_header_done()) head_taken_ += used;
        if (ec && ec != http::error::need_more) return used;
        // Beast takes the head a line at a time, but a chunk-size line, or the last chunk with the
        // trailers, only whole: the part that began `data` is unfinished if the head is, or if
        // nothing was taken. Unfinished with all the bytes it may have, it is too large.
        bool const unfinished = !this->is_header_done() || used == 0;
        if (framing && unfinished && given == left)
            ec = in_head ? http::error::header_limit : http::error::buffer_overflow;
        return used;
    }

  protected:
    virtual std::size_t on_chunk_data(string_view data, error_code& ec) = 0;

  private:
    bool between_chunks() const noexcept {
        return this->is_header_done() && this->chunked() && chunk_left_ == 0 && !this->is_done();
    }

    void on_chunk_header_impl(std::uint64_t size, string_view, error_code&) final {
        chunk_left_ = size;
        after_data_ = after_data_ || size != 0;
    }
    std::size_t on_chunk_body_impl(std::uint64_t remain, string_view data, error_code& ec) final {
        auto const used = on_chunk_data(data, ec);
        chunk_left_ = remain - used;
        return used;
    }

    std::uint64_t chunk_left_ = 0;
    std::size_t head_taken_ = 0;  // bytes of an unfinished head that put() took already
    bool after_data_ = false;     // a chunk with data was parsed
};

}  // namespace fanout::wire

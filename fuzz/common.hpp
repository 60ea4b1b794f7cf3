#pragma once

#include "wire/read_message.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fanout::fuzz {

// Input bytes as a socket would deliver them: the first byte chooses the size of the pieces.
class pieces {
  public:
    pieces(std::uint8_t const* data, std::size_t size) : rest_(reinterpret_cast<char const*>(data), size) {
        if (!rest_.empty()) {
            piece_ = 1 + static_cast<unsigned char>(rest_.front()) % 97;
            rest_.remove_prefix(1);
        }
    }
    bool empty() const noexcept { return rest_.empty(); }
    // Appends the next piece to `buffer`.
    void deliver(boost::beast::flat_buffer& buffer) {
        auto n = std::min(piece_, rest_.size());
        buffer.commit(boost::asio::buffer_copy(buffer.prepare(n), boost::asio::buffer(rest_.data(), n)));
        rest_.remove_prefix(n);
    }
    std::size_t piece_size() const noexcept { return piece_; }

  private:
    std::string_view rest_;
    std::size_t piece_ = 1;
};

// What the bound on unparsed bytes promises: never more than the limit plus one piece.
inline void check_bounded(boost::beast::flat_buffer const& buffer, std::size_t limit, std::size_t piece) {
    if (buffer.size() > limit + piece) __builtin_trap();
}

}  // namespace fanout::fuzz

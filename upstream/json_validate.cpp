#include "upstream/json_validate.hpp"

#include <boost/json/parse.hpp>

#include <array>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fanout::upstream {

namespace {

// RFC 8259 JSON, strictly (no comments, no trailing commas, valid UTF-8, paired \u surrogates),
// nesting at most max_depth deep. A single pass over the bytes with an explicit stack: the
// general parsers do much more (events, number conversion) than a yes/no answer needs.
constexpr std::size_t max_depth = 32;

class scanner {
  public:
    explicit scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

    bool document() {
        skip_ws();
        if (!value()) return false;
        skip_ws();
        return p_ == end_;
    }

    // Whether the answer must come from Boost.JSON (see number()).
    bool refer() const noexcept { return refer_; }

  private:
    enum class container : std::uint8_t { array, object };

    bool at_end() const { return p_ == end_; }
    unsigned char peek() const { return static_cast<unsigned char>(*p_); }

    void skip_ws() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }

    bool literal(std::string_view word) {
        if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
            return false;
        p_ += word.size();
        return true;
    }

    static bool digit(unsigned char c) { return c >= '0' && c <= '9'; }

    bool digits() {
        if (at_end() || !digit(peek())) return false;
        while (!at_end() && digit(peek())) ++p_;
        return true;
    }

    bool number() {
        if (*p_ == '-') ++p_;
        if (at_end()) return false;
        if (*p_ == '0') {
            ++p_;
        } else if (!digits()) {
            return false;
        }
        if (!at_end() && *p_ == '.') {
            ++p_;
            if (!digits()) return false;
        }
        if (!at_end() && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (!at_end() && (*p_ == '+' || *p_ == '-')) ++p_;
            char const* first = p_;
            if (!digits()) return false;
            while (first != p_ && *first == '0') ++first;
            // Boost.JSON refuses an exponent that, with the mantissa's scale, leaves an int: possible
            // only from 10 significant digits on. Those rare documents are decided by Boost.JSON.
            if (p_ - first >= 10) refer_ = true;
        }
        return true;
    }

    static int hex(unsigned char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    // After "\u": four hex digits, into code.
    bool hex4(unsigned& code) {
        if (end_ - p_ < 4) return false;
        code = 0;
        for (int i = 0; i < 4; ++i) {
            int h = hex(static_cast<unsigned char>(p_[i]));
            if (h < 0) return false;
            code = code * 16 + static_cast<unsigned>(h);
        }
        p_ += 4;
        return true;
    }

    bool escape() {
        if (at_end()) return false;
        switch (*p_++) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                return true;
            case 'u':
                break;
            default:
                return false;
        }
        unsigned code;
        if (!hex4(code)) return false;
        if (code >= 0xDC00 && code <= 0xDFFF) return false;  // a trailing surrogate alone
        if (code < 0xD800 || code > 0xDBFF) return true;
        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;  // a leading one alone
        p_ += 2;
        return hex4(code) && code >= 0xDC00 && code <= 0xDFFF;
    }

    // One multi-byte UTF-8 sequence starting at p_ (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
    bool utf8() {
        unsigned char const c = peek();
        auto cont = [&](std::ptrdiff_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
            auto b = static_cast<unsigned char>(p_[i]);
            return b >= lo && b <= hi;
        };
        std::ptrdiff_t const left = end_ - p_;
        if (c >= 0xC2 && c <= 0xDF) {
            if (left < 2 || !cont(1)) return false;
            p_ += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
            if (left < 3 || !cont(1, lo, hi) || !cont(2)) return false;
            p_ += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
            if (left < 4 || !cont(1, lo, hi) || !cont(2) || !cont(3)) return false;
            p_ += 4;
        } else {
            return false;
        }
        return true;
    }

    // Skips printable ASCII other than '"' and '\\': the bulk of a string.
    void skip_plain() {
#if defined(__SSE2__)
        auto const quote = _mm_set1_epi8('"');
        auto const backslash = _mm_set1_epi8('\\');
        auto const space = _mm_set1_epi8(0x20);
        while (end_ - p_ >= 16) {
            auto const v = _mm_loadu_si128(reinterpret_cast<__m128i const*>(p_));
            // A signed compare with 0x20 also catches bytes >= 0x80, which are negative.
            auto const stop = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), _mm_cmplt_epi8(v, space)
            );
            auto const mask = static_cast<unsigned>(_mm_movemask_epi8(stop));
            if (mask != 0) {
                p_ += __builtin_ctz(mask);
                return;
            }
            p_ += 16;
        }
#endif
        while (!at_end() && plain_[peek()]) ++p_;
    }

    static constexpr std::array<bool, 256> plain_ = [] {
        std::array<bool, 256> t{};
        for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
        return t;
    }();

    bool string() {
        ++p_;  // the opening quote
        for (;;) {
            skip_plain();
            if (at_end()) return false;
            unsigned char const c = peek();
            if (c == '"') {
                ++p_;
                return true;
            }
            if (c == '\\') {
                ++p_;
                if (!escape()) return false;
            } else if (c < 0x20 || !utf8()) {
                return false;
            }
        }
    }

    bool scalar() {
        switch (*p_) {
            case '"':
                return string();
            case 't':
                return literal("true");
            case 'f':
                return literal("false");
            case 'n':
                return literal("null");
            default:
                return (*p_ == '-' || digit(peek())) && number();
        }
    }

    // A value; containers are walked iteratively with stack_ instead of recursion.
    bool value() {
        std::size_t depth = 0;
        for (;;) {
            // Expecting a value here.
            if (at_end()) return false;
            if (*p_ == '[' || *p_ == '{') {
                if (depth == max_depth) return false;
                bool const is_object = *p_ == '{';
                stack_[depth++] = is_object ? container::object : container::array;
                ++p_;
                skip_ws();
                if (at_end()) return false;
                if (*p_ == (is_object ? '}' : ']')) {
                    ++p_;
                    --depth;
                } else {
                    if (is_object && !key()) return false;
                    continue;
                }
            } else if (!scalar()) {
                return false;
            }
            // After a value: close containers or move to the next element.
            for (;;) {
                if (depth == 0) return true;
                skip_ws();
                if (at_end()) return false;
                bool const is_object = stack_[depth - 1] == container::object;
                if (*p_ == ',') {
                    ++p_;
                    skip_ws();
                    if (is_object && !key()) return false;
                    break;
                }
                if (*p_ != (is_object ? '}' : ']')) return false;
                ++p_;
                --depth;
            }
            skip_ws();
        }
    }

    // At a key: "name", whitespace, colon, whitespace; leaves p_ at the value.
    bool key() {
        if (at_end() || *p_ != '"' || !string()) return false;
        skip_ws();
        if (at_end() || *p_ != ':') return false;
        ++p_;
        skip_ws();
        return true;
    }

    char const* p_;
    char const* end_;
    std::array<container, max_depth> stack_{};
    bool refer_ = false;
};

}  // namespace

bool is_valid_json(std::string_view text) noexcept {
    scanner s{text};
    bool const valid = s.document();
    if (!valid || !s.refer()) return valid;
    boost::system::error_code ec;
    boost::json::parse(text, ec);  // the default limits: depth 32, as max_depth
    return !ec;
}

}  // namespace fanout::upstream

#include "common/quantities.hpp"

#include <charconv>
#include <limits>

namespace sandbox {
namespace {

/// A whole, non-negative decimal number with nothing around it.
std::optional<std::uint64_t> parse_whole(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty() || text.front() == '+' || text.front() == '-') return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> checked_multiply(std::uint64_t value, std::uint64_t factor,
                                              std::uint64_t max) {
  if (value > max / factor) return std::nullopt;
  return value * factor;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    std::uint64_t ms;
  };
  // "ms" before "m" and "s": the first matching suffix wins.
  static constexpr Unit units[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  std::uint64_t factor = 1000;  // a bare number is seconds
  for (const auto& unit : units) {
    if (text.ends_with(unit.suffix)) {
      text.remove_suffix(unit.suffix.size());
      factor = unit.ms;
      break;
    }
  }
  auto value = parse_whole(text);
  if (!value || *value == 0) return std::nullopt;
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  auto ms = checked_multiply(*value, factor, max);
  if (!ms) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
}

std::optional<std::uint64_t> parse_byte_count(std::string_view text) {
  std::uint64_t factor = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
        factor = 1ULL << 10;
        break;
      case 'M':
        factor = 1ULL << 20;
        break;
      case 'G':
        factor = 1ULL << 30;
        break;
      default:
        break;
    }
    if (factor != 1) text.remove_suffix(1);
  }
  auto value = parse_whole(text);
  if (!value || *value == 0) return std::nullopt;
  return checked_multiply(*value, factor, std::numeric_limits<std::uint64_t>::max());
}

}  // namespace sandbox
